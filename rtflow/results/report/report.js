// The report's small comforts: long answers fold, conversations expand and collapse together, and a clip
// heard in several places plays from the one player that embeds it. The report stays readable with scripts off.
(function () {
  "use strict";
  document.querySelectorAll("button[data-toggle]").forEach(function (button) {
    button.addEventListener("click", function () {
      var open = button.getAttribute("data-toggle") === "expand";
      document.querySelectorAll("details.conversation").forEach(function (details) { details.open = open; });
    });
  });
  document.querySelectorAll("button.unfold").forEach(function (button) {
    button.addEventListener("click", function () {
      var text = button.previousElementSibling;
      var unfolded = text.classList.toggle("unfolded");
      button.textContent = unfolded ? "fold" : "show all";
    });
  });
  // Each audio file is embedded once; its other players borrow the source.
  document.querySelectorAll("audio[data-same-as]").forEach(function (player) {
    var holder = document.getElementById(player.getAttribute("data-same-as"));
    if (holder) { player.src = holder.getAttribute("src"); }
  });
  document.documentElement.classList.add("scripted");
})();
