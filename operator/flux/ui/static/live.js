"use strict";
// Live updates without a framework: every element with data-live-url is
// refilled, every data-live-ms milliseconds, with the HTML the console renders
// for that URL (escaped on the server like every page). A refill that holds a
// [data-live-final] element (a run that finished) ends the refreshing.
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
