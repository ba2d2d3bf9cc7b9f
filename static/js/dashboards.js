// Dashboards: draw the server-built plotly figures, say how UTC relates to the viewer's clock, and make the
// explorer's GET form pleasant (custom range fields, event finder, "changes not applied yet").
// Figures arrive as JSON in <script type="application/json"> blocks; nothing here builds HTML from data.
(function () {
  "use strict";

  var PLOT_CONFIG = {
    responsive: true,
    displaylogo: false,
    modeBarButtonsToRemove: ["select2d", "lasso2d", "autoScale2d", "toggleSpikelines"],
    toImageButtonOptions: { format: "png", filename: "skywatch-chart", scale: 2 }
  };

  // Draw the figures under `root` (the page, or a saved chart's card its fragment was just put in).
  function drawFigures(root) {
    (root || document).querySelectorAll(".plot-wrap").forEach(function (wrap) {
      var data = wrap.querySelector('script[type="application/json"]');
      var target = wrap.querySelector(".plot");
      if (!data || !target) return;
      if (typeof window.Plotly === "undefined") {
        target.textContent = "The chart library did not load; the numbers are in the table.";
        target.className = "plot plot-missing";
        return;
      }
      var figure = JSON.parse(data.textContent);
      window.Plotly.newPlot(target, figure.data, figure.layout, PLOT_CONFIG).then(function () {
        hideDrawing(target);
        followPointLinks(target, figure);
      });
    });
  }

  // The drawing's SVG is tick labels and shapes in no reading order: screen readers skip it (the figure is
  // named, its numbers are in the table); the modebar's buttons stay reachable and named.
  function hideDrawing(target) {
    target.querySelectorAll("svg.main-svg").forEach(function (svg) { svg.setAttribute("aria-hidden", "true"); });
  }

  // A point whose trace carries its address in `customdata` (apps/dashboards/drilldown.py) opens the users
  // behind it. Only same-site paths are followed.
  function isPointLink(value) {
    return typeof value === "string" && value.charAt(0) === "/" && value.charAt(1) !== "/" && value.charAt(1) !== "\\";
  }

  // A point's address is its customdata, or the last item of it (a funnel step keeps its hover texts first).
  function linkOf(customdata) {
    if (isPointLink(customdata)) return customdata;
    if (Array.isArray(customdata) && isPointLink(customdata[customdata.length - 1])) {
      return customdata[customdata.length - 1];
    }
    return null;
  }

  function followPointLinks(target, figure) {
    var linked = (figure.data || []).some(function (trace) {
      return Array.isArray(trace.customdata) && trace.customdata.some(linkOf);
    });
    if (!linked || typeof target.on !== "function") return;
    target.classList.add("has-point-links");
    target.on("plotly_click", function (eventData) {
      var link = clickedLink(target, figure, eventData);
      if (link) window.location.assign(link);
    });
  }

  // With "x unified" hover a click reports every series at that time: take the one drawn under the pointer
  // (for stacked bars and areas, the band holding it; otherwise the nearest value).
  function clickedLink(target, figure, eventData) {
    var points = ((eventData && eventData.points) || []).filter(function (p) { return linkOf(p.customdata); });
    if (points.length <= 1) return points.length ? linkOf(points[0].customdata) : null;
    var mouse = eventData.event;
    var axis = points[0].yaxis;
    if (!mouse || !axis || typeof axis.p2c !== "function") return linkOf(points[0].customdata);
    var y = axis.p2c(mouse.clientY - target.getBoundingClientRect().top - axis._offset);
    points.sort(function (a, b) { return a.curveNumber - b.curveNumber; });
    var stacked = points.every(function (p) {
      var trace = figure.data[p.curveNumber] || {};
      return trace.stackgroup || (trace.type === "bar" && figure.layout && figure.layout.barmode === "stack");
    });
    var best = points[0];
    var bestDistance = Infinity;
    var base = 0;
    points.forEach(function (p) {
      var value = Number(p.y) || 0;
      var low = stacked ? base : value;
      var high = stacked ? base + value : value;
      var distance = y < low ? low - y : (y > high ? y - high : 0);
      if (distance < bestDistance) { best = p; bestDistance = distance; }
      base += value;
    });
    return linkOf(best.customdata);
  }

  function utcOffsetText() {
    var minutes = -new Date().getTimezoneOffset();
    if (minutes === 0) return "Times are UTC, like your browser’s clock.";
    var sign = minutes > 0 ? "+" : "-";
    var abs = Math.abs(minutes);
    var hh = String(Math.floor(abs / 60)).padStart(2, "0");
    var mm = String(abs % 60).padStart(2, "0");
    return "Times are UTC; your browser is UTC" + sign + hh + ":" + mm + ".";
  }

  function showUtcOffset() {
    var text = utcOffsetText();
    document.querySelectorAll(".js-utc-offset").forEach(function (node) { node.textContent = text; });
  }

  function setUpExplorerForm() {
    var form = document.querySelector(".js-explorer-form");
    if (!form) return;
    var range = form.querySelector("#id_range");
    var custom = form.querySelector(".js-custom-range");
    if (range && custom) {
      range.addEventListener("change", function () { custom.hidden = range.value !== "custom"; });
    }
    var apply = form.querySelector(".js-apply");
    var hint = form.querySelector(".js-dirty-hint");
    var markDirty = function (event) {
      if (event.target && event.target.classList.contains("js-pick-find")) return;
      apply.classList.add("is-dirty");
      if (hint) hint.hidden = false;
    };
    form.addEventListener("change", markDirty);
    form.addEventListener("input", markDirty);
    // Drop empty filter inputs so the URL stays short and readable.
    form.addEventListener("submit", function () {
      form.querySelectorAll('input[name="filter"]').forEach(function (input) {
        if (!input.value.trim()) input.disabled = true;
      });
    });
    setUpEventFinder(form);
  }

  function setUpEventFinder(form) {
    var find = form.querySelector(".js-pick-find");
    var list = form.querySelector(".js-pick-list");
    if (!find || !list) return;
    find.hidden = false;
    find.addEventListener("input", function () {
      var needle = find.value.trim().toLowerCase();
      list.querySelectorAll("label").forEach(function (label) {
        var row = label.parentElement;
        row.hidden = needle !== "" && label.textContent.toLowerCase().indexOf(needle) === -1;
      });
    });
  }

  // Search-as-you-type for a name field (`.js-name-search`): the server's matches fill its datalist, at most
  // a page of them, and the status line says when there are more. Built with DOM calls, never HTML.
  function setUpNameSearch() {
    document.querySelectorAll(".js-name-search").forEach(function (input) {
      var list = input.list;
      var status = document.getElementById(input.dataset.status || "");
      var url = input.dataset.searchUrl;
      if (!list || !url || typeof window.fetch !== "function") return;
      var timer = null;
      var asked = "";
      var say = function (text) { if (status) status.textContent = text; };
      var search = function () {
        var text = input.value.trim();
        if (text === asked) return;
        asked = text;
        if (!text) { list.replaceChildren(); say("Type part of a name for suggestions."); return; }
        window.fetch(url + "?q=" + encodeURIComponent(text), { credentials: "same-origin" })
          .then(function (response) { return response.ok ? response.json() : Promise.reject(response.status); })
          .then(function (found) {
            if (asked !== text) return;  // a later search has been asked meanwhile
            list.replaceChildren.apply(list, found.names.map(function (name) {
              var option = document.createElement("option");
              option.value = name;
              return option;
            }));
            if (!found.names.length) say("No event name contains “" + text + "”.");
            else if (found.more) say("The first " + found.names.length + " matches are suggested; type more to narrow them.");
            else say(found.names.length + " match" + (found.names.length === 1 ? "" : "es") + ".");
          })
          .catch(function () { say("Suggestions are unavailable; a name typed in full still works."); });
      };
      input.addEventListener("input", function () {
        window.clearTimeout(timer);
        timer = window.setTimeout(search, 200);
      });
    });
  }

  function setUpSaveForm() {
    var form = document.querySelector(".js-save-form");
    if (!form) return;
    var select = form.querySelector("select[name=dashboard]");
    var newName = form.querySelector(".js-new-name");
    if (!select || !newName) return;
    var toggle = function () { newName.hidden = select.value !== "new"; };
    select.addEventListener("change", toggle);
    toggle();
  }

  function setUpCopyButtons() {
    document.querySelectorAll(".js-copy").forEach(function (button) {
      button.addEventListener("click", function () {
        var link = new URL(button.dataset.copyUrl, window.location.href).href;
        var status = button.parentElement.querySelector(".js-copy-status");
        var say = function (text) { if (status) status.textContent = text; };
        if (navigator.clipboard && navigator.clipboard.writeText) {
          navigator.clipboard.writeText(link).then(function () { say("Link copied."); }, function () { say(link); });
        } else {
          say(link);
        }
      });
    });
    document.querySelectorAll(".js-select-all").forEach(function (input) {
      input.addEventListener("focus", function () { input.select(); });
    });
  }

  // apps/dashboards/static/dashboards/dashboard_charts.js draws each saved chart it fetches with it.
  window.SkyWatchDashboards = { drawFigures: drawFigures };

  document.addEventListener("DOMContentLoaded", function () {
    showUtcOffset();
    setUpExplorerForm();
    setUpNameSearch();
    setUpSaveForm();
    setUpCopyButtons();
    drawFigures(document);
  });
})();
