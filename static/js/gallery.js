// The gallery: hovering (or focusing) a video card plays its archived video, muted.
// The <video> has preload="none", so nothing is fetched until a card is hovered.
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

  function bind() {
    document.querySelectorAll(".gallery-card").forEach(function (card) {
      if (!card.querySelector("video.gallery-video")) return;
      card.addEventListener("mouseenter", function () { start(card); });
      card.addEventListener("mouseleave", function () { stop(card); });
      card.addEventListener("focusin", function () { start(card); });
      card.addEventListener("focusout", function () { stop(card); });
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", bind);
  } else {
    bind();
  }
})();
