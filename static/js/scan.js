// Warehouse pages (issue 4): the scan station, the ship form and the delivery form.
// Every page works without this file: the scan form posts and the server answers with
// the page, focused again by `autofocus`. With it, scans post in the background (one at
// a time, in the order scanned, so a fast scanner loses nothing), the input never loses
// focus, and each outcome has a sound made with the Web Audio API (no audio files).
(function () {
  "use strict";

  // -- sound ---------------------------------------------------------------------------
  var audio = null;

  function audioContext() {
    var Ctx = window.AudioContext || window.webkitAudioContext;
    if (!Ctx) { return null; }
    if (!audio) {
      try { audio = new Ctx(); } catch (e) { return null; }
    }
    if (audio.state === "suspended" && audio.resume) { audio.resume(); }
    return audio;
  }

  function tone(ctx, freq, start, length, type, volume) {
    var osc = ctx.createOscillator();
    var gain = ctx.createGain();
    osc.type = type;
    osc.frequency.setValueAtTime(freq, start);
    gain.gain.setValueAtTime(0.0001, start);
    gain.gain.exponentialRampToValueAtTime(volume, start + 0.01);
    gain.gain.setValueAtTime(volume, start + length - 0.02);
    gain.gain.exponentialRampToValueAtTime(0.0001, start + length);
    osc.connect(gain);
    gain.connect(ctx.destination);
    osc.start(start);
    osc.stop(start + length + 0.02);
  }

  // "alarm": a loud two-tone siren (unexpected unit, unknown code); "warn": two short
  // mid beeps (already received); "ok": one short high chirp.
  function beep(kind) {
    var ctx = audioContext();
    if (!ctx) { return; }
    var t = ctx.currentTime + 0.01;
    if (kind === "alarm") {
      for (var i = 0; i < 3; i++) {
        tone(ctx, 988, t + i * 0.36, 0.17, "square", 0.5);
        tone(ctx, 587, t + i * 0.36 + 0.18, 0.17, "square", 0.5);
      }
    } else if (kind === "warn") {
      tone(ctx, 740, t, 0.12, "triangle", 0.35);
      tone(ctx, 740, t + 0.2, 0.12, "triangle", 0.35);
    } else if (kind === "ok") {
      tone(ctx, 1568, t, 0.08, "sine", 0.2);
    }
  }

  // -- scan station --------------------------------------------------------------------
  function setUpScanStation(form) {
    var input = form.querySelector("[data-scan-input]");
    var rmaField = document.getElementById("scan-rma-field");
    var queue = [];
    var busy = false;
    if (!input) { return; }

    function isOtherControl(el) {
      return !!el && el !== input && el !== document.body && el.matches &&
        el.matches("input, select, textarea, button, a[href], summary, [tabindex], [contenteditable]");
    }

    function refocus() {
      if (!isOtherControl(document.activeElement)) {
        input.focus({ preventScroll: true });
      }
    }

    // Keep the input focused unless the user moved to another control on purpose.
    input.addEventListener("blur", function (event) {
      if (isOtherControl(event.relatedTarget)) { return; }
      window.setTimeout(refocus, 0);
    });
    // A click on empty space, or a scanner typing while nothing has focus, goes back to
    // the input (the focus moves before the key reaches the page, so nothing is lost).
    document.addEventListener("click", function () { window.setTimeout(refocus, 0); });
    document.addEventListener("keydown", function (event) {
      var active = document.activeElement;
      if (active === input || isOtherControl(active)) { return; }
      if (event.key && (event.key.length === 1 || event.key === "Enter")) { input.focus(); }
    });

    function swap(doc, id) {
      var fresh = doc.getElementById(id);
      var old = document.getElementById(id);
      if (fresh && old) { old.innerHTML = fresh.innerHTML; }
      return !!fresh;
    }

    function showFailure(code, status) {
      var box = document.getElementById("scan-feedback");
      var banner = document.createElement("div");
      banner.className = "scan-banner scan-alarm";
      banner.id = "scan-banner";
      banner.setAttribute("role", "alert");
      banner.setAttribute("data-outcome", "error");
      var strong = document.createElement("strong");
      strong.className = "scan-outcome";
      strong.textContent = form.getAttribute("data-failed") || "Not recorded";
      var text = document.createElement("span");
      text.className = "scan-message";
      text.textContent = " " + code + (status ? " (HTTP " + status + ")" : "");
      banner.appendChild(strong);
      banner.appendChild(text);
      box.innerHTML = "";
      box.appendChild(banner);
      beep("alarm");
    }

    function apply(html, code, status) {
      var doc = new DOMParser().parseFromString(html, "text/html");
      if (!swap(doc, "scan-feedback")) {
        showFailure(code, status);  // not the scan page: logged out, CSRF, server error
        return;
      }
      swap(doc, "scan-rma");
      swap(doc, "scan-log");
      var freshForm = doc.getElementById("scan-form");
      var freshRma = doc.getElementById("scan-rma-field");
      if (freshRma && rmaField) { rmaField.value = freshRma.value; }
      if (freshForm) {
        form.setAttribute("action", freshForm.getAttribute("action"));
        if (window.history && window.history.replaceState) {
          window.history.replaceState(null, "", freshForm.getAttribute("action"));
        }
      }
      var banner = document.getElementById("scan-banner");
      if (banner) { beep(banner.getAttribute("data-sound")); }
    }

    function pump() {
      if (busy || queue.length === 0) { return; }
      busy = true;
      var code = queue.shift();
      var data = new FormData(form);
      data.set("code", code);
      fetch(form.getAttribute("action"), {
        method: "POST", body: data, credentials: "same-origin",
        headers: { "X-Requested-With": "fetch" }
      }).then(function (response) {
        return response.text().then(function (html) { apply(html, code, response.status); });
      }).catch(function () {
        showFailure(code, 0);
      }).then(function () {
        busy = false;
        refocus();
        pump();
      });
    }

    form.addEventListener("submit", function (event) {
      if (!window.fetch || !window.DOMParser || !window.FormData) { return; }
      event.preventDefault();
      audioContext();  // created inside the key press, so the browser lets it play
      var code = input.value.trim();
      input.value = "";
      input.focus({ preventScroll: true });
      if (code) {
        queue.push(code);
        pump();
      }
    });

    // After a plain (no-fetch) post the page arrives with its banner: play its sound
    // when the browser allows it.
    var first = document.getElementById("scan-banner");
    if (first) { beep(first.getAttribute("data-sound")); }
    refocus();
  }

  // -- Enter moves on: a scanner's Enter in the ship form's serial goes to the carrier --
  document.addEventListener("keydown", function (event) {
    var field = event.target;
    if (event.key !== "Enter" || !field.getAttribute) { return; }
    var nextId = field.getAttribute("data-enter-next");
    if (!nextId) { return; }
    var next = document.getElementById(nextId);
    if (next) {
      event.preventDefault();
      next.focus();
      if (next.select) { next.select(); }
    }
  });

  // -- delivery: show the late reason only when the delivery would be late -------------
  function setUpDelivery(form) {
    var when = document.getElementById("delivered_at");
    var box = document.getElementById("late-reason-box");
    var preview = document.getElementById("delivery-preview");
    var due = form.getAttribute("data-due");
    var started = form.getAttribute("data-started");
    var reason = document.getElementById("late_reason");
    if (!when || !box || !due) { return; }

    function update() {
      var value = when.value ? when.value.slice(0, 16) : "";
      var late = value !== "" && value > due;  // both "YYYY-MM-DDTHH:MM" in China time
      var hasText = reason && reason.value.trim() !== "";
      var hasError = box.querySelector(".error") !== null;
      box.hidden = !late && !hasText && !hasError;
      if (preview && value && started) {
        var hours = (Date.parse(value) - Date.parse(started)) / 3600000;
        if (!isNaN(hours)) {
          var text = form.getAttribute(late ? "data-late" : "data-within") || "";
          preview.textContent = text.replace("{hours}", hours.toFixed(1));
          preview.className = late ? "hint late" : "hint within";
        }
      }
    }
    when.addEventListener("input", update);
    when.addEventListener("change", update);
    update();
  }

  var scanForm = document.getElementById("scan-form");
  if (scanForm) { setUpScanStation(scanForm); }
  var deliverForm = document.getElementById("deliver-form");
  if (deliverForm) { setUpDelivery(deliverForm); }
})();
