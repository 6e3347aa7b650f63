/* 治理中心大屏: every string of the screen in one table (Chinese, English) and the small helpers the other
 * scripts share (window.Dash). The language: the toggle's choice (localStorage), else navigator.language. */
(function () {
  "use strict";

  var STRINGS = {
    zh: {
      title: "渣土运输治理中心 · 一屏掌控", sub: "电子渣票 · 区块链联盟账本 · 全链条闭环监管",
      conn_wait: "连接中…", conn_ok: "实时", conn_down: "连接中断，重连中", conn_signed_out: "未登录",
      updated: "数据更新于", signout: "退出", lang: "EN", lang_title: "Switch to English",
      sound_on: "提示音：开", sound_off: "提示音：关",
      c_tickets: "今日渣票", u_tickets: "张", c_road: "在途车辆", u_road: "辆", c_violations: "未结违规事件",
      u_violations: "起", c_alarms: "负荷告警消纳场", u_alarms: "处", c_util: "综合利用率", u_util: "%",
      n_tickets_total: "累计 {n} 张", n_overdue: "超时未到达 {n} 辆", n_on_time: "全部按时",
      n_states: "待确认 {r} · 已确认 {c} · 已派发 {d}", n_sites_total: "共 {n} 处消纳场",
      n_util: "资源化/回填 {a} / 消纳 {b}",
      p_map: "运输态势地图", p_map_sub: "在途车辆聚合 · 重点车辆高亮 · 事件标注",
      p_sites: "消纳场处置负荷率", p_sites_sub: "阈值告警 · 推荐替代场地",
      p_events: "违规事件", p_events_sub: "最新 {n} 起 · 点击查看处置",
      p_chain: "区块链节点健康", p_recon: "对账告警",
      lg_site: "消纳场", lg_alarm: "告警消纳场", lg_project: "施工工地", lg_truck: "在途车辆", lg_flagged: "重点车辆",
      lg_cluster: "车辆聚合", lg_event: "违规事件",
      col_no: "编号", col_type: "类型", col_time: "时间", col_place: "地点", col_plate: "车牌", col_state: "状态",
      col_age: "时长", none: "—", no_events: "暂无违规事件", waiting: "等待数据…", no_sites: "暂无消纳场",
      alarm_badge: "负荷告警", alternatives: "推荐替代消纳场", no_alternative: "暂无有余量的场地，请协调扩容",
      alt_item: "{name}（{kind}，{km} km，负荷 {rate}%，余量 {room}）",
      site_meta: "已消纳 {load} / 容量 {cap}", site_thr: "阈值 {thr}% · 余量 {room}",
      threshold: "告警阈值", load_rate: "负荷率",
      n_height: "区块高度", n_head: "最新区块头", n_cert: "最新证书", n_fork: "分叉", n_tx: "交易 / 待处理",
      n_state: "状态", n_unreachable: "无法连接", n_yes: "是（{n} 处）", n_no: "否",
      pill_ok: "一致", pill_off: "离线", pill_fork: "已分叉", pill_fault: "故障",
      cert_text: "#{h} {k}/{n} 签名", chain_ok: "{n} 个节点一致 · 共同高度 {h}",
      chain_bad: "注意：{what}", chain_forked: "分叉节点 {nodes}", chain_off: "{n} 个节点离线",
      recon_none: "车次与渣票相符", recon_exit: "工地出口 {id}", recon_site: "消纳场 {id}",
      recon_counts: "车次 {trips} · 渣票 {tickets} · 抓拍 {seen}", recon_gap: "缺口 +{gap}", recon_unscanned: "（未扫码 {n}）",
      recon_trips_over_tickets_exit: "出场 {trips} 车次（抓拍 {seen}、出口扫码 {scans}），仅开具渣票 {tickets} 张",
      recon_trips_over_tickets_site: "进场 {trips} 车次（抓拍 {seen}、场内扫码 {scans}），仅开具渣票 {tickets} 张",
      recon_seen_not_scanned_exit: "摄像头抓拍 {seen} 车，出口扫码仅 {scans} 车：{n} 车未扫码出场",
      recon_seen_not_scanned_site: "摄像头抓拍 {seen} 车，场内扫码仅 {scans} 车：{n} 车未扫码进场",
      keys_expiring: "密钥将到期：", key_item: "{member} {date}（剩 {days} 天）", key_expired: "{member} 已于 {date} 到期",
      age_s: "{n}秒", age_m: "{n}分钟", age_h: "{h}小时{m}", age_hm: "{n}分", age_d: "{d}天{h}", age_dh: "{n}小时",
      age_open: "已 {t}", age_done: "用时 {t}",
      d_title: "违规事件 {id}", d_close: "关闭", d_photo: "现场照片", d_photo_none: "无照片证据",
      d_photo_missing: "照片暂不可用", d_photo_mismatch: "照片与证据摘要不符，未显示", d_history: "处置经过", d_facts: "事件信息", d_description: "描述",
      d_source: "来源", d_ticket: "渣票", d_site: "消纳场", d_project: "工地", d_company: "运输企业",
      d_centre_label: "派发至", d_centre_default: "街道综合执法中心", d_centre_town: "{town}综合执法中心", d_note_label: "备注", d_key_label: "签名密钥（本部门或指挥中心）",
      d_key_loaded: "已载入密钥 {id}", d_key_bad: "无法读取该密钥",
      h_reported: "上报", h_confirmed: "确认", h_dispatched: "派发", h_resolved: "办结", h_dismissed: "排除",
      a_confirm: "确认违规", a_dismiss: "排除（误报）", a_dispatch: "派发处置", a_busy: "提交中…",
      a_done: "已提交：{state}", a_forbidden: "当前角色无权处置事件（需值班员或执法令牌）",
      sources: { camera: "摄像头抓拍", gate: "出入口闸机", patrol: "巡查", public: "群众举报" },
      echarts_missing: "图表库 ECharts 未安装（运行 scripts/serve 或 scripts/test 会自动安装），地图与图表暂不可用",
      signin_title: "治理中心登录", signin_text: "请输入值班员（operator）令牌。令牌仅保存在本机浏览器中。",
      signin_label: "访问令牌", signin_submit: "登录",
      err_401: "令牌无效或已过期，请重新输入。", err_403: "该令牌无权查看大屏（需值班员、执法或监管令牌）。",
      err_http: "请求失败（HTTP {s}）",
      types: {
        no_ticket: "无票运输", unapproved_disposal: "未经核准擅自处置", uncovered_load: "未密闭覆盖",
        overloaded: "超限超载", spilling: "抛洒滴漏", speeding: "超速行驶", off_route: "偏离路线",
        suspicious_stop: "异常停留", suspected_dumping: "疑似偷倒", overdue: "超时未到达", other: "其他事件"
      },
      states: { reported: "待确认", confirmed: "已确认", dispatched: "已派发", resolved: "已办结", dismissed: "已排除" },
      kinds: { landfill: "填埋场", recycling: "资源化利用厂", backfill: "回填场" },
      members: { chengguan: "城管", zhujian: "住建", jiaotong: "交通", shengtai: "生态环境", gateway: "接口服务" },
      wan: " 万m³", m3: " m³", km: "公里", truck_to: "{plate} → {site}", cluster: "{n} 辆在途车辆",
      flagged: "重点车辆"
    },
    en: {
      title: "Muck Transport Governance Centre", sub: "E-tickets · consortium ledger · closed-loop supervision",
      conn_wait: "Connecting…", conn_ok: "Live", conn_down: "Disconnected, reconnecting", conn_signed_out: "Signed out",
      updated: "Updated", signout: "Sign out", lang: "中文", lang_title: "切换到中文",
      sound_on: "Sound: on", sound_off: "Sound: off",
      c_tickets: "Tickets today", u_tickets: "", c_road: "Trucks on the road", u_road: "", c_violations: "Open events",
      u_violations: "", c_alarms: "Sites in alarm", u_alarms: "", c_util: "Utilisation", u_util: "%",
      n_tickets_total: "{n} in all", n_overdue: "{n} overdue", n_on_time: "all on time",
      n_states: "reported {r} · confirmed {c} · dispatched {d}", n_sites_total: "of {n} disposal sites",
      n_util: "reused/backfill {a} / received {b}",
      p_map: "Transport map", p_map_sub: "trucks clustered · flagged highlighted · events",
      p_sites: "Disposal-site load", p_sites_sub: "alarms · recommended alternatives",
      p_events: "Violation events", p_events_sub: "newest {n} · click to handle",
      p_chain: "Ledger node health", p_recon: "Reconciliation alarms",
      lg_site: "Disposal site", lg_alarm: "Site in alarm", lg_project: "Construction site", lg_truck: "Truck",
      lg_flagged: "Flagged truck", lg_cluster: "Trucks (cluster)", lg_event: "Event",
      col_no: "No.", col_type: "Type", col_time: "Time", col_place: "Place", col_plate: "Plate", col_state: "State",
      col_age: "Age", none: "—", no_events: "No events", waiting: "Waiting for data…", no_sites: "No disposal sites",
      alarm_badge: "Load alarm", alternatives: "Recommended alternatives", no_alternative: "No site has room: arrange more capacity",
      alt_item: "{name} ({kind}, {km} km, load {rate}%, room {room})",
      site_meta: "received {load} / capacity {cap}", site_thr: "threshold {thr}% · room {room}",
      threshold: "Alarm threshold", load_rate: "Load rate",
      n_height: "Height", n_head: "Head", n_cert: "Certificate", n_fork: "Diverged", n_tx: "Transactions / pool",
      n_state: "State", n_unreachable: "unreachable", n_yes: "yes ({n})", n_no: "no",
      pill_ok: "agrees", pill_off: "offline", pill_fork: "diverged", pill_fault: "fault",
      cert_text: "#{h} {k}/{n} signed", chain_ok: "{n} nodes agree · common height {h}",
      chain_bad: "Attention: {what}", chain_forked: "diverged {nodes}", chain_off: "{n} offline",
      recon_none: "Trips match the tickets", recon_exit: "Site exit {id}", recon_site: "Disposal site {id}",
      recon_counts: "trips {trips} · tickets {tickets} · sightings {seen}", recon_gap: "gap +{gap}",
      recon_unscanned: "({n} not scanned)",
      recon_trips_over_tickets_exit: "{trips} trips out (cameras {seen}, exit scans {scans}) against {tickets} tickets issued",
      recon_trips_over_tickets_site: "{trips} trips in (cameras {seen}, gate scans {scans}) against {tickets} tickets issued",
      recon_seen_not_scanned_exit: "seen by cameras {seen}, scanned at the exit {scans}: {n} left without a scan",
      recon_seen_not_scanned_site: "seen by cameras {seen}, scanned at the gate {scans}: {n} came in without a scan",
      keys_expiring: "Keys expiring: ", key_item: "{member} {date} ({days} days left)", key_expired: "{member} expired {date}",
      age_s: "{n}s", age_m: "{n} min", age_h: "{h} h {m}", age_hm: "{n} min", age_d: "{d} d {h}", age_dh: "{n} h",
      age_open: "{t} ago", age_done: "took {t}",
      d_title: "Event {id}", d_close: "Close", d_photo: "Photo", d_photo_none: "No photo evidence",
      d_photo_missing: "Photo not available", d_photo_mismatch: "Photo does not match its evidence digest: not shown", d_history: "History", d_facts: "Facts", d_description: "Description",
      d_source: "Source", d_ticket: "Ticket", d_site: "Disposal site", d_project: "Project", d_company: "Company",
      d_centre_label: "Dispatch to", d_centre_default: "Town enforcement centre", d_centre_town: "{town} enforcement centre", d_note_label: "Note", d_key_label: "Signing key (your department's or the centre's)",
      d_key_loaded: "key {id} loaded", d_key_bad: "cannot read this key",
      h_reported: "Reported", h_confirmed: "Confirmed", h_dispatched: "Dispatched", h_resolved: "Resolved",
      h_dismissed: "Dismissed",
      a_confirm: "Confirm", a_dismiss: "Dismiss (false capture)", a_dispatch: "Dispatch", a_busy: "Sending…",
      a_done: "Done: {state}", a_forbidden: "This role may not handle events (operator or enforcement token needed)",
      sources: { camera: "camera", gate: "gate", patrol: "patrol", public: "public report" },
      echarts_missing: "The chart library (ECharts) is not installed (scripts/serve or scripts/test installs it): no map or charts",
      signin_title: "Governance centre sign-in", signin_text: "Enter an operator token. It stays in this browser only.",
      signin_label: "Access token", signin_submit: "Sign in",
      err_401: "The token is invalid or expired: enter it again.",
      err_403: "This token may not see the screen (operator, enforcement or regulator token needed).",
      err_http: "Request failed (HTTP {s})",
      types: {
        no_ticket: "No ticket", unapproved_disposal: "Unapproved disposal", uncovered_load: "Uncovered load",
        overloaded: "Overloaded", spilling: "Spilling", speeding: "Speeding", off_route: "Off route",
        suspicious_stop: "Suspicious stop", suspected_dumping: "Suspected dumping", overdue: "Overdue", other: "Other"
      },
      states: { reported: "Reported", confirmed: "Confirmed", dispatched: "Dispatched", resolved: "Resolved",
        dismissed: "Dismissed" },
      kinds: { landfill: "landfill", recycling: "recycling plant", backfill: "backfill" },
      members: { chengguan: "Urban Mgmt", zhujian: "Housing", jiaotong: "Transport", shengtai: "Environment",
        gateway: "API gateway" },
      wan: "0k m³", m3: " m³", km: "km", truck_to: "{plate} → {site}", cluster: "{n} trucks on the road",
      flagged: "flagged"
    }
  };

  var KEY_LANG = "muckDashboardLang";

  function initialLang() {
    try { var saved = window.localStorage.getItem(KEY_LANG); if (saved && STRINGS[saved]) return saved; } catch (e) { /* */ }
    var nav = (navigator.languages && navigator.languages[0]) || navigator.language || "zh";
    return /^zh/i.test(nav) ? "zh" : "en";
  }

  var Dash = window.Dash = { lang: initialLang(), STRINGS: STRINGS };

  Dash.setLang = function (lang) {
    Dash.lang = STRINGS[lang] ? lang : "zh";
    try { window.localStorage.setItem(KEY_LANG, Dash.lang); } catch (e) { /* private mode */ }
    document.documentElement.lang = Dash.lang === "zh" ? "zh-CN" : "en";
  };

  /* t("key", {n: 1}) or t("types.speeding") */
  Dash.t = function (key, vars) {
    var table = STRINGS[Dash.lang];
    var parts = key.split(".");
    var v = table;
    for (var i = 0; i < parts.length && v !== undefined; i++) v = v[parts[i]];
    if (v === undefined) v = parts[parts.length - 1];
    v = String(v);
    if (vars) v = v.replace(/\{(\w+)\}/g, function (m, k) { return vars[k] === undefined ? m : String(vars[k]); });
    return v;
  };

  /* a label from a sub-table, or the code itself */
  Dash.label = function (table, code) {
    var v = STRINGS[Dash.lang][table];
    return (v && v[code]) || code || Dash.t("none");
  };

  Dash.$ = function (id) { return document.getElementById(id); };

  Dash.h = function (tag, attrs) {
    var el = document.createElement(tag);
    if (attrs) Object.keys(attrs).forEach(function (k) {
      var v = attrs[k];
      if (v === null || v === undefined || v === false) return;
      if (k === "text") el.textContent = String(v);
      else el.setAttribute(k, v === true ? "" : String(v));
    });
    for (var i = 2; i < arguments.length; i++) Dash.append(el, arguments[i]);
    return el;
  };

  Dash.append = function (el, child) {
    if (child === null || child === undefined || child === false) return;
    if (Array.isArray(child)) { child.forEach(function (c) { Dash.append(el, c); }); return; }
    el.appendChild(typeof child === "object" ? child : document.createTextNode(String(child)));
  };

  Dash.clear = function (el) { while (el.firstChild) el.removeChild(el.firstChild); };

  Dash.num = function (x) { var n = parseFloat(x); return isFinite(n) ? n : 0; };

  Dash.fmtInt = function (x) {
    if (x === null || x === undefined) return Dash.t("none");
    return Number(x).toLocaleString(Dash.lang === "zh" ? "zh-CN" : "en-US");
  };

  Dash.fmtM3 = function (x) {
    var n = Dash.num(x);
    if (n >= 10000) return (n / 10000).toFixed(n >= 100000 ? 1 : 2).replace(/\.?0+$/, "") + Dash.t("wan");
    return (Math.round(n * 10) / 10) + Dash.t("m3");
  };

  function pad(n) { return (n < 10 ? "0" : "") + n; }

  /* a time in +08:00 whatever the browser's zone */
  Dash.chinaTime = function (ms) {
    var d = new Date(ms + 8 * 3600 * 1000);
    return {
      date: d.getUTCFullYear() + "-" + pad(d.getUTCMonth() + 1) + "-" + pad(d.getUTCDate()),
      time: pad(d.getUTCHours()) + ":" + pad(d.getUTCMinutes()) + ":" + pad(d.getUTCSeconds())
    };
  };

  Dash.age = function (seconds) {
    var t = Dash.t;
    seconds = Math.max(0, Math.floor(seconds));
    if (seconds < 60) return t("age_s", { n: seconds });
    var m = Math.floor(seconds / 60);
    if (m < 60) return t("age_m", { n: m });
    var hrs = Math.floor(m / 60);
    if (hrs < 24) return t("age_h", { h: hrs, m: m % 60 ? t("age_hm", { n: m % 60 }) : "" }).trim();
    return t("age_d", { d: Math.floor(hrs / 24), h: hrs % 24 ? t("age_dh", { n: hrs % 24 }) : "" }).trim();
  };

  Dash.loc = function (x) {
    if (!x || x.lat === undefined || x.lon === undefined || x.lat === null) return null;
    var p = { lat: Dash.num(x.lat), lon: Dash.num(x.lon) };
    return (p.lat || p.lon) ? p : null;
  };

  Dash.loadClass = function (site) {
    if (site.alarm) return "alarm";
    var thr = Dash.num(site.threshold_pct !== undefined ? site.threshold_pct : site.alarm_threshold_pct);
    return Dash.num(site.load_rate_pct) >= thr - 10 ? "warn" : "ok";
  };

  /* every element with data-i18n="key" shows that string */
  Dash.translateStatic = function () {
    var els = document.querySelectorAll("[data-i18n]");
    for (var i = 0; i < els.length; i++) els[i].textContent = Dash.t(els[i].getAttribute("data-i18n"));
    document.title = Dash.t("title");
  };
})();
