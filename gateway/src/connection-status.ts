/**
 * The connection state of each embedded app, shown on the page: "Connecting", "Connected",
 * "Connection lost". It is a same-origin script (no inline code, so a strict Content Security
 * Policy can allow it by origin) that pages load once; it watches every element marked
 * `data-bokeh-app` and updates the `data-connection` element inside it.
 *
 * How it follows BokehJS 3.9: the embed script replaces itself with the app's root elements,
 * each the element of a root view; `Bokeh.documents[i].views_manager` lists those views, which
 * is how a document is matched to the app's element. The document then reports
 * `connection_lost` (with `timeout: null` once BokehJS gives up) and `client_reconnected`.
 *
 * BokehJS retries a lost WebSocket five times in about 30 s, but a retry that reaches a restarted
 * Bokeh server meets a new session: apps whose data travels as binary buffers (numpy arrays)
 * then fail to re-pull the document and are left open but broken, without any further event.
 * So a lost connection stays "lost, reload" until BokehJS itself reports `client_reconnected`.
 */
import type { Request, Response } from 'express';

/** Where pages load the script from. */
export const CONNECTION_STATUS_PATH = '/assets/connection-status.js';

/** Without a Bokeh document after this long, the page says the app did not load (BokehJS logs why). */
export const LOAD_TIMEOUT_MS = 20_000;

/** The states a page shows, with the ARIA role each one takes: a loss interrupts, the rest do not. */
export const CONNECTION_STATES = {
  connecting: { role: 'status', text: 'Connecting…' },
  connected: { role: 'status', text: 'Connected' },
  lost: { role: 'alert', text: 'Connection lost. Reload the page to start a new session.' },
  failed: { role: 'alert', text: 'The app could not be loaded. Reload the page to try again.' },
} as const;

export type ConnectionState = keyof typeof CONNECTION_STATES;

/**
 * The markup for one app's state, in its first state. The script finds it inside the element
 * marked `data-bokeh-app`.
 */
export function connectionStatusHtml(): string {
  const { role, text } = CONNECTION_STATES.connecting;
  return `<p class="connection" data-connection="connecting" role="${role}"><span class="dot" aria-hidden="true"></span><span class="text">${text}</span></p>`;
}

// Plain ES2020 for the browser; it reads only what BokehJS 3.x exposes on window.Bokeh.
const SCRIPT = `"use strict";
(function () {
  var STATES = ${JSON.stringify(CONNECTION_STATES)};
  var LOAD_TIMEOUT_MS = ${LOAD_TIMEOUT_MS};

  function show(status, state) {
    if (status.getAttribute("data-connection") === state) return;
    status.setAttribute("data-connection", state);
    status.setAttribute("role", STATES[state].role);
    status.querySelector(".text").textContent = STATES[state].text;
    var reload = status.querySelector("button");
    if (STATES[state].role === "alert" && !reload) {
      reload = document.createElement("button");
      reload.type = "button";
      reload.textContent = "Reload";
      reload.addEventListener("click", function () { window.location.reload(); });
      status.appendChild(reload);
    } else if (STATES[state].role !== "alert" && reload) {
      reload.remove();
    }
  }

  // The Bokeh document whose root views BokehJS rendered inside this element, if any yet.
  function documentIn(element) {
    var docs = (window.Bokeh && window.Bokeh.documents) || [];
    for (var i = 0; i < docs.length; i++) {
      var views = docs[i].views_manager ? docs[i].views_manager.roots : [];
      for (var j = 0; j < views.length; j++) {
        if (views[j].el && element.contains(views[j].el)) return docs[i];
      }
    }
    return null;
  }

  function watch(app) {
    var status = app.querySelector("[data-connection]");
    if (!status) return;
    var observer = new MutationObserver(check);
    // On a slow network the app may still arrive after this; the observer keeps watching for it.
    var timer = setTimeout(function () { show(status, "failed"); }, LOAD_TIMEOUT_MS);
    function stop() {
      observer.disconnect();
      clearTimeout(timer);
    }
    function check() {
      if (app.querySelector(".bk-embed-error")) {
        stop();
        show(status, "failed");
        return;
      }
      var doc = documentIn(app);
      if (!doc) return;
      stop();
      show(status, "connected");
      doc.on_event("connection_lost", function () { show(status, "lost"); });
      doc.on_event("client_reconnected", function () { show(status, "connected"); });
    }
    observer.observe(app, { childList: true, subtree: true });
    check();
  }

  var apps = document.querySelectorAll("[data-bokeh-app]");
  for (var i = 0; i < apps.length; i++) watch(apps[i]);
})();
`;

/** Express handler for CONNECTION_STATUS_PATH. Revalidated by ETag, so a new gateway version is picked up at once. */
export function sendConnectionStatusScript(_req: Request, res: Response): void {
  res.type('text/javascript').set('Cache-Control', 'no-cache').send(SCRIPT);
}

/** The script's source, for tests. */
export const connectionStatusScript = SCRIPT;
