// Leave empty filters out of the query string so that links stay short and shareable.
document.addEventListener("submit", (event) => {
  const form = event.target;
  if (form.id !== "filters") return;
  for (const field of form.elements) {
    if (field.name && field.value === "") field.disabled = true;
  }
});
