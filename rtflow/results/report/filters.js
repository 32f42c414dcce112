// Search and filters over the turns. A turn is one cell of the results matrix and one article of the
// transcripts: both show or hide together. A row, a thread or a conversation with nothing left to show hides
// too, so no empty box stays on screen. The address keeps the view (#q=kyoto&status=failed,error&provider=...),
// so a link to the report reopens it as it was.
(function () {
  "use strict";
  var form = document.getElementById("filters");
  if (!form) { return; }
  var slice = function (list) { return Array.prototype.slice.call(list); };
  var searchBox = document.getElementById("filter-search");
  var statusBoxes = slice(form.querySelectorAll("input[name=status]"));
  var selects = {
    provider: document.getElementById("filter-provider"),
    thread: document.getElementById("filter-thread"),
    type: document.getElementById("filter-type")
  };
  var counter = form.querySelector(".filter-count");
  var noMatch = document.querySelector("#results .no-match");

  // What each turn is filtered by, read once: its attributes and the text a search looks in (the question,
  // the answer, its tool calls, the reasons of failed assertions and the error).
  var turns = slice(document.querySelectorAll(".results-matrix .result")).map(function (element) {
    var row = element.closest("tr");
    var pieces = slice(row.querySelectorAll(".question-text")).concat(
      slice(element.querySelectorAll(".cell-caller, .cell-output, .cell-tool, .failed-reason, .cell-error")));
    return {
      element: element,
      article: document.getElementById(element.getAttribute("data-turn")),
      status: element.getAttribute("data-status"),
      thread: element.getAttribute("data-thread"),
      provider: element.getAttribute("data-provider"),
      types: (element.getAttribute("data-types") || "").split("|"),
      text: pieces.map(function (piece) { return piece.textContent; }).join("\n").toLowerCase()
    };
  });

  function readControls() {
    var checked = statusBoxes.filter(function (box) { return box.checked; }).map(function (box) { return box.value; });
    return {
      q: searchBox.value.trim(),
      status: checked.length === statusBoxes.length ? null : checked,
      provider: selects.provider.value,
      thread: selects.thread.value,
      type: selects.type.value
    };
  }

  function writeControls(view) {
    searchBox.value = view.q;
    statusBoxes.forEach(function (box) { box.checked = view.status === null || view.status.indexOf(box.value) >= 0; });
    Object.keys(selects).forEach(function (name) {
      var select = selects[name];
      select.value = view[name];
      if (select.value !== view[name]) { select.value = ""; }  // a link from a run that had another choice
    });
  }

  function matches(turn, view, words) {
    if (view.status !== null && view.status.indexOf(turn.status) < 0) { return false; }
    if (view.provider && turn.provider !== view.provider) { return false; }
    if (view.thread && turn.thread !== view.thread) { return false; }
    if (view.type && turn.types.indexOf(view.type) < 0) { return false; }
    return words.every(function (word) { return turn.text.indexOf(word) >= 0; });
  }

  function toggle(element, visible) { element.hidden = !visible; }

  function apply(view) {
    var words = view.q.toLowerCase().split(/\s+/).filter(Boolean);
    var shown = 0;
    turns.forEach(function (turn) {
      var match = matches(turn, view, words);
      shown += match ? 1 : 0;
      turn.element.classList.toggle("filtered-out", !match);
      if (turn.article) { toggle(turn.article, match); }
    });
    // Columns of other providers go; a row stays while one of its cells matches; a thread while one row does.
    slice(document.querySelectorAll(".results-matrix [data-column]")).forEach(function (cell) {
      toggle(cell, !view.provider || cell.getAttribute("data-provider") === view.provider);
    });
    slice(document.querySelectorAll(".results-matrix tbody.thread-group")).forEach(function (group) {
      var anyRow = false;
      slice(group.querySelectorAll("tr.turn-row")).forEach(function (row) {
        var visible = row.querySelector(".result:not(.filtered-out)") !== null;
        toggle(row, visible);
        anyRow = anyRow || visible;
      });
      toggle(group, anyRow);
    });
    slice(document.querySelectorAll("details.conversation")).forEach(function (conversation) {
      toggle(conversation, conversation.querySelector("article.turn:not([hidden])") !== null);
    });
    if (noMatch) { toggle(noMatch, shown === 0); }
    counter.textContent = shown === turns.length ? turns.length + " turns" : "showing " + shown + " of " + turns.length + " turns";
  }

  // The view in the address: only what differs from showing everything.
  function toHash(view) {
    var params = [];
    if (view.q) { params.push("q=" + encodeURIComponent(view.q)); }
    if (view.status !== null) { params.push("status=" + (view.status.length ? view.status.join(",") : "none")); }
    ["provider", "thread", "type"].forEach(function (name) {
      if (view[name]) { params.push(name + "=" + encodeURIComponent(view[name])); }
    });
    return params.join("&");
  }

  function fromHash(hash) {
    var params = new URLSearchParams(hash.replace(/^#/, ""));
    var status = params.get("status");
    return {
      q: params.get("q") || "",
      status: status === null ? null : (status === "none" ? [] : status.split(",")),
      provider: params.get("provider") || "",
      thread: params.get("thread") || "",
      type: params.get("type") || ""
    };
  }

  function isFilterHash(hash) { return hash.indexOf("=") >= 0; }

  function update() {
    var view = readControls();
    apply(view);
    var hash = toHash(view);
    var base = location.href.split("#")[0];
    if (hash || isFilterHash(location.hash)) { history.replaceState(null, "", hash ? base + "#" + hash : base); }
  }

  form.addEventListener("input", update);
  form.addEventListener("change", update);
  form.addEventListener("submit", function (event) { event.preventDefault(); });
  form.querySelectorAll("button[data-filter]").forEach(function (button) {
    button.addEventListener("click", function () {
      var problems = button.getAttribute("data-filter") === "problems";
      writeControls({
        q: problems ? searchBox.value : "",
        status: problems ? ["failed", "error", "skipped"] : null,
        provider: problems ? selects.provider.value : "",
        thread: problems ? selects.thread.value : "",
        type: problems ? selects.type.value : ""
      });
      update();
    });
  });

  // Links inside the report scroll to their target without replacing a filtered view's address; a target
  // the filters hide brings every turn back first.
  document.addEventListener("click", function (event) {
    var link = event.target.closest ? event.target.closest("a[href^='#']") : null;
    if (!link || !isFilterHash(location.hash)) { return; }
    var target = document.getElementById(decodeURIComponent(link.getAttribute("href").slice(1)));
    if (!target) { return; }
    event.preventDefault();
    if (target.closest("[hidden]")) {
      writeControls(fromHash(""));
      update();
    }
    var details = target.closest("details");
    if (details) { details.open = true; }
    target.scrollIntoView();
  });

  function fromAddress() {
    if (!isFilterHash(location.hash)) { return; }
    writeControls(fromHash(location.hash));
    apply(readControls());
  }
  window.addEventListener("hashchange", fromAddress);
  fromAddress();
})();
