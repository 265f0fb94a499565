// The console's shared script: the CSRF header for the pages' own requests, and the small
// behaviours every page has. No framework, no build step, nothing loaded from elsewhere.
"use strict";
(function () {
  const csrf = () => document.querySelector('meta[name="csrf-token"]')?.content || "";

  // POST (or another method) JSON to the console with the session's CSRF token; resolves with
  // {status, body}, the body parsed when it is JSON.
  async function send(url, method, body) {
    const response = await fetch(url, {
      method: method || "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf(), Accept: "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const type = response.headers.get("content-type") || "";
    const parsed = type.includes("json") ? await response.json() : await response.text();
    return { status: response.status, body: parsed };
  }

  // A time left as the countdowns show it: "42 s", "3 min 05 s", "1 h 07 min" (negative: overdue).
  function duration(seconds) {
    const sign = seconds < 0 ? "-" : "";
    const left = Math.floor(Math.abs(seconds));
    const pad = (n) => String(n).padStart(2, "0");
    if (left < 60) return `${sign}${left} s`;
    if (left < 3600) return `${sign}${Math.floor(left / 60)} min ${pad(left % 60)} s`;
    return `${sign}${Math.floor(left / 3600)} h ${pad(Math.floor((left % 3600) / 60))} min`;
  }

  window.cc = Object.assign(window.cc || {}, { csrf, send, duration });

  document.addEventListener("change", (event) => {
    const el = event.target;
    if (el instanceof HTMLSelectElement && el.hasAttribute("data-autosubmit")) el.form?.submit();
  });
})();
