// Small progressive enhancements; every page works without this file.
(function () {
  "use strict";
  // A USB barcode scanner types the code and presses Enter. In a textarea marked
  // data-submit-on-enter="single", Enter submits when the box holds one line only,
  // so a scan checks at once while pasted lists still work.
  document.addEventListener("keydown", function (event) {
    var box = event.target;
    if (event.key !== "Enter" || event.shiftKey || !box.matches || !box.matches("textarea[data-submit-on-enter]")) {
      return;
    }
    if (box.value.trim() !== "" && box.value.indexOf("\n") === -1) {
      event.preventDefault();
      if (box.form.requestSubmit) { box.form.requestSubmit(); } else { box.form.submit(); }
    }
  });
})();
