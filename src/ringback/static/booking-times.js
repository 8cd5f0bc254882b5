// Choosing a treatment or provider shows its times at once (the button does it without JS).
for (const id of ["service", "provider"]) {
  const select = document.getElementById(id);
  if (select) { select.addEventListener("change", () => select.form.submit()); }
}
