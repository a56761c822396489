"use strict";
// Live updates without a framework: every element with data-live-url is
// refilled, every data-live-ms milliseconds, with the HTML the console renders
// for that URL (escaped on the server like every page). A refill that holds a
// [data-live-final] element (a run that finished) ends the refreshing.
//
// Polling, not server-sent events, by design: neither store can tell the
// console that a run changed (SQLite written by other processes has no
// notification; on Kubernetes each open tab would need its own watch), so an
// event stream would poll the store on the server anyway, once per open tab,
// and hold a connection that uvicorn waits for on shutdown and that proxies
// (kubectl port-forward, ingresses) may buffer. A refill is the same
// server-rendered fragment as the first load, from the aggregated queries the
// console benchmarks; pages of finished or paused runs do not refresh at all.
(function () {
  function watch(element) {
    var every = parseInt(element.getAttribute("data-live-ms"), 10) || 2000;
    var refreshes = 0;
    var timer = setInterval(function () {
      fetch(element.getAttribute("data-live-url"), { cache: "no-store" })
        .then(function (response) {
          if (!response.ok) { throw new Error("HTTP " + response.status); }
          return response.text();
        })
        .then(function (html) {
          element.innerHTML = html;
          refreshes += 1;
          element.setAttribute("data-live-refreshes", String(refreshes));
          element.removeAttribute("data-live-error");
          if (element.querySelector("[data-live-final]")) { clearInterval(timer); }
        })
        .catch(function (error) { element.setAttribute("data-live-error", String(error)); });
    }, every);
  }
  document.querySelectorAll("[data-live-url]").forEach(watch);
})();
