// The supervisor's board, live: on a ticket, agent-status or SLA event (static/live.js's
// `cc:live`), the board's tables are fetched again from the console (debounced: at most one
// fetch a second, whatever the rate of events) and put in place; no page reload.
"use strict";
(function () {
  const RELEVANT = /^(ticket\.|sla\.|agent\.status_changed$)/;
  const DEBOUNCE_MS = 1000;
  const FALLBACK_MS = 60000; // without any event (the stream down), still refresh now and then
  let timer = null;
  let inFlight = false;
  let again = false;

  async function refresh() {
    const board = document.getElementById("board");
    if (!board) return;
    if (inFlight) { again = true; return; }
    inFlight = true;
    try {
      const response = await fetch(board.dataset.fragment || "/board/fragment", {
        credentials: "same-origin",
        headers: { Accept: "text/html" },
      });
      if (response.redirected || response.status === 401) { window.location.reload(); return; }
      if (!response.ok) return;
      // A keyboard user's place survives the refresh: the same ticket's link gets the focus back.
      const focused = board.contains(document.activeElement) ? document.activeElement : null;
      const href = focused instanceof HTMLAnchorElement ? focused.getAttribute("href") : null;
      board.innerHTML = await response.text();
      if (href) {
        const again = Array.from(board.querySelectorAll("a[href]")).find((a) => a.getAttribute("href") === href);
        if (again) again.focus();
      }
      const status = document.getElementById("board-status");
      if (status) status.textContent = (status.dataset.updated || "Updated") + " " + new Date().toLocaleTimeString();
      document.dispatchEvent(new CustomEvent("cc:board-updated"));
    } finally {
      inFlight = false;
      if (again) { again = false; schedule(); }
    }
  }

  function schedule() {
    if (timer !== null) return;
    timer = window.setTimeout(() => { timer = null; refresh(); }, DEBOUNCE_MS);
  }

  document.addEventListener("cc:live", (event) => {
    const type = event.detail && event.detail.type;
    if (typeof type === "string" && RELEVANT.test(type)) schedule();
  });
  document.addEventListener("cc:live-reload", schedule);
  window.setInterval(schedule, FALLBACK_MS);
  window.cc = Object.assign(window.cc || {}, { refreshBoard: refresh });
})();
