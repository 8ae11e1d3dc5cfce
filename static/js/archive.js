// Archive control: a refused "Retry now" (403, 409) answers with the output's line saying
// why; htmx leaves error answers unswapped by default, so let those through.
(function () {
  "use strict";
  document.addEventListener("htmx:beforeSwap", function (event) {
    var status = event.detail.xhr.status;
    var target = event.detail.target;
    if ((status === 403 || status === 409) && target && target.classList.contains("download-item")) {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
    }
  });
})();
