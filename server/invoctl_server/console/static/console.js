// The console's only script of its own: copy buttons (htmx does the rest).
document.addEventListener("click", (event) => {
  const button = event.target.closest("button.copy");
  if (!button) return;
  navigator.clipboard?.writeText(button.dataset.copy);
  button.textContent = "✓";
  setTimeout(() => { button.textContent = "⧉"; }, 1000);
});
