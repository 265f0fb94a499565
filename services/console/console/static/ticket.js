// A ticket's page (and the tickets list): live countdowns (SLA clocks in business time,
// deadlines, offers), canned responses into the reply box, the ticket's parts brought up to
// date in place when it changes elsewhere, and keyboard shortcuts.
"use strict";
(function () {
  const duration = window.cc.duration; // console.js

  function tick() {
    const now = Date.now();
    document.querySelectorAll("[data-until]").forEach((el) => {
      const until = Date.parse(el.dataset.until);
      if (Number.isNaN(until)) return;
      const left = (until - now) / 1000;
      el.textContent = left <= 0 ? el.dataset.done || "0 s" : duration(left);
      el.classList.toggle("overdue", left <= 0);
    });
    // The SLA service's clocks: business time left as of the figure's arrival, counting down
    // while the clock runs (the next fetch has the SLA service's own figure again).
    document.querySelectorAll(".sla-clock[data-remaining]").forEach((el) => {
      const remaining = Number(el.dataset.remaining);
      if (Number.isNaN(remaining)) return;
      if (!el.dataset.seenAt) el.dataset.seenAt = String(now); // when this figure came
      const since = (now - Number(el.dataset.seenAt)) / 1000;
      const left = el.dataset.running === "true" ? remaining - since : remaining;
      el.textContent = duration(left);
      el.classList.toggle("overdue", left < 0);
    });
  }

  const article = document.getElementById("ticket");
  const ticketId = article ? article.dataset.ticketId : null;
  const replyText = document.getElementById("reply-text");

  // Canned responses: filled in by the router for this ticket, put into the reply box.
  const cannedForm = document.getElementById("canned-form");
  if (cannedForm && replyText && ticketId) {
    cannedForm.addEventListener("submit", async (event) => {
      event.preventDefault();
      const id = cannedForm.querySelector("select").value;
      const response = await fetch(`/tickets/${ticketId}/canned-responses/${encodeURIComponent(id)}`, {
        credentials: "same-origin",
        headers: { Accept: "application/json" },
      });
      if (!response.ok) {
        cannedForm.submit(); // the server-rendered way shows what went wrong
        return;
      }
      const body = await response.json();
      replyText.value = replyText.value.trim() ? `${replyText.value}\n${body.text}` : body.text;
      const hidden = document.getElementById("reply-canned-id");
      if (hidden) hidden.value = body.canned_response_id;
      replyText.focus();
    });
  }

  function typing(target) {
    return target instanceof HTMLElement &&
      (target.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName));
  }

  // A form whose fields are as the page drew them, and nobody is in it: safe to replace.
  function pristine(root) {
    if (root.contains(document.activeElement)) return false;
    return Array.from(root.querySelectorAll("input, textarea, select")).every((el) => {
      if (el instanceof HTMLSelectElement) {
        return Array.from(el.options).every((o) => o.selected === o.defaultSelected);
      }
      if (el.type === "checkbox" || el.type === "radio") return el.checked === el.defaultChecked;
      return el.value === el.defaultValue;
    });
  }

  // The ticket changed (a customer's message, a delivery, an SLA clock, another user's
  // action): the page is fetched again and its read-only parts replaced in place, never the
  // boxes being typed in; the actions too when untouched. No navigation, nothing lost.
  const LIVE_PARTS = ["#ticket-status", "#conversation", "#sla", "#customer", "#routing", "#history"];
  let due = null;
  function refreshParts() {
    if (due) return;
    due = setTimeout(async () => {
      due = null;
      const response = await fetch(window.location.pathname, {
        credentials: "same-origin",
        headers: { Accept: "text/html" },
      });
      if (!response.ok) return;
      const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
      const parts = LIVE_PARTS.slice();
      const actions = document.getElementById("actions");
      if (actions && pristine(actions)) parts.push("#actions");
      parts.forEach((selector) => {
        const current = document.querySelector(selector);
        const next = fresh.querySelector(selector);
        if (current && next && !current.contains(document.activeElement)) current.replaceWith(next);
      });
      const note = document.getElementById("ticket-live");
      if (note) note.textContent = note.dataset.changed || "";
      tick();
    }, 300);
  }

  document.addEventListener("cc:live", (event) => {
    const { type, payload } = event.detail || {};
    if (!ticketId || !payload || payload.ticket_id !== ticketId || !type) return;
    if (type.startsWith("ticket.") || type.startsWith("message.") || type.startsWith("sla.")) {
      refreshParts();
    }
  });
  document.addEventListener("cc:live-reload", () => {
    if (ticketId) refreshParts();
  });

  function focus(id) {
    const el = document.getElementById(id);
    if (!el) return false;
    el.scrollIntoView({ block: "center" });
    el.focus();
    return true;
  }

  document.addEventListener("keydown", (event) => {
    // Ctrl+Enter (or Cmd+Enter) sends the box being typed in.
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey) && event.target instanceof HTMLTextAreaElement) {
      event.preventDefault();
      event.target.form?.requestSubmit();
      return;
    }
    if (event.ctrlKey || event.metaKey || event.altKey || typing(event.target)) return;
    let handled = false;
    if (event.key === "r") handled = focus("reply-text");
    else if (event.key === "n") handled = focus("note-text");
    else if (event.key === "e") handled = focus("resolve-code");
    else if (event.key === "a") {
      const form = document.querySelector("form.accept-offer");
      if (form) {
        form.requestSubmit();
        handled = true;
      }
    } else if (event.key === "t") {
      window.location.assign("/tickets");
      handled = true;
    } else if (event.key === "?") {
      const help = document.getElementById("shortcuts");
      if (help) {
        help.open = !help.open;
        if (help.open) help.querySelector("summary")?.focus();
        handled = true;
      }
    }
    if (handled) event.preventDefault();
  });

  tick();
  setInterval(tick, 1000);
})();
