// ArkDash page behaviour. Everything here is an enhancement: links and forms work without it.
(function () {
  "use strict";

  var TZ_COOKIE = "arkdash_tz";
  var LIVE_KEY = "arkdash-live";

  // --- time zone: tell the server the browser's zone once, then render in it ---------
  function readCookie(name) {
    var match = document.cookie.match(new RegExp("(?:^|; )" + name + "=([^;]*)"));
    return match ? match[1] : null;
  }

  function syncTimeZone() {
    var zone;
    try {
      zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
    } catch (e) {
      return;
    }
    if (!zone || !/^[A-Za-z0-9_+\-\/]+$/.test(zone) || readCookie(TZ_COOKIE) === zone) return;
    document.cookie = TZ_COOKIE + "=" + zone + "; path=/; max-age=31536000; samesite=lax";
    // Re-render once in the right zone; the session flag prevents a loop if cookies are refused.
    var serverZone = document.documentElement.dataset.serverTz;
    // Only pages fetched with GET: reloading a POST answer would resend the form.
    var reloadable = document.documentElement.hasAttribute("data-get");
    if (serverZone !== zone && reloadable && !sessionStorage.getItem("arkdash-tz-reloaded")) {
      sessionStorage.setItem("arkdash-tz-reloaded", "1");
      location.reload();
    }
  }

  // --- live: one poll for the page -------------------------------------------------------
  // Fast while a row on screen can still change, slow otherwise, none while the tab is
  // hidden or "Live" is off. The server answers 204 when nothing changed; otherwise
  // out-of-band swaps (rows, new rows, chips, banner) and headers for the next poll.
  var POLL_FAST_MS = 3000;
  var POLL_SLOW_MS = 10000;
  var pollTimer = null;

  function poller() {
    return document.getElementById("live-poller");
  }

  function liveToggle() {
    return document.getElementById("live-toggle");
  }

  function liveEnabled() {
    var toggle = liveToggle();
    return !toggle || toggle.checked;
  }

  function liveRows() {
    return document.querySelectorAll("tr[data-live][data-version]");
  }

  function shouldPoll() {
    return Boolean(poller()) && document.visibilityState === "visible" && liveEnabled();
  }

  function pollDelay() {
    return liveRows().length > 0 ? POLL_FAST_MS : POLL_SLOW_MS;
  }

  function schedulePoll(delay) {
    clearTimeout(pollTimer);
    pollTimer = setTimeout(poll, delay === undefined ? pollDelay() : delay);
  }

  function poll() {
    var el = poller();
    if (!el) return;
    if (!shouldPoll()) return; // resumed by visibilitychange or the Live toggle
    el.dispatchEvent(new Event("arkdash:poll"));
  }

  function rowVersions() {
    var parts = [];
    liveRows().forEach(function (row) {
      parts.push(row.id.replace("task-", "") + "." + row.dataset.version);
    });
    return parts.join(",");
  }

  function bannerState() {
    var banner = document.getElementById("sync-banner");
    return banner ? banner.dataset.health : "";
  }

  function setConnectionLost(lost) {
    var notice = document.getElementById("connection-lost");
    if (notice) notice.hidden = !lost;
    // A dead server must not go on looking "synced".
    document.documentElement.classList.toggle("connection-lost", lost);
  }

  // "synced 12 s ago", ticking every second from the last sync time the server reported.
  function renderSynced() {
    var el = document.querySelector("#sync-banner .synced[data-synced-at]");
    if (!el || !el.dataset.syncedAt) return;
    var serverNow = Number(el.dataset.serverNow || 0);
    if (!el.dataset.skew) {
      el.dataset.skew = String(Date.now() / 1000 - serverNow); // browser clock minus server clock
    }
    var age = Math.max(0, Math.round(Date.now() / 1000 - Number(el.dataset.skew) - Number(el.dataset.syncedAt)));
    var text;
    if (age < 120) text = el.dataset.fmtS.replace("{n}", age);
    else if (age < 7200) text = el.dataset.fmtM.replace("{n}", Math.floor(age / 60));
    else text = el.dataset.fmtH.replace("{n}", Math.floor(age / 3600));
    if (el.textContent !== text) el.textContent = text;
  }

  function setupLive() {
    var el = poller();
    if (!el) return;
    var toggle = liveToggle();
    if (toggle) {
      if (localStorage.getItem(LIVE_KEY) === "off") toggle.checked = false;
      toggle.addEventListener("change", function () {
        localStorage.setItem(LIVE_KEY, toggle.checked ? "on" : "off");
        if (toggle.checked) schedulePoll(0);
      });
    }
    document.addEventListener("visibilitychange", function () {
      if (document.visibilityState === "visible") schedulePoll(0); // back to the tab: catch up at once
    });
    schedulePoll();
  }

  document.addEventListener("htmx:configRequest", function (event) {
    var el = event.detail.elt;
    if (!el || el.id !== "live-poller") return;
    var chips = document.getElementById("status-chips");
    var params = event.detail.parameters;
    params.rows = rowVersions();
    params.health = bannerState();
    params.seen = el.dataset.seen || "";
    params.newest = el.dataset.newest || "";
    params.counts = chips ? chips.dataset.counts : "";
    params.slide = el.hasAttribute("data-slide-in") ? "1" : "0";
  });

  document.addEventListener("htmx:afterRequest", function (event) {
    var el = event.detail.elt;
    if (!el || el.id !== "live-poller") return;
    var xhr = event.detail.xhr;
    var answered = Boolean(xhr) && xhr.status > 0 && xhr.status < 500;
    setConnectionLost(!answered);
    if (answered && event.detail.successful) {
      var seen = xhr.getResponseHeader("X-Ark-Seen");
      if (seen !== null) el.dataset.seen = seen;
      var newest = xhr.getResponseHeader("X-Ark-Newest");
      if (newest) el.dataset.newest = newest;
      var synced = document.querySelector("#sync-banner .synced[data-synced-at]");
      var syncedAt = xhr.getResponseHeader("X-Ark-Synced-At");
      if (synced && syncedAt) synced.dataset.syncedAt = syncedAt;
      var empty = document.querySelector("#task-rows .empty-row");
      if (empty && document.querySelector("#task-rows tr[id^='task-']")) empty.remove();
    }
    document.documentElement.dataset.lastPoll = String(Date.now());
    renderSynced();
    schedulePoll();
  });

  // A poll that never got an answer (server down, network gone): htmx reports it here.
  ["htmx:sendError", "htmx:timeout"].forEach(function (name) {
    document.addEventListener(name, function (event) {
      if (!event.detail.elt || event.detail.elt.id !== "live-poller") return;
      setConnectionLost(true);
      schedulePoll();
    });
  });

  // On a phone the filter form folds away until asked for (the summary opens it).
  function foldFiltersOnSmallScreens() {
    var panel = document.querySelector("details.filters-panel");
    if (panel && window.matchMedia("(max-width: 640px)").matches) panel.open = false;
  }

  // --- copy buttons ---------------------------------------------------------------------
  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) return navigator.clipboard.writeText(text);
    var area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.style.position = "absolute";
    area.style.left = "-9999px";
    document.body.appendChild(area);
    area.select();
    try {
      document.execCommand("copy");
    } finally {
      document.body.removeChild(area);
    }
    return Promise.resolve();
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("button.copy[data-copy]");
    if (!button) return;
    copyText(button.dataset.copy).then(function () {
      // The icon turns green for a moment; the live region tells screen readers.
      button.classList.add("copied");
      var status = document.getElementById("copy-status");
      if (status) status.textContent = status.dataset.copied || "";
      setTimeout(function () {
        button.classList.remove("copied");
        if (status) status.textContent = "";
      }, 1200);
    });
  });

  // --- confirmations for form buttons (bulk cancel): the server asks when JS is off ------
  document.addEventListener("click", function (event) {
    var button = event.target.closest("button[data-confirm]");
    if (!button || !button.form) return;
    if (!window.confirm(button.dataset.confirm)) {
      event.preventDefault();
      return;
    }
    var confirmed = button.form.querySelector("input[name=confirmed]");
    if (confirmed) confirmed.value = "1";
  });

  // --- small things -----------------------------------------------------------------------
  function setupSelectAll() {
    var all = document.getElementById("select-all");
    if (!all) return;
    all.hidden = false;
    all.addEventListener("change", function () {
      document.querySelectorAll("input[name=ids][form=bulk-form]").forEach(function (box) {
        box.checked = all.checked;
      });
    });
  }

  function setupAutosubmit() {
    document.querySelectorAll("select[data-autosubmit]").forEach(function (select) {
      select.addEventListener("change", function () {
        select.form.submit();
      });
    });
    document.querySelectorAll(".js-hide").forEach(function (el) {
      el.hidden = true;
    });
  }

  window.ArkDash = { shouldPoll: shouldPoll, pollDelay: pollDelay, rowVersions: rowVersions };

  syncTimeZone();
  document.addEventListener("DOMContentLoaded", function () {
    setupLive();
    foldFiltersOnSmallScreens();
    setupSelectAll();
    setupAutosubmit();
    renderSynced();
    setInterval(renderSynced, 1000);
  });
  // Swapped-in banners start from their own numbers.
  document.addEventListener("htmx:oobAfterSwap", renderSynced);
})();
