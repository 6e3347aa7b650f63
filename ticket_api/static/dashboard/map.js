/* 治理中心大屏: the map and the site-load chart, drawn by Apache ECharts (served from /dashboard/static/vendor/).
 * The map is a plain equirectangular projection of the district's lon/lat bounds on a cartesian grid (no tiles):
 * disposal sites, construction sites, trucks (clustered by screen cell; flagged ones always on their own and
 * highlighted), open events, and a ripple on each new event. Labels show on hover only; wheel/drag zooms. */
(function () {
  "use strict";
  var D = window.Dash;
  var COLORS = { ok: "#22c55e", warn: "#f59e0b", alarm: "#ef4444", project: "#60a5fa", truck: "#22d3ee",
    flagged: "#f97316", cluster: "#0ea5e9", event: "#f43f5e" };
  var CELL_PX = 64;          // trucks closer than this on screen share a cluster
  var map = null, chart = null, bounds = null, last = null, view = null;

  function available() { return typeof window.echarts !== "undefined"; }

  function init() {
    if (!available()) return false;
    if (!map) {
      map = window.echarts.init(D.$("map"));
      map.on("datazoom", function () { view = currentView(); if (last) draw(last.d, last.fresh, last.flaggedPlates, true); });
      map.on("click", function (p) {
        if (p.data && p.data.violation_id && D.openEvent) D.openEvent(p.data.violation_id);
      });
    }
    if (!chart) {
      chart = window.echarts.init(D.$("sites-chart"));
      if (window.ResizeObserver) {   // the panels change size as the grid fills in: follow them
        var pending = null;
        var ro = new window.ResizeObserver(function () {
          if (pending) window.clearTimeout(pending);
          pending = window.setTimeout(function () { pending = null; D.map.resize(); }, 100);
        });
        ro.observe(D.$("map"));
        ro.observe(D.$("sites-chart"));
      }
    }
    return true;
  }

  function currentView() {
    var opt = map.getOption();
    var x = opt.dataZoom && opt.dataZoom[0], y = opt.dataZoom && opt.dataZoom[1];
    if (!x || !y || !bounds) return null;
    var fx = [x.start / 100, x.end / 100], fy = [y.start / 100, y.end / 100];
    return { minLon: bounds.minLon + fx[0] * (bounds.maxLon - bounds.minLon),
      maxLon: bounds.minLon + fx[1] * (bounds.maxLon - bounds.minLon),
      minLat: bounds.minLat + fy[0] * (bounds.maxLat - bounds.minLat),
      maxLat: bounds.minLat + fy[1] * (bounds.maxLat - bounds.minLat), start: [x.start, x.end, y.start, y.end] };
  }

  /* the district's bounds, padded, widened to the panel's aspect (x scaled by cos of the mid latitude) */
  function fitBounds(points, W, H) {
    var lats = points.map(function (p) { return p.lat; }), lons = points.map(function (p) { return p.lon; });
    var minLat = Math.min.apply(null, lats), maxLat = Math.max.apply(null, lats);
    var minLon = Math.min.apply(null, lons), maxLon = Math.max.apply(null, lons);
    var padLat = Math.max(0.01, (maxLat - minLat) * 0.08), padLon = Math.max(0.01, (maxLon - minLon) * 0.08);
    minLat -= padLat; maxLat += padLat; minLon -= padLon; maxLon += padLon;
    var k = Math.cos(((minLat + maxLat) / 2) * Math.PI / 180);
    var spanX = (maxLon - minLon) * k, spanY = maxLat - minLat;
    if (spanX / spanY < W / H) {
      var wantX = spanY * W / H / k, cx = (minLon + maxLon) / 2;
      minLon = cx - wantX / 2; maxLon = cx + wantX / 2;
    } else {
      var wantY = spanX * H / W, cy = (minLat + maxLat) / 2;
      minLat = cy - wantY / 2; maxLat = cy + wantY / 2;
    }
    return { minLat: minLat, maxLat: maxLat, minLon: minLon, maxLon: maxLon };
  }

  function tipStyle() {
    return { trigger: "item", confine: true, backgroundColor: "rgba(13,28,48,.95)", borderColor: "#1d3a5c",
      textStyle: { color: "#d6e6ff", fontSize: fontPx(13) },
      formatter: function (p) { return (p.data && p.data.tip) || p.name || ""; } };
  }

  function fontPx(base) { return Math.round(base * Math.max(1, Math.min(2.2, window.innerHeight / 1000))); }

  function esc(s) { return String(s === null || s === undefined ? "" : s).replace(/[&<>"']/g, function (c) {
    return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]; }); }

  function hoverLabel(pos) {
    return { label: { show: false }, emphasis: { label: { show: true, position: pos || "right", color: "#eaf3ff",
      fontSize: fontPx(12), formatter: "{b}" }, scale: 1.4 } };
  }

  function merge(a, b) { Object.keys(b || {}).forEach(function (k) { a[k] = b[k]; }); return a; }

  /* the trucks in screen cells of CELL_PX; flagged trucks are never merged */
  function cluster(trucks, v, W) {
    var span = (v ? v.maxLon - v.minLon : bounds.maxLon - bounds.minLon);
    var cell = span / Math.max(4, W / CELL_PX);
    var cells = {}, singles = [], flagged = [], groups = [];
    trucks.forEach(function (t) {
      if (t.flagged) { flagged.push(t); return; }
      var key = Math.floor(t.p.lon / cell) + ":" + Math.floor(t.p.lat / cell);
      (cells[key] = cells[key] || []).push(t);
    });
    Object.keys(cells).forEach(function (k) {
      var c = cells[k];
      if (c.length === 1) { singles.push(c[0]); return; }
      var lon = 0, lat = 0;
      c.forEach(function (t) { lon += t.p.lon; lat += t.p.lat; });
      groups.push({ n: c.length, lon: lon / c.length, lat: lat / c.length, items: c });
    });
    return { singles: singles, flagged: flagged, groups: groups };
  }

  function truckItem(t) {
    var o = t.o;
    return { name: o.plate || o.truck_id, value: [t.p.lon, t.p.lat], ids: [o.ticket_id],
      tip: esc(D.t("truck_to", { plate: o.plate || o.truck_id, site: o.site_id })) +
        (t.flagged ? " · <b>" + esc(D.t("flagged")) + "</b>" + (t.why ? " (" + esc(t.why) + ")" : "") : "") };
  }

  /* d: the snapshot; fresh: ids of events that just arrived; flaggedPlates: plate -> open event types */
  function draw(d, fresh, flaggedPlates, keepZoom) {
    last = { d: d, fresh: fresh, flaggedPlates: flaggedPlates };
    if (!init()) return;
    var el = D.$("map"), W = el.clientWidth || 800, H = el.clientHeight || 500;
    var sites = (d.sites || []).map(function (x) { return { o: x, p: D.loc(x.location) }; }).filter(function (x) { return x.p; });
    var projects = (d.projects || []).map(function (x) { return { o: x, p: D.loc(x.location) }; }).filter(function (x) { return x.p; });
    var projectAt = {};
    projects.forEach(function (x) { projectAt[x.o.project_id] = x.p; });
    var trucks = (d.on_the_road || []).map(function (t) {
      var why = (flaggedPlates[t.plate] || []).concat(t.overdue ? [D.label("types", "overdue")] : [],
        (t.flags || []).map(function (f) { return D.label("types", f); }));
      return { o: t, p: D.loc(t.last_position) || projectAt[t.project_id] || null, flagged: why.length > 0,
        why: why.join("、") };
    }).filter(function (x) { return x.p; });
    var events = (d.violations || []).map(function (v) { return { o: v, p: D.loc(v.location) }; })
      .filter(function (x) { return x.p && (fresh[x.o.violation_id] || /reported|confirmed|dispatched/.test(x.o.state)); });
    var all = sites.concat(projects, trucks, events).map(function (x) { return x.p; });
    if (!all.length) { map.clear(); return; }
    var fixed = sites.concat(projects).map(function (x) { return x.p; });  // stable: trucks move, the district not
    if (!keepZoom || !bounds) bounds = fitBounds(fixed.length ? fixed : all, W, H);
    var c = cluster(trucks, keepZoom ? view : null, W);
    var maxN = Math.max.apply(null, [2].concat(c.groups.map(function (g) { return g.n; })));
    var zoom = view && keepZoom ? view.start : [0, 100, 0, 100];
    var axis = function (min, max, suffix) {
      return { type: "value", min: min, max: max, scale: true, splitNumber: 6,
        axisLine: { show: false }, axisTick: { show: false },
        axisLabel: { color: "#5f7897", fontSize: fontPx(11), showMinLabel: false, showMaxLabel: false, formatter: function (x) { return x.toFixed(2) + suffix; } },
        splitLine: { lineStyle: { color: "rgba(56,189,248,.08)" } } };
    };
    var siteData = function (alarm) {
      return sites.filter(function (x) { return !!x.o.alarm === alarm; }).map(function (x) {
        var cls = D.loadClass(x.o);
        return { name: x.o.name + " " + D.num(x.o.load_rate_pct).toFixed(0) + "%", value: [x.p.lon, x.p.lat],
          site_id: x.o.site_id, alarm: !!x.o.alarm, itemStyle: { color: COLORS[cls] },
          tip: esc(x.o.name) + "<br>" + esc(D.t("load_rate")) + " " + D.num(x.o.load_rate_pct).toFixed(1) + "% · " +
            esc(D.t("threshold")) + " " + D.num(x.o.threshold_pct) + "%" };
      });
    };
    var eventItem = function (x) {
      var v = x.o;
      return { name: D.label("types", v.type), value: [x.p.lon, x.p.lat], violation_id: v.violation_id,
        tip: esc(v.violation_id) + "<br>" + esc(D.label("types", v.type)) + " · " + esc(v.plate || "") + " · " +
          esc(D.label("states", v.state)) };
    };
    var sz = fontPx(10);
    map.setOption({
      animation: false,
      grid: { left: fontPx(52), right: 12, top: fontPx(22), bottom: fontPx(20) },
      xAxis: axis(bounds.minLon, bounds.maxLon, "°E"),
      yAxis: axis(bounds.minLat, bounds.maxLat, "°N"),
      dataZoom: [{ type: "inside", xAxisIndex: 0, filterMode: "none", start: zoom[0], end: zoom[1] },
        { type: "inside", yAxisIndex: 0, filterMode: "none", start: zoom[2], end: zoom[3] }],
      tooltip: tipStyle(),
      legend: { top: 0, right: 8, textStyle: { color: "#7f98b8", fontSize: fontPx(11) }, itemWidth: sz, itemHeight: sz,
        data: [D.t("lg_site"), D.t("lg_alarm"), D.t("lg_project"), D.t("lg_truck"), D.t("lg_cluster"),
          D.t("lg_flagged"), D.t("lg_event")] },
      series: [
        merge({ id: "projects", clip: true, name: D.t("lg_project"), type: "scatter", symbol: "rect", symbolSize: sz * 1.2,
          itemStyle: { color: COLORS.project }, z: 2,
          data: projects.map(function (x) { return { name: x.o.name, value: [x.p.lon, x.p.lat], project_id: x.o.project_id,
            tip: esc(x.o.name) + " (" + esc(x.o.project_id) + ")" }; }) }, hoverLabel()),
        merge({ id: "sites", clip: true, name: D.t("lg_site"), type: "scatter", symbolSize: sz * 1.6, z: 3, data: siteData(false),
          itemStyle: { color: COLORS.ok, borderColor: "#07111f", borderWidth: 1 } }, hoverLabel()),
        merge({ id: "site-alarms", clip: true, name: D.t("lg_alarm"), type: "effectScatter", symbolSize: sz * 2, z: 10,
          rippleEffect: { scale: 2.6, brushType: "stroke" }, itemStyle: { color: COLORS.alarm }, data: siteData(true) },
          hoverLabel()),
        merge({ id: "clusters", clip: true, name: D.t("lg_cluster"), type: "scatter", z: 5,
          itemStyle: { color: COLORS.cluster, opacity: 0.75, borderColor: "#bae6fd", borderWidth: 1 },
          label: { show: true, formatter: function (p) { return String(p.data.count); }, color: "#fff", fontSize: fontPx(11) },
          symbolSize: function (v, p) { return sz * 1.6 + sz * 2.2 * Math.sqrt(p.data.count / maxN); },
          data: c.groups.map(function (g) {
            return { name: D.t("cluster", { n: g.n }), value: [g.lon, g.lat], count: g.n,
              ids: g.items.map(function (t) { return t.o.ticket_id; }),
              tip: esc(D.t("cluster", { n: g.n })) + "<br>" + g.items.slice(0, 8).map(function (t) { return esc(t.o.plate); }).join("、") +
                (g.n > 8 ? "…" : "") };
          }) }),
        merge({ id: "trucks", clip: true, name: D.t("lg_truck"), type: "scatter", symbolSize: sz * 0.9, z: 6,
          itemStyle: { color: COLORS.truck }, data: c.singles.map(truckItem) }, hoverLabel()),
        merge({ id: "flagged", clip: true, name: D.t("lg_flagged"), type: "scatter", symbol: "diamond", symbolSize: sz * 1.5, z: 7,
          itemStyle: { color: COLORS.flagged, borderColor: "#fff", borderWidth: 1 }, data: c.flagged.map(truckItem) },
          hoverLabel()),
        merge({ id: "events", clip: true, name: D.t("lg_event"), type: "scatter", symbol: "triangle", symbolSize: sz * 1.3, z: 8,
          itemStyle: { color: COLORS.event, borderColor: "#fff", borderWidth: 1 },
          data: events.filter(function (x) { return !fresh[x.o.violation_id]; }).map(eventItem) }, hoverLabel()),
        merge({ id: "new-events", clip: true, name: D.t("lg_event"), type: "effectScatter", symbol: "triangle", symbolSize: sz * 2.4,
          z: 9, rippleEffect: { scale: 4, period: 1.6, brushType: "fill" }, itemStyle: { color: COLORS.event },
          data: events.filter(function (x) { return fresh[x.o.violation_id]; }).map(eventItem) }, hoverLabel())
      ]
    }, { replaceMerge: ["series"] });
  }

  function drawSites(sites) {
    if (!init()) return;
    var top = (sites || []).slice().sort(function (a, b) {
      return (b.alarm ? 1 : 0) - (a.alarm ? 1 : 0) || D.num(b.load_rate_pct) - D.num(a.load_rate_pct);
    }).slice(0, 8).reverse();
    var fs = fontPx(11);
    chart.setOption({
      animation: false,
      grid: { left: 8, right: 8, top: 4, bottom: 4, containLabel: true },
      tooltip: tipStyle(),
      xAxis: { type: "value", max: 100, show: false },
      yAxis: [{ type: "category", data: top.map(function (s) { return s.name; }), axisTick: { show: false },
        axisLine: { show: false }, axisLabel: { color: "#d6e6ff", fontSize: fs, width: fs * 9, overflow: "truncate" } },
        { type: "category", position: "right", data: top.map(function (s) { return D.num(s.load_rate_pct).toFixed(1) + "%"; }),
          axisTick: { show: false }, axisLine: { show: false },
          axisLabel: { fontSize: fs, color: "#eaf3ff", fontWeight: "bold" } }],
      series: [
        { id: "load", type: "bar", barWidth: "58%", showBackground: true,
          backgroundStyle: { color: "rgba(56,189,248,.07)" },
          data: top.map(function (s) {
            return { value: Math.min(100, D.num(s.load_rate_pct)), site_id: s.site_id,
              itemStyle: { color: COLORS[D.loadClass(s)] },
              tip: esc(s.name) + " " + D.num(s.load_rate_pct).toFixed(1) + "% · " + esc(D.t("threshold")) + " " + D.num(s.threshold_pct) + "%" };
          }) },
        { id: "threshold", type: "scatter", symbol: "rect", symbolSize: [2, fs * 1.4], z: 5,
          itemStyle: { color: "#fde68a" },
          data: top.map(function (s, i) { return { value: [D.num(s.threshold_pct), i],
            tip: esc(D.t("threshold")) + " " + D.num(s.threshold_pct) + "%" }; }) }
      ]
    }, { replaceMerge: ["series"] });
  }

  D.map = {
    available: available,
    draw: function (d, fresh, flaggedPlates) { draw(d, fresh, flaggedPlates, !!bounds && !!view); },
    drawSites: drawSites,
    resize: function () {
      if (map) { map.resize(); bounds = null; view = null; if (last) draw(last.d, last.fresh, last.flaggedPlates, false); }
      if (chart) chart.resize();
    },
    relabel: function () { if (last) draw(last.d, last.fresh, last.flaggedPlates, !!view); }
  };
})();
