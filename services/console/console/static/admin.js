// The admin pages: a "line N" link of the routing policy's (or rules') table puts the caret on
// that line of the JSON document and scrolls it into view; with errors, the list of what to
// correct gets the focus so a screen reader reads it first. Everything works without it.
"use strict";
(function () {
  function goToLine(textarea, line) {
    const lines = textarea.value.split("\n");
    let offset = 0;
    for (let i = 0; i < line - 1 && i < lines.length; i++) offset += lines[i].length + 1;
    textarea.focus();
    textarea.setSelectionRange(offset, offset + (lines[line - 1] || "").length);
    const lineHeight = textarea.scrollHeight / Math.max(lines.length, 1);
    textarea.scrollTop = Math.max(0, (line - 3) * lineHeight);
  }

  document.addEventListener("click", (event) => {
    const link = event.target instanceof Element ? event.target.closest("a[data-line]") : null;
    const textarea = document.getElementById("document");
    if (!link || !textarea) return;
    event.preventDefault();
    goToLine(textarea, Number(link.dataset.line));
  });

  document.addEventListener("DOMContentLoaded", () => {
    const errors = document.getElementById("form-errors");
    if (errors) {
      errors.setAttribute("tabindex", "-1");
      errors.focus();
    }
  });
})();
