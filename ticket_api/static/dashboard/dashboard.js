/* 治理中心大屏 (governance centre screen): follows GET /api/v1/dashboard/stream (server-sent events: the snapshot
 * now and on every change) and draws it: counters, the map and site load (map.js, ECharts), the events
 * (events.js), chain health per node and member keys close to expiry, reconciliation alarms (place, day, why).
 * No build step, nothing from another origin.
 * The bearer token comes from the URL fragment (#token=...), is kept in localStorage and removed from the
 * address bar; without one a sign-in box asks for it. EventSource cannot send headers: ?access_token=. */
(function () {
  "use strict";
  var D = window.Dash, h = D.h, t = D.t, $ = D.$;
  var STREAM = "/api/v1/dashboard/stream";
  var KEY = "muckDashboardToken", KEY_SOUND = "muckDashboardSound";
  var TIMEOUT_MS = 15000;

  var token = null, source = null, retryTimer = null, retryMs = 1000;
  var offsetMs = 0;          // server clock − browser clock
  var last = {};             // last rendered JSON per panel (skip unchanged redraws)
  var lastData = null;

  D.role = null;
  D.soundOn = false;

  // ------------------------------------------------------------------ the API (fetch with the token)
  D.api = function (method, path, body, asBlob) {
    var ctl = new AbortController();
    var killer = window.setTimeout(function () { ctl.abort(); }, TIMEOUT_MS);
    var headers = { "Authorization": "Bearer " + token, "Accept-Language": D.lang, "Accept": asBlob ? "*/*" : "application/json" };
    if (body) headers["Content-Type"] = "application/json";
    return fetch(path, { method: method, headers: headers, body: body ? JSON.stringify(body) : undefined,
      cache: "no-store", signal: ctl.signal }).then(function (resp) {
      // a blob from the bytes read whole: a body drained by resp.blob() is not kept for the browser's devtools
      if (resp.ok) return asBlob ? resp.arrayBuffer().then(function (buf) {
        return new Blob([buf], { type: resp.headers.get("Content-Type") || "" });
      }) : resp.json();
      return resp.json().catch(function () { return {}; }).then(function (err) {
        var e = err && (err.error || err);
        var ex = new Error((e && e.message) || t("err_http", { s: resp.status }));
        ex.status = resp.status;
        ex.reason = e && (e.code || e.reason);
        throw ex;
      });
    }).finally(function () { window.clearTimeout(killer); });
  };

  // ------------------------------------------------------------------ token
  function readToken() {
    var frag = new URLSearchParams(window.location.hash.replace(/^#/, ""));
    var tk = frag.get("token");
    if (tk) {
      try { window.localStorage.setItem(KEY, tk); } catch (e) { /* private mode: keep it in memory */ }
      window.history.replaceState(null, "", window.location.pathname + window.location.search);
      return tk;
    }
    try { return window.localStorage.getItem(KEY); } catch (e) { return null; }
  }

  function forgetToken() {
    token = null;
    try { window.localStorage.removeItem(KEY); } catch (e) { /* ignore */ }
  }

  function stop() {
    if (source) { source.close(); source = null; }
    if (retryTimer) { window.clearTimeout(retryTimer); retryTimer = null; }
  }

  function showSignin(message) {
    stop();
    $("signin").hidden = false;
    $("signout").hidden = true;
    var err = $("signin-error");
    err.hidden = !message;
    err.textContent = message || "";
    setConn("wait", t("conn_signed_out"));
    $("token-input").focus();
  }

  function setConn(state, text) {
    var el = $("conn");
    el.className = "conn conn-" + state;
    el.setAttribute("data-state", state);
    el.textContent = text;
  }

  // ------------------------------------------------------------------ the stream
  /* who the token is (its role decides the event buttons), then the stream; 401/403 -> sign in again */
  function connect() {
    stop();
    if (!token) return;
    D.api("GET", "/api/v1/auth/me").then(function (me) {
      D.role = me.role;
      if (["operator", "enforcement", "regulator"].indexOf(me.role) < 0) {
        forgetToken();
        showSignin(t("err_403"));
        return;
      }
      openStream();
    }).catch(function (err) {
      if (err.status === 401 || err.status === 403) {
        forgetToken();
        showSignin(t(err.status === 401 ? "err_401" : "err_403"));
        return;
      }
      retry();
    });
  }

  function openStream() {
    source = new EventSource(STREAM + "?access_token=" + encodeURIComponent(token));
    source.addEventListener("dashboard", function (ev) {
      retryMs = 1000;
      var data;
      try { data = JSON.parse(ev.data); } catch (e) { return; }
      render(data);
      setConn("ok", t("conn_ok"));
    });
    source.addEventListener("error", function () {
      // the server ends each stream after a while and the browser comes back by itself (readyState CONNECTING);
      // a refused one (CLOSED) is tried again after checking the token
      if (!source) return;
      if (source.readyState === EventSource.CLOSED) { setConn("down", t("conn_down")); retry(); }
    });
  }

  function retry() {
    stop();
    setConn("down", t("conn_down"));
    retryTimer = window.setTimeout(connect, retryMs);
    retryMs = Math.min(30000, retryMs * 2);
  }

  function start() {
    $("signin").hidden = true;
    $("signout").hidden = false;
    setConn("wait", t("conn_wait"));
    connect();
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
    $("updated").textContent = D.chinaTime(isFinite(gen) ? gen : Date.now()).time;
    var list = d.violations || [];
    var arrived = D.events.arrivals(list);
    var plates = D.events.flaggedPlates(list);
    if (changed("counters", [d.counters, d.statistics, (d.sites || []).length, (d.on_the_road || []).length])) renderCounters(d);
    if (changed("sites", d.sites)) { renderSites(d.sites || []); if (D.map.available()) D.map.drawSites(d.sites || []); }
    if (changed("map", [d.sites, d.projects, d.on_the_road, list.map(function (v) { return [v.violation_id, v.state]; })]) || arrived) {
      if (D.map.available()) D.map.draw(d, D.events.fresh(), plates);
    }
    if (changed("violations", list) || arrived) D.events.render(list);
    if (changed("chain", d.chain)) renderChain(d.chain || { nodes: [] });
    if (changed("reconciliation", d.reconciliation || null)) renderReconciliation(d.reconciliation);
    tick();
  }

  function setCounter(name, value) {
    document.querySelector('[data-counter="' + name + '"]').textContent = value;
  }

  function renderCounters(d) {
    var c = d.counters || {};
    setCounter("tickets_today", D.fmtInt(c.tickets_today));
    setCounter("trucks_on_the_road", D.fmtInt(c.trucks_on_the_road));
    setCounter("open_violations", D.fmtInt(c.open_violations));
    setCounter("sites_in_alarm", D.fmtInt(c.sites_in_alarm));
    setCounter("utilisation_rate_pct", c.utilisation_rate_pct === null || c.utilisation_rate_pct === undefined
      ? t("none") : D.num(c.utilisation_rate_pct).toFixed(2));
    $("c-tickets-total").textContent = t("n_tickets_total", { n: D.fmtInt(c.tickets_issued) });
    var overdue = (d.on_the_road || []).filter(function (x) { return x.overdue; }).length;
    $("c-road-overdue").textContent = overdue ? t("n_overdue", { n: overdue }) : t("n_on_time");
    var by = c.open_violations_by_state || {};
    $("c-violations-states").textContent = t("n_states", { r: by.reported || 0, c: by.confirmed || 0, d: by.dispatched || 0 });
    $("c-alarms-total").textContent = t("n_sites_total", { n: (d.sites || []).length });
    var st = d.statistics || {};
    $("c-util-note").textContent = t("n_util", { a: D.fmtM3(st.reused_m3), b: D.fmtM3(st.received_m3) });
    $("c-alarms").classList.toggle("hot", D.num(c.sites_in_alarm) > 0);
    $("c-violations").classList.toggle("hot", D.num(by.reported) > 0);
  }

  /* every site, alarms first: load bar with its threshold mark; a site in alarm lists the alternatives */
  function renderSites(sites) {
    var box = $("sites");
    D.clear(box);
    if (!sites.length) { D.append(box, h("p", { "class": "empty", text: t("no_sites") })); return; }
    sites.slice().sort(function (a, b) {
      return (b.alarm ? 1 : 0) - (a.alarm ? 1 : 0) || D.num(b.load_rate_pct) - D.num(a.load_rate_pct);
    }).forEach(function (site) {
      var cls = D.loadClass(site), rate = Math.min(100, D.num(site.load_rate_pct)), thr = D.num(site.threshold_pct);
      var fill = h("span", { "class": "fill" });
      fill.style.width = rate + "%";
      var mark = h("span", { "class": "mark", title: t("threshold") + " " + thr + "%" });
      mark.style.left = "calc(" + Math.min(100, thr) + "% - 1px)";
      var alt = null;
      if (site.alarm) {
        var items = (site.alternatives || []).map(function (a) {
          return h("li", null, t("alt_item", { name: a.name, kind: D.label("kinds", a.kind),
            km: (D.num(a.distance_m) / 1000).toFixed(1), rate: D.num(a.load_rate_pct).toFixed(1), room: D.fmtM3(a.room_m3) }));
        });
        alt = h("div", { "class": "alt" }, h("b", { text: t("alternatives") }),
          items.length ? h("ol", null, items) : h("div", { "class": "muted", text: t("no_alternative") }));
      }
      D.append(box, h("div", { "class": "site " + cls, "data-site-id": site.site_id, "data-alarm": site.alarm ? "1" : "0" },
        h("div", { "class": "row" },
          h("span", { "class": "name", title: site.site_id }, site.name,
            h("span", { "class": "kind", text: D.label("kinds", site.kind) }),
            site.alarm ? h("span", { "class": "alarm-badge", text: t("alarm_badge") }) : null),
          h("span", { "class": "rate", text: D.num(site.load_rate_pct).toFixed(1) + "%" })),
        h("div", { "class": "bar", role: "meter", "aria-valuemin": 0, "aria-valuemax": 100, "aria-valuenow": rate }, fill, mark),
        h("div", { "class": "meta" },
          h("span", { text: t("site_meta", { load: D.fmtM3(site.load_m3), cap: D.fmtM3(site.capacity_m3) }) }),
          h("span", { text: t("site_thr", { thr: thr, room: D.fmtM3(site.room_m3) }) })),
        alt));
    });
  }

  function shortHash(x) { return x ? String(x).slice(0, 12) + "…" : t("none"); }

  /* the newest final block's certificate: "#height k/n 签名" and who signed (member names) */
  function certificate(n) {
    var c = n.certificate;
    if (!c) {
      var fh = n.final_height;
      return h("dd", { "class": "cert", text: fh === null || fh === undefined || fh < 0 ? t("none") : "#" + D.fmtInt(fh) });
    }
    var signers = c.signers || [];
    return h("dd", { "class": "cert" + (signers.length < c.quorum ? " cert-short" : ""), "data-cert-height": c.height,
      "data-signers": signers.join(","), title: c.header_hash + " · " + signers.join(", ") + " · " + c.quorum + "/" + c.nodes },
      h("span", { "class": "cert-count", text: t("cert_text", { h: D.fmtInt(c.height), k: signers.length, n: c.nodes }) }),
      h("span", { "class": "cert-signers", text: signers.map(function (x) { return D.label("members", x); }).join("、") }));
  }

  function renderChain(chain) {
    var box = $("nodes");
    D.clear(box);
    var nodes = chain.nodes || [];
    nodes.forEach(function (n) {
      var bad = !n.reachable || n.diverged || n.fault;
      var pill = !n.reachable ? h("span", { "class": "pill pill-bad", text: t("pill_off") })
        : n.diverged ? h("span", { "class": "pill pill-bad", text: t("pill_fork") })
        : n.fault ? h("span", { "class": "pill pill-warn", text: t("pill_fault") })
        : h("span", { "class": "pill pill-ok", text: t("pill_ok") });
      var rows = n.reachable ? [
        h("dt", { text: t("n_height") }), h("dd", { "class": "height", text: D.fmtInt(n.height) }),
        h("dt", { text: t("n_head") }), h("dd", { "class": "hash", title: n.head || "", text: shortHash(n.head) }),
        h("dt", { text: t("n_cert") }), certificate(n),
        h("dt", { text: t("n_fork") }), h("dd", { text: n.diverged ? t("n_yes", { n: n.divergences }) : t("n_no") }),
        h("dt", { text: t("n_tx") }), h("dd", { text: D.fmtInt(n.transactions) + " / " + D.fmtInt(n.pool) })
      ] : [h("dt", { text: t("n_state") }), h("dd", { text: t("n_unreachable") + (n.error ? " (" + n.error + ")" : "") })];
      D.append(box, h("dl", { "class": "node-card " + (bad ? "bad" : "ok"), "data-node": n.node || n.url,
        "data-diverged": n.diverged ? "1" : "0" },
        h("div", { "class": "node-name" }, h("span", { text: n.node || n.url }), pill), rows));
    });
    var what = [(chain.diverged_nodes || []).length ? t("chain_forked", { nodes: chain.diverged_nodes.join("、") }) : "",
      (chain.unreachable || []).length ? t("chain_off", { n: chain.unreachable.length }) : ""].filter(Boolean).join("; ");
    $("chain-summary").textContent = chain.agree ? t("chain_ok", { n: nodes.length, h: D.fmtInt(chain.height) })
      : t("chain_bad", { what: what });
    $("chain-summary").className = chain.agree ? "" : "error";
    renderKeys(chain.keys_expiring || []);
  }

  /* member keys whose validity ends within 30 days (or ended): one alarm line, nothing when there are none */
  function renderKeys(keys) {
    var line = $("keys-expiring");
    D.clear(line);
    line.hidden = !keys.length;
    if (!keys.length) return;
    var items = keys.map(function (k) {
      var ms = Date.parse(k.not_after), date = isFinite(ms) ? D.chinaTime(ms).date : String(k.not_after || "");
      var who = D.label("members", k.member), days = D.num(k.days_left);
      return h("span", { "class": "key-item" + (days < 0 ? " key-expired" : ""), "data-member": k.member,
        "data-not-after": k.not_after, title: k.key_id || "" },
        t(days < 0 ? "key_expired" : "key_item", { member: who, date: date, days: days }));
    });
    var sep = [];
    items.forEach(function (it, i) { if (i) sep.push("、"); sep.push(it); });
    D.append(line, [h("b", { text: t("keys_expiring") }), sep]);
    line.title = line.textContent;
  }

  /* why a place-day is in alarm, in words: trips (cameras, scans) against the tickets issued, or trucks the
   * cameras saw that no gate scanned (reason codes of ledger/eticket/reconcile.py; an unknown one: its code) */
  function reconReason(r, reason) {
    var key = "recon_" + reason + "_" + (r.kind === "exit" ? "exit" : "site"), text = t(key, {
      trips: D.fmtInt(r.trips), seen: D.fmtInt(r.sightings), scans: D.fmtInt(r.scans),
      tickets: D.fmtInt(r.tickets_issued), n: D.fmtInt(reason === "seen_not_scanned" ? r.unscanned : r.gap) });
    return h("span", { "class": "recon-reason", "data-reason": reason, text: text === key ? reason : text });
  }

  /* reconciliation alarms, when the snapshot carries them: a place-day (site exit or disposal site) whose trips
   * (gate scans, camera sightings) outrun its tickets: the place (name and id), the day, why, the counts */
  function renderReconciliation(rec) {
    var box = $("reconciliation");
    D.clear(box);
    var list = Array.isArray(rec) ? rec : (rec && (rec.alarms || rec.items)) || [];
    $("panel-recon").classList.toggle("hot", list.length > 0);
    if (!list.length) { D.append(box, h("li", { "class": "empty", text: t("recon_none") })); return; }
    list.forEach(function (r) {
      var name = r.place_name ? r.place_name + " · " + r.place_id : r.place_id;
      D.append(box, h("li", { "class": "recon-item", "data-recon": r.kind + ":" + r.place_id + ":" + r.day,
        title: (r.reasons || []).join(", ") },
        h("b", { "class": "recon-place", text: t(r.kind === "exit" ? "recon_exit" : "recon_site", { id: name }) }),
        h("span", { "class": "muted recon-day", text: r.day }),
        h("span", { "class": "error", text: t("recon_gap", { gap: D.fmtInt(r.gap) }) +
          (r.unscanned ? " " + t("recon_unscanned", { n: D.fmtInt(r.unscanned) }) : "") }),
        (r.reasons || []).map(function (reason) { return reconReason(r, reason); }),
        h("span", { "class": "muted recon-counts", text: t("recon_counts", { trips: D.fmtInt(r.trips),
          tickets: D.fmtInt(r.tickets_issued), seen: D.fmtInt(r.sightings) }) })));
    });
  }

  // every second: the clock and the events' ages
  function tick() {
    var now = Date.now() + offsetMs, c = D.chinaTime(now);
    $("clock").textContent = c.date + " " + c.time;
    D.events.tickAges(now);
  }

  function relabel() {
    D.translateStatic();
    $("lang").textContent = t("lang");
    $("lang").title = t("lang_title");
    $("sound").textContent = t(D.soundOn ? "sound_on" : "sound_off");
    $("sound").setAttribute("aria-pressed", D.soundOn ? "true" : "false");
    if (!D.map.available()) { $("notice").hidden = false; $("notice").textContent = t("echarts_missing"); }
    if (lastData) { last = {}; render(lastData); }
    if (source) setConn("ok", t("conn_ok"));
  }

  var resizeTimer = null;
  function onResize() {
    if (resizeTimer) window.clearTimeout(resizeTimer);
    resizeTimer = window.setTimeout(function () { if (D.map.available()) D.map.resize(); }, 150);
  }

  // ------------------------------------------------------------------ start
  document.addEventListener("DOMContentLoaded", function () {
    D.setLang(D.lang);
    try { D.soundOn = window.localStorage.getItem(KEY_SOUND) === "1"; } catch (e) { /* */ }
    relabel();
    $("signin-form").addEventListener("submit", function (ev) {
      ev.preventDefault();
      var tk = $("token-input").value.trim();
      if (!tk) return;
      token = tk;
      try { window.localStorage.setItem(KEY, tk); } catch (e) { /* ignore */ }
      $("token-input").value = "";
      start();
    });
    $("signout").addEventListener("click", function () { forgetToken(); showSignin(""); });
    $("lang").addEventListener("click", function () { D.setLang(D.lang === "zh" ? "en" : "zh"); relabel(); });
    $("sound").addEventListener("click", function () {
      D.soundOn = !D.soundOn;
      try { window.localStorage.setItem(KEY_SOUND, D.soundOn ? "1" : "0"); } catch (e) { /* */ }
      relabel();
    });
    window.addEventListener("resize", onResize);
    window.addEventListener("hashchange", function () {
      var tk = readToken();
      if (tk && tk !== token) { token = tk; start(); }
    });
    window.setInterval(tick, 1000);
    tick();
    token = readToken();
    if (token) start(); else showSignin("");
  });
})();
