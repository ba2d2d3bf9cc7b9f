// Trace page behaviour: lazy property trees and the permalink button.
// Everything a service sent is hostile: nodes are built with textContent, never innerHTML.
(function () {
  "use strict";
  var MAX_TEXT = 300;     // characters shown before "show all"
  var MAX_ENTRIES = 50;   // keys or items shown before "show all"

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function showAllButton(label, onClick) {
    var button = el("button", "show-all", label);
    button.type = "button";
    button.addEventListener("click", function () { onClick(button); });
    return button;
  }

  function scalar(value) {
    if (value === null) return el("span", "v-null", "null");
    if (typeof value === "string") {
      var span = el("span", "v-string");
      if (value.length <= MAX_TEXT) {
        span.textContent = JSON.stringify(value);
        return span;
      }
      span.textContent = JSON.stringify(value.slice(0, MAX_TEXT)) + "…";
      var wrap = el("span");
      wrap.appendChild(span);
      wrap.appendChild(showAllButton("show all (" + value.length + " characters)", function (button) {
        span.textContent = JSON.stringify(value);
        button.remove();
      }));
      return wrap;
    }
    return el("span", "v-" + typeof value, String(value));
  }

  // Render one level; nested objects are <details> that render their own level when first opened.
  function renderEntries(container, value) {
    var keys = Array.isArray(value) ? value.map(function (_, i) { return i; }) : Object.keys(value);
    var list = el("ul", "tree-level");
    function add(from, to) {
      keys.slice(from, to).forEach(function (key) {
        var item = el("li");
        var child = value[key];
        var label = el("span", "k", Array.isArray(value) ? "[" + key + "]" : key);
        if (child !== null && typeof child === "object") {
          var details = el("details");
          var summary = el("summary");
          var size = Array.isArray(child) ? child.length : Object.keys(child).length;
          summary.appendChild(label);
          summary.appendChild(el("span", "muted", Array.isArray(child) ? " [" + size + "]" : " {" + size + "}"));
          details.appendChild(summary);
          details.addEventListener("toggle", function () {
            if (details.open && !details.dataset.rendered) {
              details.dataset.rendered = "1";
              renderEntries(details, child);
            }
          });
          item.appendChild(details);
        } else {
          item.appendChild(label);
          item.appendChild(el("span", "sep", ": "));
          item.appendChild(scalar(child));
        }
        list.appendChild(item);
      });
    }
    add(0, MAX_ENTRIES);
    container.appendChild(list);
    if (keys.length > MAX_ENTRIES) {
      container.appendChild(showAllButton("show all (" + keys.length + " entries)", function (button) {
        add(MAX_ENTRIES, keys.length);
        button.remove();
      }));
    }
  }

  // An integer past 2^53 (an ID, a byte count, nanoseconds) would lose digits as a Number: read it from the
  // text the service sent, as a BigInt (browsers that do not give the reviver the source keep the Number).
  function exactIntegers(key, value, context) {
    if (typeof value === "number" && !Number.isSafeInteger(value) && context &&
        /^-?[0-9]+$/.test(context.source)) {
      return BigInt(context.source);
    }
    return value;
  }

  function setUpTrees() {
    var dataNode = document.getElementById("trail-data");
    if (!dataNode) return;
    var payload = JSON.parse(dataNode.textContent, exactIntegers);
    document.querySelectorAll("details.props").forEach(function (details) {
      details.addEventListener("toggle", function () {
        if (details.open && !details.dataset.rendered) {
          details.dataset.rendered = "1";
          renderEntries(details.querySelector(".tree"), payload[Number(details.dataset.index)].properties);
        }
      });
    });
  }

  function setUpPermalink() {
    var button = document.getElementById("copy-permalink");
    if (!button) return;
    var status = document.getElementById("copy-status");
    button.addEventListener("click", function () {
      var link = window.location.origin + window.location.pathname;
      var done = function () { status.textContent = "Copied " + link; };
      if (navigator.clipboard && navigator.clipboard.writeText) {
        navigator.clipboard.writeText(link).then(done, function () { status.textContent = link; });
      } else {
        status.textContent = link;
      }
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    setUpTrees();
    setUpPermalink();
  });
})();
