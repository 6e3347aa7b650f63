/* 治理中心大屏 (governance centre screen): polls GET /api/v1/dashboard every 3 s and draws it.
 * Vanilla JS, no build step, no external resources. The bearer token comes from the URL fragment
 * (#token=...), is kept in localStorage and removed from the address bar; without one a sign-in box asks for it. */
(function () {
  "use strict";

  var API = "/api/v1/dashboard";
  var POLL_MS = 3000;
  var TIMEOUT_MS = 10000;
  var KEY = "muckDashboardToken";
  var SVGNS = "http://www.w3.org/2000/svg";

  var TYPES = {
    no_ticket: "无票运输", unapproved_disposal: "未经核准擅自处置", uncovered_load: "未密闭覆盖",
    overloaded: "超限超载", spilling: "抛洒滴漏", speeding: "超速行驶", off_route: "偏离路线",
    suspicious_stop: "异常停留", suspected_dumping: "疑似偷倒", other: "其他事件"
  };
  var STATES = {
    reported: "待确认", confirmed: "已确认", dispatched: "已派发", resolved: "已办结", dismissed: "已排除"
  };
  var KINDS = { landfill: "填埋场", recycling: "资源化利用厂", backfill: "回填场" };
  var MEMBERS = { chengguan: "城管", zhujian: "住建", jiaotong: "交通", shengtai: "生态环境" };

  var token = null;
  var timer = null;
  var offsetMs = 0;          // server clock − browser clock
  var last = {};             // last rendered JSON per panel (skip unchanged redraws)
  var lastData = null;

  // ------------------------------------------------------------------ helpers
  function $(id) { return document.getElementById(id); }

  function h(tag, attrs) {
    var el = document.createElement(tag);
    setAttrs(el, attrs);
    for (var i = 2; i < arguments.length; i++) append(el, arguments[i]);
    return el;
  }

  function s(tag, attrs) {
    var el = document.createElementNS(SVGNS, tag);
    setAttrs(el, attrs);
    for (var i = 2; i < arguments.length; i++) append(el, arguments[i]);
    return el;
  }

  function setAttrs(el, attrs) {
    if (!attrs) return;
    Object.keys(attrs).forEach(function (k) {
      var v = attrs[k];
      if (v === null || v === undefined || v === false) return;
      if (k === "text") el.textContent = String(v);
      else el.setAttribute(k, v === true ? "" : String(v));
    });
  }

  function append(el, child) {
    if (child === null || child === undefined || child === false) return;
    if (Array.isArray(child)) { child.forEach(function (c) { append(el, c); }); return; }
    el.appendChild(typeof child === "object" ? child : document.createTextNode(String(child)));
  }

  function clear(el) { while (el.firstChild) el.removeChild(el.firstChild); }

  function num(x) { var n = parseFloat(x); return isFinite(n) ? n : 0; }

  function fmtInt(x) {
    if (x === null || x === undefined) return "—";
    return Number(x).toLocaleString("zh-CN");
  }

  function fmtM3(x) {
    var n = num(x);
    if (n >= 10000) return (n / 10000).toFixed(n >= 100000 ? 1 : 2).replace(/\.?0+$/, "") + " 万m³";
    return (Math.round(n * 10) / 10) + " m³";
  }

  function pad(n) { return (n < 10 ? "0" : "") + n; }

  function chinaTime(ms) {              // the clock in +08:00 whatever the browser's zone
    var d = new Date(ms + 8 * 3600 * 1000);
    return {
      date: d.getUTCFullYear() + "-" + pad(d.getUTCMonth() + 1) + "-" + pad(d.getUTCDate()),
      time: pad(d.getUTCHours()) + ":" + pad(d.getUTCMinutes()) + ":" + pad(d.getUTCSeconds())
    };
  }

  function serverNow() { return Date.now() + offsetMs; }

  function age(seconds) {
    seconds = Math.max(0, Math.floor(seconds));
    if (seconds < 60) return seconds + "秒";
    var m = Math.floor(seconds / 60);
    if (m < 60) return m + "分钟";
    var hrs = Math.floor(m / 60);
    if (hrs < 24) return hrs + "小时" + (m % 60 ? (m % 60) + "分" : "");
    return Math.floor(hrs / 24) + "天" + (hrs % 24 ? (hrs % 24) + "小时" : "");
  }

  function shortHash(x) { return x ? String(x).slice(0, 12) + "…" : "—"; }

  // ------------------------------------------------------------------ token
  function readToken() {
    var frag = new URLSearchParams(window.location.hash.replace(/^#/, ""));
    var t = frag.get("token");
    if (t) {
      try { window.localStorage.setItem(KEY, t); } catch (e) { /* private mode: keep it in memory */ }
      window.history.replaceState(null, "", window.location.pathname + window.location.search);
      return t;
    }
    try { return window.localStorage.getItem(KEY); } catch (e) { return null; }
  }

  function forgetToken() {
    token = null;
    try { window.localStorage.removeItem(KEY); } catch (e) { /* ignore */ }
  }

  function showSignin(message) {
    if (timer) { window.clearTimeout(timer); timer = null; }
    $("signin").hidden = false;
    $("signout").hidden = true;
    var err = $("signin-error");
    err.hidden = !message;
    err.textContent = message || "";
    setConn("wait", "未登录");
    $("token-input").focus();
  }

  function setConn(state, text) {
    var el = $("conn");
    el.className = "conn conn-" + state;
    el.setAttribute("data-state", state);
    el.textContent = text;
  }

  // ------------------------------------------------------------------ polling
  function poll() {
    if (!token) return;
    var ctl = new AbortController();
    var killer = window.setTimeout(function () { ctl.abort(); }, TIMEOUT_MS);
    fetch(API, {
      headers: { "Authorization": "Bearer " + token, "Accept": "application/json", "Accept-Language": "zh" },
      cache: "no-store",
      signal: ctl.signal
    }).then(function (resp) {
      if (resp.status === 401 || resp.status === 403) {
        forgetToken();
        showSignin(resp.status === 401 ? "令牌无效或已过期，请重新输入。" : "该令牌无权查看大屏（需值班员、执法或监管令牌）。");
        return null;
      }
      if (!resp.ok) throw new Error("HTTP " + resp.status);
      return resp.json();
    }).then(function (data) {
      if (!data) return;
      render(data);
      setConn("ok", "实时");
      schedule();
    }).catch(function () {
      setConn("down", "连接中断，重试中");
      schedule();
    }).finally(function () { window.clearTimeout(killer); });
  }

  function schedule() {
    if (timer) window.clearTimeout(timer);
    if (token) timer = window.setTimeout(poll, POLL_MS);
  }

  function start() {
    $("signin").hidden = true;
    $("signout").hidden = false;
    setConn("wait", "连接中…");
    poll();
  }

  // ------------------------------------------------------------------ rendering
  function changed(name, value) {
    var text = JSON.stringify(value);
    if (last[name] === text) return false;
    last[name] = text;
    return true;
  }

  function render(d) {
    lastData = d;
    var gen = Date.parse(d.generated_at);
    if (isFinite(gen)) offsetMs = gen - Date.now();
    $("updated").textContent = chinaTime(isFinite(gen) ? gen : Date.now()).time;
    if (changed("counters", [d.counters, d.statistics, d.on_the_road.length])) renderCounters(d);
    if (changed("sites", d.sites)) renderSites(d.sites);
    if (changed("map", [d.sites, d.projects, d.on_the_road])) renderMap(d);
    if (changed("violations", d.violations)) renderViolations(d.violations);
    if (changed("chain", d.chain)) renderChain(d.chain);
    if (changed("recon", d.reconciliation)) renderRecon(d.reconciliation || []);
    tick();
  }

  function setCounter(name, value) {
    var el = document.querySelector('[data-counter="' + name + '"]');
    el.textContent = value;
  }

  function renderCounters(d) {
    var c = d.counters || {};
    setCounter("tickets_today", fmtInt(c.tickets_today));
    setCounter("trucks_on_the_road", fmtInt(c.trucks_on_the_road));
    setCounter("open_violations", fmtInt(c.open_violations));
    setCounter("sites_in_alarm", fmtInt(c.sites_in_alarm));
    setCounter("utilisation_rate_pct", c.utilisation_rate_pct === null || c.utilisation_rate_pct === undefined
      ? "—" : num(c.utilisation_rate_pct).toFixed(2));
    $("c-tickets-total").textContent = "累计 " + fmtInt(c.tickets_issued) + " 张";
    var overdue = (d.on_the_road || []).filter(function (t) { return t.overdue; }).length;
    $("c-road-overdue").textContent = overdue ? "超时未到达 " + overdue + " 辆" : "全部按时";
    var by = c.open_violations_by_state || {};
    $("c-violations-states").textContent = "待确认 " + (by.reported || 0) + " · 已确认 " + (by.confirmed || 0) +
      " · 已派发 " + (by.dispatched || 0);
    $("c-alarms-total").textContent = "共 " + (d.sites || []).length + " 处消纳场";
    var st = d.statistics || {};
    $("c-util-note").textContent = "资源化/回填 " + fmtM3(st.reused_m3) + " / 消纳 " + fmtM3(st.received_m3);
    $("c-alarms").classList.toggle("hot", num(c.sites_in_alarm) > 0);
  }

  function loadClass(site) {
    if (site.alarm) return "alarm";
    var thr = num(site.threshold_pct !== undefined ? site.threshold_pct : site.alarm_threshold_pct);
    return num(site.load_rate_pct) >= thr - 10 ? "warn" : "ok";
  }

  function renderSites(sites) {
    var box = $("sites");
    clear(box);
    if (!sites.length) { append(box, h("p", { "class": "empty", text: "暂无消纳场" })); return; }
    var ordered = sites.slice().sort(function (a, b) {
      return (b.alarm ? 1 : 0) - (a.alarm ? 1 : 0) || num(b.load_rate_pct) - num(a.load_rate_pct);
    });
    ordered.forEach(function (site) {
      var cls = loadClass(site);
      var rate = Math.min(100, num(site.load_rate_pct));
      var thr = num(site.threshold_pct !== undefined ? site.threshold_pct : site.alarm_threshold_pct);
      var fill = h("span", { "class": "fill" });
      fill.style.width = rate + "%";
      var mark = h("span", { "class": "mark", title: "告警阈值 " + thr + "%" });
      mark.style.left = "calc(" + Math.min(100, thr) + "% - 1px)";
      var alt = null;
      if (site.alarm) {
        var items = (site.alternatives || []).map(function (a) {
          return h("li", null, a.name + "（" + (KINDS[a.kind] || a.kind) + "，" + (num(a.distance_m) / 1000).toFixed(1) +
            " km，负荷 " + num(a.load_rate_pct).toFixed(1) + "%，余量 " + fmtM3(a.room_m3) + "）");
        });
        alt = h("div", { "class": "alt" }, h("b", { text: "推荐替代消纳场" }),
          items.length ? h("ol", null, items) : h("div", { "class": "muted", text: "暂无有余量的场地，请协调扩容" }));
      }
      append(box, h("div", { "class": "site " + cls, "data-site-id": site.site_id, "data-alarm": site.alarm ? "1" : "0" },
        h("div", { "class": "row" },
          h("span", { "class": "name", title: site.site_id }, site.name,
            h("span", { "class": "kind", text: KINDS[site.kind] || site.kind }),
            site.alarm ? h("span", { "class": "alarm-badge", text: "负荷告警" }) : null),
          h("span", { "class": "rate", text: num(site.load_rate_pct).toFixed(1) + "%" })),
        h("div", { "class": "bar", role: "meter", "aria-valuemin": 0, "aria-valuemax": 100, "aria-valuenow": rate }, fill, mark),
        h("div", { "class": "meta" },
          h("span", { text: "已消纳 " + fmtM3(site.load_m3) + " / 容量 " + fmtM3(site.capacity_m3) }),
          h("span", { text: "阈值 " + thr + "% · 余量 " + fmtM3(site.room_m3) })),
        alt));
    });
  }

  function loc(x) {
    if (!x || x.lat === undefined || x.lon === undefined) return null;
    var p = { lat: num(x.lat), lon: num(x.lon) };
    return (p.lat || p.lon) ? p : null;
  }

  function niceStep(span) {
    var steps = [0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5];
    for (var i = 0; i < steps.length; i++) if (span / steps[i] <= 6) return steps[i];
    return 10;
  }

  function renderMap(d) {
    var svg = $("map");
    var W = Math.max(300, Math.round(svg.clientWidth || 1000));
    var H = Math.max(240, Math.round(svg.clientHeight || 640));
    svg.setAttribute("viewBox", "0 0 " + W + " " + H);
    clear(svg);
    var sites = (d.sites || []).map(function (x) { return { o: x, p: loc(x.location) }; }).filter(function (x) { return x.p; });
    var projects = (d.projects || []).map(function (x) { return { o: x, p: loc(x.location) }; }).filter(function (x) { return x.p; });
    var projectAt = {};
    projects.forEach(function (x) { projectAt[x.o.project_id] = x.p; });
    var siteAt = {};
    sites.forEach(function (x) { siteAt[x.o.site_id] = x.p; });
    var trucks = (d.on_the_road || []).map(function (t) {
      var p = loc(t.last_position);
      return { o: t, p: p || projectAt[t.project_id] || null, reported: !!p };
    }).filter(function (x) { return x.p; });
    var all = sites.concat(projects, trucks).map(function (x) { return x.p; });
    if (!all.length) {
      append(svg, s("text", { x: W / 2, y: H / 2, "text-anchor": "middle", "class": "nodata", text: "暂无位置数据" }));
      return;
    }
    // equirectangular projection of the bounding box, padded, aspect kept (x scaled by cos of the mid latitude)
    var minLat = Math.min.apply(null, all.map(function (p) { return p.lat; }));
    var maxLat = Math.max.apply(null, all.map(function (p) { return p.lat; }));
    var minLon = Math.min.apply(null, all.map(function (p) { return p.lon; }));
    var maxLon = Math.max.apply(null, all.map(function (p) { return p.lon; }));
    var padLat = Math.max(0.01, (maxLat - minLat) * 0.12);
    var padLon = Math.max(0.01, (maxLon - minLon) * 0.12);
    minLat -= padLat; maxLat += padLat; minLon -= padLon; maxLon += padLon;
    var k = Math.cos(((minLat + maxLat) / 2) * Math.PI / 180);
    var margin = 28;
    var scale = Math.min((W - 2 * margin) / ((maxLon - minLon) * k), (H - 2 * margin) / (maxLat - minLat));
    var ox = (W - (maxLon - minLon) * k * scale) / 2;
    var oy = (H - (maxLat - minLat) * scale) / 2;
    function X(lon) { return ox + (lon - minLon) * k * scale; }
    function Y(lat) { return oy + (maxLat - lat) * scale; }

    // graticule over the whole drawing, a scale bar and a north arrow
    var vMinLon = minLon - ox / (k * scale), vMaxLon = minLon + (W - ox) / (k * scale);
    var vMaxLat = maxLat + oy / scale, vMinLat = maxLat - (H - oy) / scale;
    var g = s("g", { "class": "graticule" });
    var step = niceStep(Math.max((vMaxLon - vMinLon) * k, vMaxLat - vMinLat));
    var digits = step < 0.01 ? 3 : step < 0.1 ? 2 : 1;
    for (var lon = Math.ceil(vMinLon / step) * step; lon <= vMaxLon; lon += step) {
      append(g, s("line", { x1: X(lon), y1: 0, x2: X(lon), y2: H, "class": "grid-line" }));
      if (X(lon) > 40 && X(lon) < W - 60) append(g, s("text", { x: X(lon) + 4, y: H - 8, "class": "grid-label", text: lon.toFixed(digits) + "°E" }));
    }
    for (var lat = Math.ceil(vMinLat / step) * step; lat <= vMaxLat; lat += step) {
      append(g, s("line", { x1: 0, y1: Y(lat), x2: W, y2: Y(lat), "class": "grid-line" }));
      if (Y(lat) > 20 && Y(lat) < H - 24) append(g, s("text", { x: 6, y: Y(lat) - 5, "class": "grid-label", text: lat.toFixed(digits) + "°N" }));
    }
    var kmPerPx = 111.32 / scale;
    var km = [1, 2, 5, 10, 20, 50, 100].filter(function (x) { return x / kmPerPx <= W * 0.18; }).pop() || 1;
    var bar = km / kmPerPx, bx = W - bar - 20, by = H - 34;
    append(g, s("path", { d: "M" + bx + " " + (by - 5) + "v5h" + bar + "v-5", "class": "scale-bar" }));
    append(g, s("text", { x: bx + bar / 2, y: by - 9, "text-anchor": "middle", "class": "grid-label", text: km + " 公里" }));
    append(g, s("path", { d: "M" + (W - 30) + " 18l8 22l-8 -6l-8 6z", "class": "north" }));
    append(g, s("text", { x: W - 30, y: 56, "text-anchor": "middle", "class": "grid-label", text: "北" }));
    append(svg, g);

    // labels: placed after every mark, each at the first of right / left / above / below that overlaps
    // no mark, no placed label and stays inside the drawing (else the least overlapping one)
    var marks = [], pending = [];
    function mark(px, py, r) { marks.push({ x1: px - r, y1: py - r, x2: px + r, y2: py + r }); }
    function label(px, py, r, cls, text, priority) { pending.push({ px: px, py: py, r: r, cls: cls, text: text, pr: priority }); }
    function textWidth(text, size) {
      var w = 0;
      for (var i = 0; i < text.length; i++) w += text.charCodeAt(i) > 0x2e80 ? size : size * 0.6;
      return w;
    }
    function overlap(a, b) {
      var dx = Math.min(a.x2, b.x2) - Math.max(a.x1, b.x1), dy = Math.min(a.y2, b.y2) - Math.max(a.y1, b.y1);
      return dx > 0 && dy > 0 ? dx * dy : 0;
    }
    function placeLabels() {
      var placed = [];
      pending.sort(function (a, b) { return a.pr - b.pr; });
      pending.forEach(function (l) {
        var size = l.cls.indexOf("small") >= 0 ? 11 : 13, w = textWidth(l.text, size), gap = l.r + 4;
        var options = [
          { x: l.px + gap, y: l.py + size / 2 - 1, anchor: "start", box: { x1: l.px + gap, x2: l.px + gap + w } },
          { x: l.px - gap, y: l.py + size / 2 - 1, anchor: "end", box: { x1: l.px - gap - w, x2: l.px - gap } },
          { x: l.px, y: l.py - gap - 2, anchor: "middle", box: { x1: l.px - w / 2, x2: l.px + w / 2 }, above: true },
          { x: l.px, y: l.py + gap + size, anchor: "middle", box: { x1: l.px - w / 2, x2: l.px + w / 2 } }
        ];
        var best = null, bestCost = Infinity;
        options.forEach(function (o) {
          o.box.y1 = o.y - size; o.box.y2 = o.y + 3;
          var cost = 0;
          marks.concat(placed).forEach(function (b) { cost += overlap(o.box, b); });
          if (o.box.x1 < 2 || o.box.x2 > W - 2 || o.box.y1 < 2 || o.box.y2 > H - 2) cost += 1e6;
          if (cost < bestCost) { best = o; bestCost = cost; }
        });
        placed.push(best.box);
        append(svg, s("text", { x: best.x, y: best.y, "text-anchor": best.anchor, "class": l.cls, text: l.text }));
      });
    }

    // trips: project → truck → destination site
    var trips = s("g", { "class": "trips" });
    trucks.forEach(function (t) {
      var from = projectAt[t.o.project_id], to = siteAt[t.o.site_id];
      var pts = [from, t.p, to].filter(Boolean).map(function (p) { return X(p.lon).toFixed(1) + "," + Y(p.lat).toFixed(1); });
      if (pts.length > 1) append(trips, s("polyline", { points: pts.join(" "), "class": "trip" }));
    });
    append(svg, trips);

    var colors = { ok: "#22c55e", warn: "#f59e0b", alarm: "#ef4444" };
    projects.forEach(function (x) {
      var px = X(x.p.lon), py = Y(x.p.lat);
      append(svg, s("g", { "class": "map-project", "data-map-project": x.o.project_id },
        s("title", { text: x.o.name + "（" + x.o.project_id + "）" }),
        s("rect", { x: px - 6, y: py - 6, width: 12, height: 12, rx: 2, "class": "project-dot" })));
      mark(px, py, 7);
      label(px, py, 7, "label", x.o.name, 2);
    });
    sites.forEach(function (x) {
      var cls = loadClass(x.o);
      var px = X(x.p.lon), py = Y(x.p.lat);
      append(svg, s("g", { "class": "map-site " + cls, "data-map-site": x.o.site_id },
        s("title", { text: x.o.name + " 负荷 " + num(x.o.load_rate_pct).toFixed(1) + "%" }),
        x.o.alarm ? s("circle", { cx: px, cy: py, r: 11, "class": "site-ring" }) : null,
        s("circle", { cx: px, cy: py, r: 10, fill: colors[cls], "class": "site-dot" })));
      mark(px, py, 11);
      label(px, py, 11, "label", x.o.name + " " + num(x.o.load_rate_pct).toFixed(0) + "%", x.o.alarm ? 0 : 1);
    });
    trucks.forEach(function (t) {
      var px = X(t.p.lon), py = Y(t.p.lat);
      append(svg, s("g", { "class": "map-truck", "data-map-truck": t.o.ticket_id },
        s("title", { text: (t.o.plate || t.o.truck_id) + " → " + t.o.site_id + (t.reported ? "" : "（尚无定位，显示于出发工地）") }),
        s("circle", { cx: px, cy: py, r: 6, "class": "truck-dot" + (t.o.overdue ? " overdue" : "") })));
      mark(px, py, 7);
      label(px, py, 7, "label small", t.o.plate || t.o.truck_id, 3);
    });
    placeLabels();
  }

  function renderViolations(list) {
    var body = $("violations");
    clear(body);
    if (!list.length) {
      append(body, h("tr", null, h("td", { colspan: 5, "class": "empty", text: "暂无违规事件" })));
      return;
    }
    list.forEach(function (v) {
      var open = v.state === "reported" || v.state === "confirmed" || v.state === "dispatched";
      append(body, h("tr", { "data-violation-id": v.violation_id, "class": v.state === "reported" ? "fresh" : null },
        h("td", { "class": "id", title: v.description || "", text: v.violation_id }),
        h("td", { text: TYPES[v.type] || v.type }),
        h("td", { "class": "plate", text: v.plate || "—" }),
        h("td", null, h("span", { "class": "state state-" + v.state, text: STATES[v.state] || v.state })),
        h("td", { "class": "age", "data-reported": v.reported_at, "data-open": open ? "1" : "0",
          "data-handling": v.handling_seconds === null || v.handling_seconds === undefined ? "" : v.handling_seconds })));
    });
  }

  // reconciliation alarms: a place-day whose trips (gate scans or camera sightings) outrun its tickets
  function renderRecon(list) {
    var body = $("recon");
    clear(body);
    if (!list.length) {
      append(body, h("tr", null, h("td", { colspan: 6, "class": "empty", text: "车次与渣票相符" })));
      return;
    }
    list.forEach(function (r) {
      append(body, h("tr", { "class": "fresh", "data-recon": r.kind + ":" + r.place_id + ":" + r.day,
                             title: (r.reasons || []).join(", ") },
        h("td", { text: r.day }),
        h("td", { text: (r.kind === "exit" ? "工地出口 " : "消纳场 ") + r.place_id }),
        h("td", { text: fmtInt(r.trips) }),
        h("td", { text: fmtInt(r.tickets_issued) }),
        h("td", { text: fmtInt(r.sightings) }),
        h("td", { "class": "id", text: "+" + fmtInt(r.gap) + (r.unscanned ? "（未扫码 " + fmtInt(r.unscanned) + "）" : "") })));
    });
  }

  // the newest final block's certificate: "#height k/n 签名" and who signed (member names, in consortium order)
  function certificate(n) {
    var c = n.certificate;
    if (!c) {
      var fh = n.final_height;
      return h("dd", { "class": "cert", text: fh === null || fh === undefined || fh < 0 ? "—" : "#" + fmtInt(fh) });
    }
    var signers = c.signers || [];
    var short = signers.length < c.quorum;
    return h("dd", { "class": "cert" + (short ? " cert-short" : ""), "data-cert-height": c.height,
      "data-signers": signers.join(","), title: "区块头 " + c.header_hash + "；签名：" + signers.join("、") +
        "；门限 " + c.quorum + "/" + c.nodes },
      h("span", { "class": "cert-count", text: "#" + fmtInt(c.height) + " " + signers.length + "/" + c.nodes + " 签名" }),
      h("span", { "class": "cert-signers", text: signers.map(function (x) { return MEMBERS[x] || x; }).join("、") }));
  }

  function renderChain(chain) {
    var box = $("nodes");
    clear(box);
    var nodes = chain.nodes || [];
    nodes.forEach(function (n) {
      var bad = !n.reachable || n.diverged || n.fault;
      var pill = !n.reachable ? h("span", { "class": "pill pill-bad", text: "离线" })
        : n.diverged ? h("span", { "class": "pill pill-bad", text: "已分叉" })
        : n.fault ? h("span", { "class": "pill pill-warn", text: "故障" })
        : h("span", { "class": "pill pill-ok", text: "一致" });
      var rows = n.reachable ? [
        h("dt", { text: "区块高度" }), h("dd", { "class": "height", text: fmtInt(n.height) }),
        h("dt", { text: "最新区块头" }), h("dd", { "class": "hash", title: n.head || "", text: shortHash(n.head) }),
        h("dt", { text: "最新证书" }), certificate(n),
        h("dt", { text: "分叉" }), h("dd", { text: n.diverged ? "是（" + n.divergences + " 处）" : "否" }),
        h("dt", { text: "交易 / 待处理" }), h("dd", { text: fmtInt(n.transactions) + " / " + fmtInt(n.pool) })
      ] : [h("dt", { text: "状态" }), h("dd", { text: "无法连接" + (n.error ? "（" + n.error + "）" : "") })];
      append(box, h("dl", { "class": "node-card " + (bad ? "bad" : "ok"), "data-node": n.node || n.url,
        "data-diverged": n.diverged ? "1" : "0" },
        h("div", { "class": "node-name" }, h("span", { text: n.node || n.url }), pill), rows));
    });
    var summary = chain.agree ? nodes.length + " 个节点一致 · 共同高度 " + fmtInt(chain.height)
      : "注意：" + [
        (chain.diverged_nodes || []).length ? "分叉节点 " + chain.diverged_nodes.join("、") : "",
        (chain.unreachable || []).length ? (chain.unreachable.length + " 个节点离线") : ""
      ].filter(Boolean).join("；");
    $("chain-summary").textContent = summary;
    $("chain-summary").className = chain.agree ? "" : "error";
  }

  // every second: the clock and the violations' ages
  function tick() {
    var now = serverNow();
    var t = chinaTime(now);
    $("clock").textContent = t.date + " " + t.time;
    var cells = document.querySelectorAll("#violations td.age");
    for (var i = 0; i < cells.length; i++) {
      var c = cells[i];
      var reported = Date.parse(c.getAttribute("data-reported"));
      if (c.getAttribute("data-open") === "1") c.textContent = isFinite(reported) ? "已 " + age((now - reported) / 1000) : "—";
      else c.textContent = c.getAttribute("data-handling") ? "用时 " + age(num(c.getAttribute("data-handling"))) : "—";
    }
  }

  var resizeTimer = null;
  function onResize() {
    if (resizeTimer) window.clearTimeout(resizeTimer);
    resizeTimer = window.setTimeout(function () { if (lastData) renderMap(lastData); }, 200);
  }

  // ------------------------------------------------------------------ start
  document.addEventListener("DOMContentLoaded", function () {
    $("signin-form").addEventListener("submit", function (ev) {
      ev.preventDefault();
      var t = $("token-input").value.trim();
      if (!t) return;
      token = t;
      try { window.localStorage.setItem(KEY, t); } catch (e) { /* ignore */ }
      $("token-input").value = "";
      start();
    });
    $("signout").addEventListener("click", function () { forgetToken(); showSignin(""); });
    window.addEventListener("resize", onResize);
    window.addEventListener("hashchange", function () {
      var t = readToken();
      if (t && t !== token) { token = t; start(); }
    });
    window.setInterval(tick, 1000);
    tick();
    token = readToken();
    if (token) start(); else showSignin("");
  });
})();
