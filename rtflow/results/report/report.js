// Filters and expanders for the transcripts. The report stays readable with scripts off.
(function () {
  "use strict";
  var turns = document.querySelectorAll("article.turn");
  var filterButtons = document.querySelectorAll("button[data-filter]");
  filterButtons.forEach(function (button) {
    button.addEventListener("click", function () {
      var onlyProblems = button.getAttribute("data-filter") === "problems";
      filterButtons.forEach(function (other) { other.classList.toggle("active", other === button); });
      turns.forEach(function (turn) {
        var status = turn.getAttribute("data-status");
        turn.hidden = onlyProblems && (status === "passed" || status === "pending");
      });
    });
  });
  document.querySelectorAll("button[data-toggle]").forEach(function (button) {
    button.addEventListener("click", function () {
      var open = button.getAttribute("data-toggle") === "expand";
      document.querySelectorAll("details.conversation").forEach(function (details) { details.open = open; });
    });
  });
  document.documentElement.classList.add("scripted");
})();
