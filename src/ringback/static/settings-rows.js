// Settings forms with repeatable rows (services, providers): "Add" copies the blank last
// row with the next number in its field names. Without scripts the page still works: it
// always ends with one blank row, and saving adds another.
(function () {
  "use strict";
  document.querySelectorAll("[data-add-row]").forEach(function (button) {
    var rows = document.getElementById(button.getAttribute("data-add-row"));
    if (!rows) return;
    button.hidden = false;
    button.addEventListener("click", function () {
      var last = rows.querySelector(".repeat-row:last-of-type");
      if (!last) return;
      var from = last.getAttribute("data-row");
      var to = String(Number(from) + 1);
      var copy = last.cloneNode(true);
      copy.setAttribute("data-row", to);
      var prefix = "." + from + ".";
      var idPrefix = "-" + from + "-";
      copy.querySelectorAll("[name], [id], [for], [aria-describedby]").forEach(function (el) {
        ["name", "id", "for", "aria-describedby"].forEach(function (attr) {
          var value = el.getAttribute(attr);
          if (value) el.setAttribute(attr, value.split(prefix).join("." + to + ".").split(idPrefix).join("-" + to + "-"));
        });
        if (el.tagName === "INPUT" && (el.type === "checkbox" || el.type === "radio")) el.checked = false;
        else if (el.tagName === "INPUT" || el.tagName === "TEXTAREA") el.value = "";
        el.removeAttribute("aria-invalid");
      });
      copy.querySelectorAll(".field-error").forEach(function (el) { el.remove(); });
      rows.appendChild(copy);
      var first = copy.querySelector("input:not([type=hidden])");
      if (first) first.focus();
    });
  });
})();
