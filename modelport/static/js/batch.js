// Batch page: upload the CSV with a progress bar, show "predicting" while the server works,
// then hand over the answer as a download (Blob + object URL). Loaded from a file: the CSP
// forbids inline scripts. Without JavaScript the form posts as usual and the browser
// downloads the answer itself.
(function () {
  "use strict";
  var form = document.getElementById("batch-form");
  if (!form || !window.XMLHttpRequest || !window.FormData || !window.DOMParser) {
    return;
  }
  if (!window.URL || !window.URL.createObjectURL || !window.Blob) {
    return;
  }
  var box = document.getElementById("batch-progress-box");
  var bar = document.getElementById("batch-progress");
  var status = document.getElementById("batch-status");
  var download = document.getElementById("batch-download");
  var problems = document.getElementById("batch-problems");
  var button = form.querySelector("button[type=submit]");
  var objectUrl = null;

  function say(text) {
    status.textContent = text;
  }

  function finish() {
    button.disabled = false;
    box.hidden = true;
  }

  function filename(disposition) {
    var match = /filename="([^"]+)"/.exec(disposition || "");
    return match ? match[1] : "predictions.csv";
  }

  // A refused upload comes back as the page with its problems (or as an error page): show
  // the server's own words rather than repeating its rules here.
  function showRefusal(html) {
    var page = new DOMParser().parseFromString(html, "text/html");
    var fresh = page.getElementById("batch-problems");
    var fieldErrors = page.querySelector("#batch-form .errors");
    var message = page.querySelector(".error-message");
    if (fresh && fresh.children.length) {
      problems.replaceChildren.apply(problems, Array.prototype.slice.call(fresh.childNodes));
      say("");
    } else if (fieldErrors) {
      say(fieldErrors.textContent.trim());
    } else if (message) {
      say(message.textContent.trim());
    } else {
      say(form.dataset.failed);
    }
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var xhr = new XMLHttpRequest();
    xhr.open("POST", form.action);
    xhr.responseType = "blob";
    xhr.upload.addEventListener("progress", function (e) {
      if (e.lengthComputable) {
        bar.max = e.total;
        bar.value = e.loaded;
        say(form.dataset.uploading + " " + Math.round((100 * e.loaded) / e.total) + "%");
      }
    });
    xhr.upload.addEventListener("load", function () {
      bar.removeAttribute("value"); // an indeterminate bar while the model works
      say(form.dataset.predicting);
    });
    xhr.addEventListener("load", function () {
      finish();
      var type = xhr.getResponseHeader("Content-Type") || "";
      if (xhr.status === 200 && type.indexOf("text/csv") === 0) {
        if (objectUrl) {
          URL.revokeObjectURL(objectUrl);
        }
        objectUrl = URL.createObjectURL(xhr.response);
        download.href = objectUrl;
        download.download = filename(xhr.getResponseHeader("Content-Disposition"));
        download.hidden = false;
        say(form.dataset.done);
        download.click();
        return;
      }
      xhr.response.text().then(showRefusal, function () {
        say(form.dataset.failed);
      });
    });
    xhr.addEventListener("error", function () {
      finish();
      say(form.dataset.failed);
    });
    problems.replaceChildren();
    download.hidden = true;
    button.disabled = true;
    bar.value = 0;
    box.hidden = false;
    say(form.dataset.uploading);
    xhr.send(new FormData(form));
  });
})();
