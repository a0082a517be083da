// The portal's RMA form (R-R1): add/remove item rows, live serial check, scanner Enter.
// Every page works without this file: the server adds rows and checks on submit.
(function () {
  "use strict";
  var form = document.getElementById("rma-form");
  if (!form) { return; }
  var rowsBox = document.getElementById("item-rows");
  var template = document.getElementById("item-row-template");
  var checkUrl = form.getAttribute("data-check-url");
  var nextIndex = 0;

  function rows() { return rowsBox.querySelectorAll(".item-row"); }

  function renumber() {
    var all = rows();
    for (var i = 0; i < all.length; i++) {
      var no = all[i].querySelector(".item-no");
      if (no) { no.textContent = String(i + 1); }
    }
  }

  function enableRow(row) {
    var remove = row.querySelector(".remove-row");
    if (remove) { remove.hidden = false; }
  }

  function addRow() {
    var index = nextIndex++;
    var html = template.innerHTML.replace(/__INDEX__/g, String(index))
      .replace(/__NUM__/g, String(rows().length + 1));
    rowsBox.insertAdjacentHTML("beforeend", html);
    var row = rowsBox.lastElementChild;
    enableRow(row);
    var serial = row.querySelector("[data-serial-input]");
    if (serial) { serial.focus(); }
    return row;
  }

  function removeRow(row) {
    if (rows().length <= 1) {
      // Keep one row: empty it instead.
      row.querySelectorAll("input, textarea, select").forEach(function (el) {
        if (el.tagName === "SELECT") { el.selectedIndex = 0; } else { el.value = ""; }
      });
      var out = row.querySelector(".coverage");
      if (out) { out.textContent = ""; out.className = "coverage"; }
      clearErrors(row);
      return;
    }
    var next = row.nextElementSibling || row.previousElementSibling;
    row.parentNode.removeChild(row);
    renumber();
    var focus = next && next.querySelector("[data-serial-input]");
    if (focus) { focus.focus(); } else { document.getElementById("add-row").focus(); }
  }

  function clearFieldErrors(input) {
    var box = input.closest(".field");
    if (!box) { return; }
    box.classList.remove("has-error");
    box.querySelectorAll("p.error").forEach(function (p) { p.parentNode.removeChild(p); });
    input.removeAttribute("aria-invalid");
  }

  function clearErrors(row) {
    row.querySelectorAll("input, textarea, select").forEach(clearFieldErrors);
  }

  function describe(input, id) {
    var ids = (input.getAttribute("aria-describedby") || "").split(/\s+/).filter(Boolean);
    if (ids.indexOf(id) === -1) { ids.push(id); }
    input.setAttribute("aria-describedby", ids.join(" "));
  }

  function contractParam() {
    var contract = form.querySelector("[data-contract-input]");
    return contract && contract.value.trim() ? "&contract=" + encodeURIComponent(contract.value.trim()) : "";
  }

  function checkSerial(input, force) {
    var value = input.value.trim();
    var out = document.getElementById(input.id + "-check");
    if (!out) { return; }
    if (!force && input.getAttribute("data-checked") === value) { return; }
    input.setAttribute("data-checked", value);
    clearFieldErrors(input);
    describe(input, out.id);
    if (!value) { out.textContent = ""; out.className = "coverage"; return; }
    var seq = String(Number(input.getAttribute("data-seq") || "0") + 1);
    input.setAttribute("data-seq", seq);
    out.className = "coverage pending";
    out.textContent = form.getAttribute("data-checking");
    fetch(checkUrl + "?serial=" + encodeURIComponent(value) + contractParam(), {
      credentials: "same-origin",
      headers: { "Accept": "application/json" }
    }).then(function (response) {
      var type = response.headers.get("Content-Type") || "";
      if (type.indexOf("json") === -1) { throw new Error("not JSON"); }
      return response.json().then(function (body) { return { status: response.status, body: body }; });
    }).then(function (answer) {
      if (input.getAttribute("data-seq") !== seq) { return; }  // a newer check is running
      var body = answer.body;
      if (answer.status !== 200) {
        out.className = "coverage error";
        out.textContent = body.detail || body.title || "";
        return;
      }
      if (!body.ok) {
        out.className = "coverage error";
        out.textContent = body.message;
        input.setAttribute("aria-invalid", "true");
        return;
      }
      if (body.serial && body.serial !== input.value) { input.value = body.serial; input.setAttribute("data-checked", body.serial); }
      out.className = "coverage " + (body.in_warranty ? "ok" : "out");
      out.textContent = (body.model_code ? body.model_code + " · " : "") + body.meaning;
    }).catch(function () {
      if (input.getAttribute("data-seq") !== seq) { return; }
      out.className = "coverage";
      out.textContent = form.getAttribute("data-check-failed");
    });
  }

  function focusNext(el) {
    var controls = Array.prototype.filter.call(form.elements, function (c) {
      return !c.disabled && c.type !== "hidden" && c.tabIndex !== -1 && c.offsetParent !== null;
    });
    var at = controls.indexOf(el);
    if (at >= 0 && at + 1 < controls.length) { controls[at + 1].focus(); }
  }

  // Start: number new rows after the server's, show the remove buttons.
  rows().forEach(function (row) {
    var index = Number(row.getAttribute("data-index"));
    if (index >= nextIndex) { nextIndex = index + 1; }
    enableRow(row);
  });

  form.addEventListener("click", function (event) {
    var button = event.target.closest("button");
    if (!button) { return; }
    if (button.id === "add-row") {
      event.preventDefault();
      addRow();
    } else if (button.classList.contains("remove-row")) {
      event.preventDefault();
      removeRow(button.closest(".item-row"));
    }
  });

  form.addEventListener("change", function (event) {
    var el = event.target;
    if (el.matches("[data-serial-input]")) {
      checkSerial(el, false);
    } else if (el.matches("[data-contract-input]")) {
      form.querySelectorAll("[data-serial-input]").forEach(function (s) {
        if (s.value.trim()) { checkSerial(s, true); }
      });
    }
  });

  // A scanner types the serial and presses Enter: check it and go to the fault field.
  // Enter in other one-line fields moves on instead of submitting (photos would be lost).
  form.addEventListener("keydown", function (event) {
    var el = event.target;
    if (event.key !== "Enter" || event.isComposing || el.tagName !== "INPUT") { return; }
    if (["text", "tel", "email", "search"].indexOf(el.type) === -1) { return; }
    event.preventDefault();
    if (el.matches("[data-serial-input]")) {
      checkSerial(el, false);
      var fault = el.closest(".item-row").querySelector("[data-fault-input]");
      if (fault) { fault.focus(); }
    } else {
      focusNext(el);
    }
  });
})();
