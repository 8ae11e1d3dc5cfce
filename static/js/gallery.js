// The gallery: hovering (or focusing) a video card plays its archived video, muted.
// The <video> has preload="none", so nothing is fetched until a card is hovered.
// The grid may be replaced by its live refresh (htmx): new cards are bound when they arrive.
(function () {
  "use strict";

  function start(card) {
    const video = card.querySelector("video.gallery-video");
    if (!video) return;
    video.muted = true;
    card.classList.add("gallery-playing");
    const playing = video.play();
    if (playing && playing.catch) {
      playing.catch(function () { card.classList.remove("gallery-playing"); });
    }
  }

  function stop(card) {
    const video = card.querySelector("video.gallery-video");
    if (!video) return;
    video.pause();
    card.classList.remove("gallery-playing");
  }

  function bind(root) {
    root.querySelectorAll(".gallery-card").forEach(function (card) {
      if (!card.querySelector("video.gallery-video") || card.dataset.hoverBound) return;
      card.dataset.hoverBound = "1";
      card.addEventListener("mouseenter", function () { start(card); });
      card.addEventListener("mouseleave", function () { stop(card); });
      card.addEventListener("focusin", function () { start(card); });
      card.addEventListener("focusout", function () { stop(card); });
    });
  }

  // No refresh while a video plays or the tab is in the background; back in the tab, at once.
  document.addEventListener("htmx:beforeRequest", function (event) {
    if (event.target.id !== "gallery-cards") return;
    if (document.visibilityState !== "visible" || document.querySelector(".gallery-playing")) {
      event.preventDefault();  // the next poll tries again
    }
  });
  document.addEventListener("visibilitychange", function () {
    const grid = document.getElementById("gallery-cards");
    if (document.visibilityState === "visible" && grid && grid.hasAttribute("hx-trigger") && window.htmx) {
      window.htmx.trigger(grid, "arkdash:refresh");
    }
  });
  document.addEventListener("htmx:load", function (event) { bind(event.target); });

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", function () { bind(document); });
  } else {
    bind(document);
  }
})();
