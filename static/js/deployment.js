// A deployment's live counts: refreshed every two seconds from its status endpoint.
(function () {
  "use strict";
  var root = document.getElementById("deployment-live");
  if (!root || !window.fetch) return;
  var $ = function (id) { return document.getElementById(id); };
  function refresh() {
    fetch(root.dataset.status, { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (s) {
        if (!s) return;
        $("live-count").textContent = s.live;
        $("starting-count").textContent = s.starting;
        $("queued-count").textContent = s.queued;
        $("inflight-count").textContent = s.in_flight;
      })
      .catch(function () {});
  }
  setInterval(refresh, 2000);
})();
