"""The live page's script: it shows the report in a frame and shows it again whenever the run stores more turns.

The report cannot poll by itself: its content security policy lets it fetch nothing, which is right for a file
that is mailed around. So the live page polls the run's status (`/api/runs/RUN/status`, every 1.5 s) and, when
the count of stored turns or the run's status changes, loads the report afresh in a second frame, hidden until
it has loaded, then swaps it in at the same scroll position: the reader sees no blank page between the two.
Once the run has ended, and the report shows its end, nothing more is asked.

The report keeps its filters and search in its address's hash. The page mirrors that hash in its own address
(so a link to the page reopens the same view) and opens every fresh report with it (so a refresh keeps it).
"""

from __future__ import annotations

__all__ = ["LIVE_SCRIPT", "POLL_INTERVAL_MS"]

POLL_INTERVAL_MS = 1500
"""How often a page of a run in progress asks for the run's status."""

_RETRY_MS = 5000
"""How long the page waits before asking again when the viewer did not answer."""

LIVE_SCRIPT = """
(function () {
  "use strict";
  var POLL_MS = @POLL_MS@, RETRY_MS = @RETRY_MS@;
  var bar = document.getElementById("live");
  var frames = document.getElementById("frames");
  var statusText = document.getElementById("live-status");
  var turnsText = document.getElementById("live-turns");
  var reportUrl = bar.dataset.reportUrl;
  var reportPath = new URL(reportUrl, location.href).pathname;
  var shown = {turns: Number(bar.dataset.turns), status: bar.dataset.status, ended: bar.dataset.ended === "true"};
  var latest = shown;
  var frame = null;
  var loading = false;

  function differs(a, b) { return a.turns !== b.turns || a.status !== b.status; }

  function loadedReport() {
    if (frame === null) { return null; }
    var view = frame.contentWindow;
    return view && view.location.pathname === reportPath ? view : null;
  }

  // The report's hash, mirrored in this page's address once the report has loaded.
  function mirrorHash() {
    var view = loadedReport();
    if (view === null || view.location.hash === location.hash) { return; }
    var base = location.href.split("#")[0];
    history.replaceState(null, "", view.location.hash ? base + view.location.hash : base);
  }

  function watch(view) {
    view.addEventListener("hashchange", mirrorHash);
    ["input", "change", "click"].forEach(function (type) {
      // The report updates its hash in its own handlers, which run after this capturing one: look just after.
      view.document.addEventListener(type, function () { setTimeout(mirrorHash, 0); }, true);
    });
  }

  function load(status) {
    loading = true;
    mirrorHash();
    var previous = loadedReport();
    var scroll = previous === null ? null : [previous.scrollX, previous.scrollY];
    var next = document.createElement("iframe");
    next.title = "rtflow report";
    next.className = "loading";
    next.addEventListener("load", function () {
      if (scroll !== null) { next.contentWindow.scrollTo(scroll[0], scroll[1]); }
      if (frame !== null) { frame.remove(); }
      next.className = "";
      next.id = "report";
      frame = next;
      shown = status;
      loading = false;
      watch(next.contentWindow);
      mirrorHash();
      if (differs(latest, shown)) { load(latest); }
    }, {once: true});
    next.src = reportUrl + location.hash;
    frames.appendChild(next);
  }

  function showStatus(status) {
    statusText.textContent = status.status;
    statusText.className = "badge run-" + status.status;
    turnsText.textContent = status.turns + " of " + status.planned_turns + " turns stored";
  }

  function poll() {
    fetch(bar.dataset.statusUrl, {cache: "no-store", headers: {Accept: "application/json"}})
      .then(function (response) {
        if (response.status === 404) { return null; }  // the run or its store is gone: nothing will change
        if (!response.ok) { throw new Error("status " + response.status); }
        return response.json();
      })
      .then(function (status) {
        if (status === null) {
          turnsText.textContent = "no longer in the run store";
          return;
        }
        latest = status;
        showStatus(status);
        if (!loading && differs(latest, shown)) { load(latest); }
        if (!status.ended) { setTimeout(poll, POLL_MS); }
      }, function () {
        turnsText.textContent = "the viewer does not answer; trying again";
        setTimeout(poll, RETRY_MS);
      });
  }

  load(shown);
  if (!shown.ended) { setTimeout(poll, POLL_MS); }
})();
""".replace("@POLL_MS@", str(POLL_INTERVAL_MS)).replace("@RETRY_MS@", str(_RETRY_MS))
