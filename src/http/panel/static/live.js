// Live pages without a build step: ask the server every few seconds whether anything changed for
// this organisation, and reload when it did, unless the coordinator is typing in a form.
(function () {
  "use strict";
  var seen = null;
  var waiting = false;
  function busy() {
    var el = document.activeElement;
    return el && /^(INPUT|TEXTAREA|SELECT)$/.test(el.tagName);
  }
  function check() {
    fetch("/panel/changes", { credentials: "same-origin", cache: "no-store" })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (token) {
        if (token === null) { return; }
        if (seen === null) { seen = token; return; }
        if (token !== seen) { waiting = true; }
        if (waiting && !busy()) { window.location.reload(); }
      })
      .catch(function () { /* offline for a moment: try again on the next tick */ });
  }
  check();
  window.setInterval(check, 5000);
})();
