// The playground and Train forms: sliders mirror their number boxes, list inputs grow and shrink, file
// inputs preview what was picked, and the schema's constraints are checked before submitting
// (the server checks again and shows its errors next to each field).
(function () {
  "use strict";
  var form = document.getElementById("playground") || document.getElementById("train");
  if (!form) return;

  // The Train form's destination picker: a new model's owner and name only when "A new model".
  var destination = document.getElementById("id_destination");
  if (destination) {
    var fresh = document.getElementById("new-destination");
    var toggle = function () { fresh.hidden = destination.value !== ""; };
    destination.addEventListener("change", toggle);
    toggle();
  }

  form.querySelectorAll("input[type=range][data-mirror]").forEach(function (range) {
    var box = document.getElementById(range.dataset.mirror);
    range.addEventListener("input", function () { box.value = range.value; });
    box.addEventListener("input", function () { if (box.value !== "") range.value = box.value; });
  });

  function removable(li) {
    var button = li.querySelector("[data-remove]");
    if (button) button.addEventListener("click", function () { li.remove(); });
  }
  form.querySelectorAll(".list-items li").forEach(removable);
  form.querySelectorAll("[data-add]").forEach(function (add) {
    add.addEventListener("click", function () {
      var list = form.querySelector('[data-list="' + add.dataset.add + '"]');
      var last = list.lastElementChild;
      var li = last.cloneNode(true);
      var input = li.querySelector("input");
      input.value = "";
      if (!li.querySelector("[data-remove]")) {
        var button = document.createElement("button");
        button.type = "button"; button.className = "secondary"; button.textContent = "Remove";
        button.setAttribute("data-remove", "");
        li.appendChild(button);
      }
      list.appendChild(li);
      removable(li);
      input.focus();
    });
  });

  form.querySelectorAll("input[type=file]").forEach(function (input) {
    input.addEventListener("change", function () {
      var slot = input.parentElement.querySelector(".preview-slot");
      if (!slot) return;
      slot.textContent = "";
      var file = input.files && input.files[0];
      if (!file) return;
      var kind = (file.type || "").split("/")[0];
      var element;
      if (kind === "image") { element = document.createElement("img"); element.alt = "Preview of " + file.name; }
      else if (kind === "audio" || kind === "video") { element = document.createElement(kind); element.controls = true; }
      else { element = document.createElement("p"); element.textContent = file.name; slot.appendChild(element); return; }
      element.className = "preview";
      element.src = URL.createObjectURL(file);
      slot.appendChild(element);
    });
  });

  function showError(field, message) {
    var p = field.querySelector(".error");
    if (!p) {
      p = document.createElement("p");
      p.className = "error"; p.setAttribute("role", "alert");
      field.appendChild(p);
    }
    p.textContent = message;
    field.classList.add("has-error");
  }

  form.addEventListener("submit", function (event) {
    var firstBad = null;
    form.querySelectorAll(".field").forEach(function (field) {
      field.classList.remove("has-error");
      var old = field.querySelector(".error");
      if (old) old.remove();
      var message = "";
      field.querySelectorAll("input, select, textarea").forEach(function (control) {
        if (message || control.type === "range") return;
        if (!control.checkValidity()) message = control.validationMessage;
        if (!message && control.classList.contains("json") && control.value.trim()) {
          try { JSON.parse(control.value); } catch (e) { message = "Enter valid JSON."; }
        }
      });
      var file = field.querySelector("input[type=file][data-required]");
      if (!message && file && !file.files.length) {
        var url = field.querySelector("input[type=url]");
        if (!url || !url.value.trim()) message = "Upload a file or paste its URL.";
      }
      if (message) {
        showError(field, message);
        if (!firstBad) firstBad = field;
      }
    });
    if (firstBad) {
      event.preventDefault();
      var details = firstBad.closest("details");
      if (details) details.open = true;
      var control = firstBad.querySelector("input:not([type=range]), select, textarea");
      if (control) control.focus();
      return;
    }
    var submit = form.querySelector("button[type=submit]");
    if (submit) { submit.disabled = true; submit.textContent = "Starting…"; }
  });
})();
