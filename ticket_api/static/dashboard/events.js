/* 治理中心大屏: the event list (number, type, time, place, plate, state, age; new ones flash, with an optional
 * sound), an event's detail (photo fetched with the bearer token, history) and its handling from the screen:
 * confirm, dismiss, dispatch through POST /api/v1/violations/<id>/<step> (the API checks the role; errors show
 * the API's own localized message), signed by the centre's operators' key or the enforcement department's key
 * when the operator or officer loaded it. */
(function () {
  "use strict";
  var D = window.Dash, h = D.h, t = D.t;
  var FLASH_MS = 20000;
  var DIGEST = /^(?:sha256:)?([0-9a-f]{64})$/;
  var EVIDENCE_URL = /\/api\/v1\/evidence\/(?:sha256:|sha256%3A)?([0-9a-f]{64})$/i;
  var HANDLERS = { operator: true, enforcement: true };
  var seen = null;             // violation ids already shown (null until the first snapshot)
  var fresh = {};              // violation id -> time it arrived
  var byId = {};
  var openId = null;
  var audio = null;
  var photoUrls = [];          // object URLs of the photos shown (revoked when the detail closes)

  function place(v) {
    var p = D.loc(v.location);
    var where = v.town || v.site_id || v.project_id || "";
    return where || (p ? p.lat.toFixed(4) + ", " + p.lon.toFixed(4) : t("none"));
  }

  function timeOf(iso) {
    var ms = Date.parse(iso);
    return isFinite(ms) ? D.chinaTime(ms).time : t("none");
  }

  function beep() {
    if (!D.soundOn) return;
    try {
      var Ctx = window.AudioContext || window.webkitAudioContext;
      if (!Ctx) return;
      audio = audio || new Ctx();
      var o = audio.createOscillator(), g = audio.createGain();
      o.type = "sine"; o.frequency.value = 880;
      g.gain.setValueAtTime(0.0001, audio.currentTime);
      g.gain.exponentialRampToValueAtTime(0.25, audio.currentTime + 0.02);
      g.gain.exponentialRampToValueAtTime(0.0001, audio.currentTime + 0.45);
      o.connect(g); g.connect(audio.destination);
      o.start(); o.stop(audio.currentTime + 0.5);
    } catch (e) { /* no audio device: silent */ }
  }

  /* which events are new since the last snapshot (none on the first one: nothing flashes on load) */
  function arrivals(list) {
    var now = Date.now(), added = 0;
    if (seen === null) { seen = {}; list.forEach(function (v) { seen[v.violation_id] = true; }); }
    list.forEach(function (v) {
      if (!seen[v.violation_id]) { seen[v.violation_id] = true; fresh[v.violation_id] = now; added++; }
    });
    Object.keys(fresh).forEach(function (id) { if (now - fresh[id] > FLASH_MS) delete fresh[id]; });
    if (added) beep();
    return added;
  }

  function render(list) {
    byId = {};
    list.forEach(function (v) { byId[v.violation_id] = v; });
    D.$("events-sub").textContent = t("p_events_sub", { n: list.length });
    var box = D.$("violations");
    D.clear(box);
    if (!list.length) { D.append(box, h("li", { "class": "empty", text: t("no_events") })); return; }
    list.forEach(function (v) {
      var open = /reported|confirmed|dispatched/.test(v.state);
      var li = h("li", { "class": "event" + (fresh[v.violation_id] ? " flash" : "") + (v.state === "reported" ? " fresh" : ""),
        "data-violation-id": v.violation_id, tabindex: "0", role: "button", title: v.description || "" },
        h("span", { "class": "id", text: v.violation_id }),
        h("span", { "class": "type", text: D.label("types", v.type) }),
        h("span", { "class": "time", text: timeOf(v.reported_at) }),
        h("span", { "class": "place", text: place(v) }),
        h("span", { "class": "plate", text: v.plate || t("none") }),
        h("span", null, h("span", { "class": "state state-" + v.state, text: D.label("states", v.state) })),
        h("span", { "class": "age", "data-reported": v.reported_at, "data-open": open ? "1" : "0",
          "data-handling": v.handling_seconds === null || v.handling_seconds === undefined ? "" : v.handling_seconds }));
      li.addEventListener("click", function () { openEvent(v.violation_id); });
      li.addEventListener("keydown", function (ev) { if (ev.key === "Enter") openEvent(v.violation_id); });
      D.append(box, li);
    });
    if (openId && byId[openId]) fillDetail(byId[openId], false);
  }

  function tickAges(now) {
    var cells = document.querySelectorAll("#violations .age");
    for (var i = 0; i < cells.length; i++) {
      var c = cells[i], reported = Date.parse(c.getAttribute("data-reported"));
      if (c.getAttribute("data-open") === "1") c.textContent = isFinite(reported) ? t("age_open", { t: D.age((now - reported) / 1000) }) : t("none");
      else c.textContent = c.getAttribute("data-handling") ? t("age_done", { t: D.age(D.num(c.getAttribute("data-handling"))) }) : t("none");
    }
    var rows = document.querySelectorAll("#violations .event.flash");
    for (var j = 0; j < rows.length; j++) {
      var id = rows[j].getAttribute("data-violation-id");
      if (!fresh[id]) rows[j].classList.remove("flash");
    }
  }

  /* plate -> the types of its open events (the map highlights those trucks) */
  function flaggedPlates(list) {
    var out = {};
    list.forEach(function (v) {
      if (v.plate && /reported|confirmed|dispatched/.test(v.state)) (out[v.plate] = out[v.plate] || []).push(D.label("types", v.type));
    });
    return out;
  }

  // ------------------------------------------------------------------ the detail
  function openEvent(id) {
    var v = byId[id];
    if (!v) return;
    openId = id;
    D.$("detail").hidden = false;
    D.$("detail-message").hidden = true;
    D.$("detail-note").value = "";
    D.$("detail-centre").value = v.town ? t("d_centre_town", { town: v.town }) : t("d_centre_default");
    fillDetail(v, true);
  }

  function closeEvent() {
    openId = null;
    D.$("detail").hidden = true;
    clearPhotos();
  }

  function clearPhotos() {
    D.clear(D.$("detail-photo"));
    photoUrls.forEach(function (u) { URL.revokeObjectURL(u); });
    photoUrls = [];
  }

  /* the photo digests of a violation: its evidence (sha256:<hex>) and its evidence_urls, once each */
  function digestsOf(v) {
    var out = [];
    (v.evidence || []).forEach(function (e) { var m = DIGEST.exec(String(e)); if (m) out.push(m[1].toLowerCase()); });
    (v.evidence_urls || []).forEach(function (u) {
      var m = EVIDENCE_URL.exec(String(u).split("?")[0]);
      if (m) out.push(m[1].toLowerCase());
    });
    return out.filter(function (d, i) { return out.indexOf(d) === i; });
  }

  function fact(label, value) { return value ? [h("dt", { text: label }), h("dd", { text: value })] : []; }

  function fillDetail(v, withPhoto) {
    D.$("detail-title").textContent = t("d_title", { id: v.violation_id });
    var p = D.loc(v.location);
    var facts = D.$("detail-facts");
    D.clear(facts);
    D.append(facts, [
      fact(t("col_type"), D.label("types", v.type)), fact(t("col_state"), D.label("states", v.state)),
      fact(t("d_source"), D.label("sources", v.source)), fact(t("col_plate"), v.plate),
      fact(t("col_place"), [v.town, p ? p.lat.toFixed(5) + ", " + p.lon.toFixed(5) : ""].filter(Boolean).join(" · ")),
      fact(t("d_ticket"), v.ticket_id), fact(t("d_site"), v.site_id), fact(t("d_project"), v.project_id),
      fact(t("d_company"), v.company_id), fact(t("d_description"), v.description)]);
    var hist = D.$("detail-history");
    D.clear(hist);
    [["reported", v.reported_at, v.source], ["confirmed", v.confirmed_at, v.note],
      ["dispatched", v.dispatched_at, v.centre], ["resolved", v.resolved_at, v.result],
      ["dismissed", v.dismissed_at, v.note]].forEach(function (step) {
      if (!step[1]) return;
      var ms = Date.parse(step[1]), when = isFinite(ms) ? D.chinaTime(ms) : null;
      D.append(hist, h("li", { "data-step": step[0] }, h("b", { text: t("h_" + step[0]) }),
        h("span", { "class": "muted", text: when ? when.date + " " + when.time : step[1] }),
        step[2] && step[0] !== "reported" ? h("span", { text: step[2] }) : null));
    });
    var mayHandle = !!HANDLERS[D.role];
    var btns = document.querySelectorAll("#detail-actions .act");
    for (var i = 0; i < btns.length; i++) {
      var step = btns[i].getAttribute("data-step");
      var allowed = step === "dispatch" ? v.state === "confirmed" : v.state === "reported" || (step === "dismiss" && v.state === "confirmed");
      btns[i].hidden = !mayHandle;
      btns[i].disabled = !allowed;
    }
    D.$("detail-actions").hidden = !mayHandle;
    if (!mayHandle) showMessage(t("a_forbidden"), false);
    if (withPhoto) loadPhotos(v);
  }

  /* the hex SHA-256 of a blob; null where the browser has no WebCrypto (a page not served from a secure
   * origin: neither https nor loopback) */
  function sha256(blob) {
    var subtle = window.crypto && window.crypto.subtle;
    if (!subtle || !blob.arrayBuffer) return Promise.resolve(null);
    return blob.arrayBuffer().then(function (buf) { return subtle.digest("SHA-256", buf); }).then(function (d) {
      return Array.prototype.map.call(new Uint8Array(d), function (b) { return (b < 16 ? "0" : "") + b.toString(16); })
        .join("");
    }, function () { return null; });
  }

  /* each photo fetched with the bearer token (an <img src> cannot send it) and shown from an object URL of the
   * blob (the page's CSP allows img-src blob:) once its bytes hash to the digest; none: "no photo evidence";
   * one the store lacks: said so */
  function loadPhotos(v) {
    clearPhotos();
    var box = D.$("detail-photo");
    var digests = digestsOf(v);
    if (!digests.length) { D.append(box, h("p", { "class": "muted photo-none", text: t("d_photo_none") })); return; }
    var id = v.violation_id;
    digests.slice(0, 4).forEach(function (digest) {
      var slot = h("figure", { "class": "photo", "data-digest": digest }, h("figcaption", { "class": "muted", text: t("d_photo") }));
      D.append(box, slot);
      D.api("GET", "/api/v1/evidence/sha256:" + digest, null, true).then(function (blob) {
        return sha256(blob).then(function (got) { return { blob: blob, got: got }; });
      }).then(function (r) {
        if (openId !== id) return;
        if (r.got !== null && r.got !== digest) {   // the server checks it too: never show other bytes
          D.append(slot, h("p", { "class": "error", text: t("d_photo_mismatch") }));
          return;
        }
        if (r.got !== null) slot.setAttribute("data-verified", "1");
        var url = URL.createObjectURL(r.blob);
        photoUrls.push(url);
        var img = h("img", { alt: t("d_photo"), "data-digest": digest });
        img.addEventListener("load", function () { slot.setAttribute("data-loaded", "1"); });
        img.addEventListener("error", function () {
          slot.setAttribute("data-loaded", "0");
          D.append(slot, h("p", { "class": "muted", text: t("d_photo_missing") }));
        });
        img.src = url;
        D.append(slot, img);
      }).catch(function () {
        if (openId === id) D.append(slot, h("p", { "class": "muted", text: t("d_photo_missing") }));
      });
    });
  }

  function showMessage(text, bad) {
    var m = D.$("detail-message");
    m.hidden = !text;
    m.textContent = text || "";
    m.className = "detail-message" + (bad ? " error" : "");
  }

  function act(step) {
    var v = byId[openId];
    if (!v) return;
    var body = {};
    var note = D.$("detail-note").value.trim(), centre = D.$("detail-centre").value.trim();
    if (step === "dispatch") body.centre = centre || t("d_centre_default");
    else if (note) body.note = note;
    if (step === "dismiss" && !body.note) body.note = t("a_dismiss");
    var btns = document.querySelectorAll("#detail-actions .act");
    for (var i = 0; i < btns.length; i++) btns[i].disabled = true;
    showMessage(t("a_busy"), false);
    var path = "/api/v1/violations/" + encodeURIComponent(v.violation_id);
    // signed by the department's enforcement key when the officer loaded it (signing.js)
    D.signing.signStep(step, v.violation_id, body).then(function (signed) {
      return D.api("POST", path + "/" + step, signed);
    }).then(function (res) {
      // the whole record as the ledger now has it (times of each step), else what the step answered
      return D.api("GET", path).catch(function () { return Object.assign({}, v, res || {}); });
    }).then(function (updated) {
      byId[v.violation_id] = updated;
      fillDetail(updated, false);
      showMessage(t("a_done", { state: D.label("states", updated.state) }), false);
      D.$("detail").setAttribute("data-state", updated.state);
    }).catch(function (err) {
      fillDetail(v, false);
      showMessage(err && err.message ? err.message : String(err), true);
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    D.$("detail-close").addEventListener("click", closeEvent);
    D.$("detail-key").addEventListener("change", function (ev) {
      var file = ev.target.files && ev.target.files[0];
      if (!file) return;
      file.text().then(D.signing.load).then(function (id) {
        D.$("detail-key-id").textContent = t("d_key_loaded", { id: id });
        D.$("detail-key-id").setAttribute("data-key-id", id);
      }).catch(function () { showMessage(t("d_key_bad"), true); });
      ev.target.value = "";
    });
    D.$("detail").addEventListener("click", function (ev) { if (ev.target === D.$("detail")) closeEvent(); });
    document.addEventListener("keydown", function (ev) { if (ev.key === "Escape") closeEvent(); });
    var btns = document.querySelectorAll("#detail-actions .act");
    for (var i = 0; i < btns.length; i++) {
      (function (b) { b.addEventListener("click", function () { act(b.getAttribute("data-step")); }); })(btns[i]);
    }
  });

  D.openEvent = openEvent;
  D.events = { arrivals: arrivals, render: render, tickAges: tickAges, flaggedPlates: flaggedPlates,
    fresh: function () { return fresh; } };
})();
