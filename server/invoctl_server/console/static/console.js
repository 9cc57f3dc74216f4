// The console's only script of its own: copy buttons (htmx does the rest).
document.addEventListener("click", (event) => {
  const button = event.target.closest("button.copy");
  if (!button) return;
  navigator.clipboard?.writeText(button.dataset.copy);
  // Words, not glyphs: the symbols we tried render as boxes in Chromium's default fonts.
  button.textContent = "copied";
  setTimeout(() => { button.textContent = "copy"; }, 1000);
});
