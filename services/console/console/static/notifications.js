// The notifications tray in the header: the signed-in user's unread count, read from the
// console at load and again on each `notification.created` of the live stream (static/live.js),
// and after a notification is marked read on /notifications. The list page's "mark read"
// buttons work without this script (a form POST and a redirect); with it they do not reload.
"use strict";
(function () {
  // Loaded once per page even if a template includes it twice (signed_in.html and a screen).
  if (window.cc && window.cc.refreshNotifications) return;
  const DEBOUNCE_MS = 500;
  let timer = null;

  function show(count) {
    const badge = document.getElementById("notification-count");
    const tray = document.getElementById("notification-tray");
    if (!badge) return;
    badge.textContent = count > 0 ? (count > 99 ? "99+" : String(count)) : "";
    if (tray) tray.dataset.unread = String(count);
  }

  async function refresh() {
    try {
      const response = await fetch("/notifications/unread-count", {
        credentials: "same-origin",
        headers: { Accept: "application/json" },
      });
      if (!response.ok) return;
      const body = await response.json();
      show(body.unread);
    } catch (_) { /* offline: the count stays as it was */ }
  }

  function schedule() {
    if (timer !== null) return;
    timer = window.setTimeout(() => { timer = null; refresh(); }, DEBOUNCE_MS);
  }

  document.addEventListener("cc:live", (event) => {
    if (event.detail && event.detail.type === "notification.created") schedule();
  });
  document.addEventListener("cc:live-reload", schedule);

  document.addEventListener("submit", async (event) => {
    const form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.hasAttribute("data-mark-read")) return;
    if (!window.cc || !window.cc.send) return;
    event.preventDefault();
    const answer = await window.cc.send(form.action, "POST");
    if (answer.status === 200) {
      const item = form.closest("[data-notification]");
      if (item) item.classList.remove("unread");
      form.remove();
      refresh();
    }
  });

  window.cc = Object.assign(window.cc || {}, { refreshNotifications: refresh });
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", refresh);
  else refresh();
})();
