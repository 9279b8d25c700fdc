// Vigie console: live rows over Server-Sent Events, ages and countdowns ticking.
// No polling: the server pushes the re-rendered rows when the cell's alerts change.
(function () {
  "use strict";
  var lang = document.documentElement.lang || "fr";

  function span(seconds) {
    var s = Math.max(0, Math.floor(seconds));
    var h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
    var mm = (m < 10 ? "0" : "") + m, ss = (r < 10 ? "0" : "") + r;
    return h > 0 ? h + " h " + mm + " min" : mm + " min " + ss + " s";
  }

  function tick() {
    var now = Date.now();
    document.querySelectorAll("time.age").forEach(function (el) {
      var t = Date.parse(el.getAttribute("datetime"));
      if (!isNaN(t)) el.textContent = span((now - t) / 1000);
    });
    document.querySelectorAll("time.countdown").forEach(function (el) {
      var t = Date.parse(el.getAttribute("datetime"));
      if (!isNaN(t)) el.textContent = span((t - now) / 1000);
    });
  }

  function live() {
    var body = document.getElementById("alert-rows");
    if (!body || !body.dataset.stream || !window.EventSource) return;
    var status = document.getElementById("live-status");
    var source = new EventSource(body.dataset.stream);
    source.addEventListener("rows", function (e) {
      body.innerHTML = JSON.parse(e.data).html;
      body.dataset.version = String(Number(body.dataset.version || "0") + 1);
      tick();
    });
    source.addEventListener("signedout", function () {
      source.close();
      window.location.reload(); // the server sends the sign-in page
    });
    source.addEventListener("open", function () { if (status) status.dataset.live = "on"; });
    source.addEventListener("error", function () { if (status) status.dataset.live = "off"; });
  }

  document.addEventListener("DOMContentLoaded", function () {
    tick();
    live();
    window.setInterval(tick, 1000);
  });
  void lang;
})();
