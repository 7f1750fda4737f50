// The job form's live preview: as the trigger or target is typed, posts
// the form to /ui/job-preview and swaps in the next fire times and the
// request a run sends. Without this script the "Preview" button does the
// same with a reload.
(function () {
  "use strict";
  var form = document.getElementById("job-form");
  if (!form || !window.fetch || !window.URLSearchParams) return;
  var timer = null;
  var asked = 0;

  function refresh() {
    clearTimeout(timer);
    timer = setTimeout(function () {
      var mine = ++asked;
      var body = new URLSearchParams(new FormData(form));
      fetch("/ui/job-preview", {
        method: "POST",
        credentials: "same-origin",
        headers: { "content-type": "application/x-www-form-urlencoded" },
        body: body.toString()
      })
        .then(function (r) { return r.ok ? r.text() : null; })
        .then(function (html) {
          // An older answer never replaces a newer one.
          if (!html || mine !== asked) return;
          var next = new DOMParser().parseFromString(html, "text/html").getElementById("job-preview");
          var here = document.getElementById("job-preview");
          if (next && here) here.replaceWith(next);
        })
        .catch(function () {});
    }, 300);
  }

  form.addEventListener("input", refresh);
  form.addEventListener("change", refresh);
})();
