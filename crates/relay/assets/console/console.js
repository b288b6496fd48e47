// The relay console's progressive enhancement. Every page works without this file; with it:
// the copy button, live refresh of [data-live] regions, and "Older" links that load the next
// page in place.
"use strict";

(function () {
  var REFRESH_MS = 5000;
  var pagedIn = false;

  function copyButtons() {
    document.querySelectorAll("button[data-copy]").forEach(function (button) {
      var source = document.getElementById(button.getAttribute("data-copy"));
      if (!source) return;
      button.hidden = false;
      button.addEventListener("click", function () {
        var text = source.textContent.trim();
        var status = button.parentNode.querySelector(".copied");
        var done = function () { if (status) status.textContent = "Copied"; };
        if (navigator.clipboard && window.isSecureContext) {
          navigator.clipboard.writeText(text).then(done, function () { select(source); });
        } else {
          select(source);
          try { if (document.execCommand("copy")) done(); } catch (e) { /* selected for Ctrl+C */ }
        }
      });
    });
  }

  function select(node) {
    var range = document.createRange();
    range.selectNodeContents(node);
    var selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
  }

  function fetchPage(url) {
    return fetch(url, {
      credentials: "same-origin",
      headers: { "X-Console-Refresh": "1" },
      redirect: "manual"
    }).then(function (response) {
      if (!response.ok) throw new Error("status " + response.status);
      return response.text();
    }).then(function (html) {
      return new DOMParser().parseFromString(html, "text/html");
    });
  }

  // A region someone is using (focus inside, a box ticked, text selected) is left alone.
  function busy(region) {
    if (region.contains(document.activeElement) && document.activeElement !== document.body) return true;
    if (region.getAttribute("data-touched")) return true;
    var selection = window.getSelection();
    return selection && !selection.isCollapsed && region.contains(selection.anchorNode);
  }

  function liveRefresh() {
    var regions = document.querySelectorAll("[data-live][id]");
    if (regions.length === 0) return;
    regions.forEach(function (region) {
      region.addEventListener("change", function () { region.setAttribute("data-touched", "1"); });
    });
    var timer = window.setInterval(function () {
      if (document.hidden || pagedIn) return;
      fetchPage(window.location.href).then(function (doc) {
        regions.forEach(function (region) {
          var fresh = doc.getElementById(region.id);
          if (fresh && !busy(region) && fresh.innerHTML !== region.innerHTML) {
            region.innerHTML = fresh.innerHTML;
            pager(region);
          }
        });
      }).catch(function () {
        // Logged out or the relay is gone: stop asking; a reload shows what happened.
        window.clearInterval(timer);
      });
    }, REFRESH_MS);
  }

  function pager(root) {
    root.querySelectorAll("a[data-more]").forEach(function (link) {
      link.addEventListener("click", function (event) {
        var rows = root.querySelector("tbody[data-rows]");
        if (!rows) return;
        event.preventDefault();
        fetchPage(link.href).then(function (doc) {
          var next = doc.querySelector("tbody[data-rows]");
          if (next) {
            Array.prototype.slice.call(next.children).forEach(function (row) { rows.appendChild(row); });
          }
          var more = doc.querySelector("a[data-more]");
          if (more) { link.href = more.getAttribute("href"); } else { link.parentNode.removeChild(link); }
          // The list is now longer than one page: refreshing it would cut it short again.
          pagedIn = true;
        }).catch(function () { window.location.href = link.href; });
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    copyButtons();
    pager(document);
    liveRefresh();
  });
})();
