// Keeps a dashboard page current. The page names its event stream query
// in <main data-live>; on each event it reads itself again and swaps its
// #live part, at most four times a second. Without this script every page
// works the same, with a reload.
(function () {
  "use strict";
  var main = document.getElementById("main");
  if (!main || !main.hasAttribute("data-live") || !window.EventSource) return;
  var status = document.getElementById("live-status");
  var query = main.getAttribute("data-live");
  var timer = null;

  function say(text) {
    if (status) status.textContent = text;
  }

  // The form a focused button posts, to give it focus back after a swap.
  function focusedAction() {
    var el = document.activeElement;
    return el && el.form && document.getElementById("live").contains(el) ? el.form.getAttribute("action") : null;
  }

  function swap(html) {
    var next = new DOMParser().parseFromString(html, "text/html").getElementById("live");
    var here = document.getElementById("live");
    if (!next || !here) return;
    var action = focusedAction();
    // Ticked jobs stay ticked across a swap.
    var ticked = Array.prototype.map.call(here.querySelectorAll('input[name="ids"]:checked'), function (box) { return box.value; });
    here.replaceWith(next);
    Array.prototype.forEach.call(next.querySelectorAll('input[name="ids"]'), function (box) {
      if (ticked.indexOf(box.value) >= 0) box.checked = true;
    });
    if (action) {
      var again = next.querySelector('form[action="' + action + '"] button');
      if (again) again.focus();
    }
  }

  function refresh() {
    if (timer) return;
    timer = setTimeout(function () {
      timer = null;
      fetch(location.href, { credentials: "same-origin", headers: { accept: "text/html" } })
        .then(function (r) { return r.ok ? r.text() : null; })
        .then(function (html) { if (html) swap(html); })
        .catch(function () { say("offline: reload to reconnect"); });
    }, 250);
  }

  var source = null;

  function open() {
    source = new EventSource("/ui/live" + (query ? "?" + query : ""));
    source.onopen = function () { say("live"); };
    source.onmessage = refresh;
    source.onerror = function () {
      say(source.readyState === EventSource.CLOSED ? "offline: reload to reconnect" : "reconnecting…");
    };
  }

  // A browser opens at most six connections to one server, and a stream
  // holds one: let it go as soon as the page is left (a page kept in the
  // back-forward cache would hold it), and read the page afresh on return.
  window.addEventListener("pagehide", function () {
    if (source) source.close();
    source = null;
  });
  window.addEventListener("pageshow", function (e) {
    if (!source) open();
    if (e.persisted) refresh();
  });
  open();
})();
