// Live staff pages: listen to /staff/events (Server-Sent Events) and, when the change
// marker moves, fire "rb:changed" so htmx re-fetches the regions that listen for it
// (hx-trigger="rb:changed from:body"). Pages work without this; it only saves reloads.
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script || !window.EventSource || !window.htmx) return;
  var url = script.getAttribute("data-events");
  var marker = script.getAttribute("data-marker");
  var status = document.getElementById("live-status");
  var source = null;

  function seen(event) {
    if (event.data === marker) return;
    marker = event.data;
    htmx.trigger(document.body, "rb:changed");
  }

  function open() {
    if (source) return;
    source = new EventSource(url);
    source.addEventListener("ready", seen);
    source.addEventListener("change", seen);
  }

  function close() {
    if (source) source.close();
    source = null;
  }

  // A hidden tab lets its connection go (browsers allow few per host over HTTP/1.1);
  // on return, the "ready" event brings the page up to date if anything moved meanwhile.
  document.addEventListener("visibilitychange", function () {
    if (document.hidden) close();
    else open();
  });
  window.addEventListener("pagehide", close);
  window.addEventListener("pageshow", function () {
    if (!document.hidden) open();
  });

  // Tell screen readers what changed, once, in words (not every refresh).
  document.body.addEventListener("htmx:afterSettle", function (event) {
    var region = event.detail.elt;
    var words = region && region.getAttribute && region.getAttribute("data-announce");
    if (status && words && words !== status.getAttribute("data-last")) {
      status.setAttribute("data-last", words);
      status.textContent = "Updated: " + words + ".";
    }
  });

  var first = document.querySelector("[data-announce]");
  if (status && first) status.setAttribute("data-last", first.getAttribute("data-announce"));
  if (!document.hidden) open();
})();
