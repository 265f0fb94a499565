// The page's live events: ONE EventSource to /live, each event re-dispatched as a DOM event.
//
//   document.addEventListener("cc:live", (e) => e.detail /* {type, id, payload} */);
//   document.addEventListener("cc:live-reload", () => /* re-fetch the page's data */);
//
// The browser reconnects by itself after a drop (the server's `retry:`), sending the last
// event's id (Last-Event-ID) so the console replays what was missed; when the gap is too old
// the console says `reload` instead. Every element with class `live-status` shows the
// connection's state, in the page's language.
"use strict";
(function () {
  if (window.cc && window.cc.live) return; // one stream per page, however often included

  const WORDS = {
    en: { connecting: "Connecting…", connected: "Live", reconnecting: "Reconnecting…", offline: "Offline: reload the page" },
    zh: { connecting: "正在连接…", connected: "实时", reconnecting: "正在重新连接…", offline: "已断开：请刷新页面" },
  };
  const lang = (document.documentElement.lang || "en").toLowerCase().startsWith("zh") ? "zh" : "en";

  function showState(state) {
    document.querySelectorAll(".live-status").forEach((el) => {
      el.textContent = WORDS[lang][state];
      el.dataset.state = state;
    });
    document.dispatchEvent(new CustomEvent("cc:live-state", { detail: { state } }));
  }

  function relay(event) {
    let data;
    try {
      data = JSON.parse(event.data);
    } catch (_) {
      return;
    }
    document.dispatchEvent(
      new CustomEvent("cc:live", {
        detail: { type: data.type || event.type, id: data.id, payload: data.payload || {} },
      }),
    );
  }

  // The event types the console sends (the catalog's): an EventSource dispatches a named
  // event (`event: ticket.assigned`) only to listeners of that name.
  const TYPES = [
    "ticket.opened", "ticket.contact_added", "ticket.status_changed", "ticket.routed",
    "ticket.assigned", "ticket.transferred", "ticket.reclassified", "ticket.replied",
    "ticket.resolved", "ticket.reopened", "ticket.closed", "agent.status_changed",
    "notification.created", "sla.warning", "sla.breached", "sla.escalated", "sla.met",
    "sla.deadline_changed",
  ];

  function connect() {
    const source = new EventSource("/live");
    source.onopen = () => showState("connected");
    source.onerror = () => {
      // CONNECTING: the browser retries by itself. CLOSED: it gave up (the session ended:
      // /live answered 401), so the page needs the user.
      showState(source.readyState === EventSource.CLOSED ? "offline" : "reconnecting");
    };
    source.onmessage = relay;
    TYPES.forEach((type) => source.addEventListener(type, relay));
    source.addEventListener("reload", () => {
      document.dispatchEvent(new CustomEvent("cc:live-reload"));
    });
    return source;
  }

  function start() {
    showState("connecting");
    const source = connect();
    window.cc = Object.assign(window.cc || {}, { live: source });
    window.addEventListener("pagehide", () => source.close());
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
