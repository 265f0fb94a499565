// The agent's workspace: countdowns (offers, wrap-up), new offers without reloading (the live
// stream's notification.created of kind new_offer fetches the offers fragment again), and
// keyboard shortcuts. Without this script the page still works: forms POST and come back.
"use strict";
(function () {
  const duration = window.cc.duration; // console.js

  // Every element with data-until counts down to that instant; at zero it says data-done.
  function tick() {
    const now = Date.now();
    document.querySelectorAll("[data-until]").forEach((el) => {
      const until = Date.parse(el.dataset.until);
      if (Number.isNaN(until)) return;
      const left = (until - now) / 1000;
      if (left <= 0) {
        el.textContent = el.dataset.done || "0 s";
        el.classList.add("overdue");
        ended(el);
      } else {
        el.textContent = duration(left);
        el.classList.remove("overdue");
      }
    });
  }

  // An offer's or a wrap-up's countdown reached zero: the router has moved on (the offer
  // went to the next agent, the wrap-up ended); fetch that part again, once per end, a
  // second later (the router's housekeeping runs every 0.5 s).
  const done = new Set();
  function ended(el) {
    const offer = el.closest("[data-offer-id]");
    const key = offer ? `offer:${offer.dataset.offerId}` : `until:${el.dataset.until}`;
    if (done.has(key)) return;
    done.add(key);
    if (offer) setTimeout(() => refreshOffers(), 1000);
    else if (el.closest("#my-status")) setTimeout(() => refreshStatus(), 1000);
  }

  // Fetches a fragment of this page again and puts it in place of `selector`.
  async function refresh(url, selector) {
    const current = document.querySelector(selector);
    if (!current) return;
    const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "text/html" } });
    if (!response.ok) return;
    const template = document.createElement("template");
    template.innerHTML = (await response.text()).trim();
    const fresh = template.content.querySelector(selector) || template.content.firstElementChild;
    if (!fresh) return;
    // Keep what was chosen or typed in a decline form (by offer), and the focus.
    const kept = new Map();
    current.querySelectorAll("[data-offer-id]").forEach((offer) => {
      offer.querySelectorAll("input[name], select[name]").forEach((el) => {
        if (el.type !== "hidden") kept.set(`${offer.dataset.offerId} ${el.name}`, el.value);
      });
    });
    const active = document.activeElement;
    const activeOffer = active && current.contains(active) ? active.closest("[data-offer-id]") : null;
    const activeKey = activeOffer && active.name ? `${activeOffer.dataset.offerId} ${active.name}` : null;
    fresh.querySelectorAll("[data-offer-id]").forEach((offer) => {
      offer.querySelectorAll("input[name], select[name]").forEach((el) => {
        const key = `${offer.dataset.offerId} ${el.name}`;
        if (el.type !== "hidden" && kept.has(key)) el.value = kept.get(key);
      });
    });
    current.replaceWith(fresh);
    if (activeKey) {
      const [offerId, name] = activeKey.split(" ");
      fresh.querySelector(`[data-offer-id="${CSS.escape(offerId)}"] [name="${CSS.escape(name)}"]`)?.focus();
    }
    tick();
  }

  const refreshOffers = () => refresh("/agent/offers", "#offers-list");
  const refreshStatus = () => refresh("/agent/status", "#my-status");

  // My tickets and my queues' waiting ones: this page (its sort and filters) fetched again,
  // at most every 2 s however many ticket events come, and only its two lists replaced.
  let listsDue = null;
  function refreshLists() {
    if (listsDue) return;
    listsDue = setTimeout(async () => {
      listsDue = null;
      const here = window.location.pathname + window.location.search;
      const response = await fetch(here, { credentials: "same-origin", headers: { Accept: "text/html" } });
      if (!response.ok) return;
      const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
      ["#mine-section", "#waiting-section"].forEach((selector) => {
        const current = document.querySelector(selector);
        const next = fresh.querySelector(selector);
        if (current && next && !current.contains(document.activeElement)) current.replaceWith(next);
      });
      tick();
    }, 2000);
  }

  document.addEventListener("cc:live", (event) => {
    const { type, payload } = event.detail || {};
    if (type === "notification.created" && payload && ["new_offer", "missed_offer"].includes(payload.kind)) {
      refreshOffers();
      if (payload.kind === "missed_offer") refreshStatus();
    } else if (type === "agent.status_changed") {
      refreshStatus();
    } else if (type && type.startsWith("ticket.")) {
      if (type === "ticket.assigned" || type === "ticket.status_changed") refreshOffers();
      refreshLists(); // a ticket of mine or of my queues changed
    }
  });
  document.addEventListener("cc:live-reload", () => {
    refreshOffers();
    refreshStatus();
    refreshLists();
  });

  function typing(target) {
    return target instanceof HTMLElement &&
      (target.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName));
  }

  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey || typing(event.target)) return;
    if (event.key === "a") {
      const form = document.querySelector("form.accept-offer");
      if (form) {
        event.preventDefault();
        form.requestSubmit();
      }
    } else if (event.key === "t") {
      event.preventDefault();
      window.location.assign("/tickets");
    } else if (event.key === "?") {
      const help = document.getElementById("shortcuts");
      if (help) {
        event.preventDefault();
        help.open = !help.open;
        if (help.open) help.querySelector("summary")?.focus();
      }
    }
  });

  tick();
  setInterval(tick, 1000);
  window.cc = Object.assign(window.cc || {}, { refreshOffers });
})();
