/* An operator's or enforcement officer's act signed in the browser (docs/ETICKET.md "Acts signed by their
 * actors"): the operator loads the governance centre's operators' key, the officer the department's enforcement
 * key (PKCS#8 PEM, ``ledger actor-key new``) into the page, where it
 * stays in memory only; each violation step then carries ``time`` and ``act_sig`` over
 * b"muck-ledger/act/v1\n" + RFC 8785 JSON of {"type": "violation.<step>", "payload": <step_payload>}, the very
 * payload the API builds (ledger/eticket/staff_acts.py).  WebCrypto Ed25519; no key leaves the page. */
(function () {
  "use strict";
  var D = window.Dash;
  var CONTEXT = "muck-ledger/act/v1\n";
  var FIELDS = { confirm: "note", dismiss: "note", dispatch: "centre", resolve: "result" };
  var loaded = null;  // {key: CryptoKey, keyId: "16 hex"}

  function bytes(b64) {
    var s = atob(b64), out = new Uint8Array(s.length);
    for (var i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
    return out;
  }
  function b64(buf) {
    var a = new Uint8Array(buf), s = "";
    for (var i = 0; i < a.length; i++) s += String.fromCharCode(a[i]);
    return btoa(s);
  }
  function hex(buf) {
    return Array.prototype.map.call(new Uint8Array(buf), function (x) { return (x < 16 ? "0" : "") + x.toString(16); }).join("");
  }
  /* RFC 8785 for what a step holds (objects and strings): keys sorted, strings as JSON.stringify writes them */
  function canonical(v) {
    if (v === null || typeof v !== "object") return JSON.stringify(v);
    if (Array.isArray(v)) return "[" + v.map(canonical).join(",") + "]";
    return "{" + Object.keys(v).sort().map(function (k) { return JSON.stringify(k) + ":" + canonical(v[k]); }).join(",") + "}";
  }
  /* now as the ledger writes event times: ISO 8601 +08:00, whole seconds */
  function chinaNow() {
    return new Date(Date.now() + 8 * 3600 * 1000).toISOString().slice(0, 19) + "+08:00";
  }

  /* Load a PEM private key; resolves to its key id (16 hex of SHA-256("ed25519" 0x00 public key)). */
  function load(pem) {
    var body = String(pem).replace(/-----(BEGIN|END) PRIVATE KEY-----/g, "").replace(/\s+/g, "");
    return crypto.subtle.importKey("pkcs8", bytes(body), { name: "Ed25519" }, true, ["sign"]).then(function (key) {
      return crypto.subtle.exportKey("jwk", key).then(function (jwk) {
        var x = bytes(jwk.x.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((jwk.x.length + 3) % 4));
        var msg = new Uint8Array(8 + x.length);
        msg.set(new TextEncoder().encode("ed25519\0"), 0);
        msg.set(x, 8);
        return crypto.subtle.digest("SHA-256", msg).then(function (d) {
          loaded = { key: key, keyId: hex(d).slice(0, 16) };
          return loaded.keyId;
        });
      });
    });
  }

  /* ``body`` (the step's request) with ``time`` and ``act_sig`` when a key is loaded, else as it is. */
  function signStep(step, violationId, body) {
    if (!loaded) return Promise.resolve(body);
    var time = chinaNow(), payload = { violation_id: violationId }, text = body[FIELDS[step]];
    if (text !== undefined && text !== null) payload[FIELDS[step]] = text;
    payload.time = time;
    var message = new TextEncoder().encode(CONTEXT + canonical({ type: "violation." + step, payload: payload }));
    return crypto.subtle.sign({ name: "Ed25519" }, loaded.key, message).then(function (sig) {
      var out = {};
      out[FIELDS[step]] = text;
      if (text === undefined || text === null) delete out[FIELDS[step]];
      out.time = time;
      out.act_sig = { key_id: loaded.keyId, alg: "ed25519", value: b64(sig) };
      return out;
    });
  }

  D.signing = { load: load, signStep: signStep, keyId: function () { return loaded ? loaded.keyId : null; } };
})();
