// The staff header on a phone: the tools and the account fold behind a Menu button.
// Without this script (or on a wide screen) they are simply shown.
(function () {
  "use strict";
  var toggle = document.querySelector(".menu-toggle");
  var menu = document.getElementById("staff-menu");
  if (!toggle || !menu) return;
  document.documentElement.classList.add("has-menu");
  toggle.hidden = false;
  function set(open) {
    toggle.setAttribute("aria-expanded", open ? "true" : "false");
    menu.classList.toggle("open", open);
  }
  toggle.addEventListener("click", function () {
    set(toggle.getAttribute("aria-expanded") !== "true");
  });
  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape" && menu.classList.contains("open")) {
      set(false);
      toggle.focus();
    }
  });
})();
