// A saved dashboard's charts, each read on its own URL after the page has answered: a few at a time, in
// page order, each fragment put in its card and its figure drawn (static/js/dashboards.js). A chart that
// fails says so, with a retry link; the others go on. Without JavaScript each card keeps its plain link.
// The fragments are the server's escaped templates, parsed inertly; nothing here builds HTML from data.
(function () {
  "use strict";

  var CONCURRENT = 4;  // enough to keep the page moving, few enough not to crowd out other people's pages
  var TIMEOUT_MS = 60000;  // longer than any chart query the server lets run (statement_timeout)

  var waiting = [];
  var running = 0;

  function enqueue(body) {
    waiting.push(body);
    pump();
  }

  function next() {
    running -= 1;
    pump();
  }

  function pump() {
    while (running < CONCURRENT && waiting.length) {
      running += 1;
      load(waiting.shift()).then(next, next);
    }
  }

  function showLoading(body) {
    body.setAttribute("aria-busy", "true");
    var status = document.createElement("p");
    status.className = "chart-pending";
    status.textContent = "Loading this chart…";
    body.replaceChildren(status);
  }

  // Resolve once the chart is in place or its error is shown: never reject, so the queue goes on.
  function load(body) {
    var controller = typeof AbortController === "function" ? new AbortController() : null;
    var timer = controller ? window.setTimeout(function () { controller.abort(); }, TIMEOUT_MS) : null;
    var options = { credentials: "same-origin", headers: { Accept: "text/html" } };
    if (controller) options.signal = controller.signal;
    return window.fetch(body.dataset.chartUrl, options)
      .then(function (response) {
        // A signed-out session is sent to the login page: that page is not this chart.
        if (response.redirected) throw new Error("you are no longer signed in; reload the page to sign in again");
        if (!response.ok) {
          var said = response.statusText ? " " + response.statusText : "";
          throw new Error("the server answered " + response.status + said);
        }
        return response.text();
      }, function () {
        throw new Error("the network request failed");
      })
      .then(function (html) { place(body, html); })
      .catch(function (error) {
        var timedOut = controller && controller.signal.aborted;
        showError(body, timedOut ? "the server did not answer within " + TIMEOUT_MS / 1000 + " seconds" : error.message);
      })
      .finally(function () {
        if (timer !== null) window.clearTimeout(timer);
        body.removeAttribute("aria-busy");
      });
  }

  function place(body, html) {
    // DOMParser marks scripts inert; the figure's JSON block is data, read by drawFigures.
    var parsed = new DOMParser().parseFromString(html, "text/html");
    body.replaceChildren.apply(body, Array.prototype.slice.call(parsed.body.childNodes).map(function (node) {
      return document.adoptNode(node);
    }));
    body.classList.add("is-loaded");
    if (window.SkyWatchDashboards) window.SkyWatchDashboards.drawFigures(body);
  }

  function showError(body, reason) {
    var box = document.createElement("div");
    box.className = "form-errors chart-failed";
    box.setAttribute("role", "alert");
    var text = document.createElement("p");
    text.textContent = "This chart could not be loaded: " + reason + ". ";
    var retry = document.createElement("a");
    retry.href = body.dataset.chartLink || body.dataset.chartUrl;
    retry.className = "js-chart-retry";
    retry.textContent = "Retry";
    retry.addEventListener("click", function (event) {
      event.preventDefault();
      showLoading(body);
      // The link goes with the error: the focus stays in the card, not back at the top of the page.
      body.setAttribute("tabindex", "-1");
      body.focus();
      enqueue(body);
    });
    text.appendChild(retry);
    box.appendChild(text);
    body.replaceChildren(box);
  }

  document.addEventListener("DOMContentLoaded", function () {
    if (typeof window.fetch !== "function" || typeof DOMParser !== "function") return;  // the links stay
    document.querySelectorAll(".js-chart-body").forEach(function (body) {
      var link = body.querySelector(".js-chart-link");
      if (link) body.dataset.chartLink = link.getAttribute("href");
      // Busy only once something will fill it: without this script the card's link is all there is.
      body.setAttribute("aria-busy", "true");
      enqueue(body);  // the server's placeholder already says it is loading
    });
  });
})();
