// Connection state (from the WebSocket client) and server status (the `status` query:
// version, uptime, readiness, each source and sink, drops).

import { renderer } from "./frame.js";
import { fmtDuration, fmtSize } from "./format.js";

const STATE_TEXT = {
  connecting: "Connecting…",
  live: "Live",
  disconnected: "Disconnected",
  auth: "Token required",
};

export class ConnectionBadge {
  constructor(el) {
    this.el = el;
    this.text = el.querySelector(".conn-text");
    this.detail = el.querySelector(".conn-detail");
    this.current = { state: "connecting" };
    this.invalidate = renderer("connection", () => this.draw());
  }

  set(info) {
    this.current = info;
    // The state attribute is set at once (tests and CSS key on it); text on the next frame.
    document.documentElement.dataset.conn = info.state;
    this.invalidate();
  }

  draw() {
    const { state, attempt, retryInMs, code } = this.current;
    this.el.dataset.state = state;
    this.text.textContent = STATE_TEXT[state] ?? state;
    let detail = "";
    if (state === "disconnected") {
      const n = attempt ? ` (attempt ${attempt})` : "";
      detail = retryInMs ? `retrying in ${(retryInMs / 1000).toFixed(1)} s${n}` : `reconnecting${n}…`;
      if (code && code !== 1006 && !retryInMs) detail += ` · closed ${code}`;
    } else if (state === "auth") {
      detail = code === 4403 ? "token refused" : "enter the API token";
    }
    this.detail.textContent = detail;
  }
}

function componentChip(c) {
  const li = document.createElement("li");
  li.className = "chip";
  li.dataset.state = c.state;
  li.title = `${c.kind} ${c.name}: ${c.state}${c.reason ? ` (${c.reason})` : ""}`;
  const dot = document.createElement("span");
  dot.className = "dot";
  dot.setAttribute("aria-hidden", "true");
  li.append(dot, `${c.name} ${c.state}`);
  return li;
}

/** Sum of counters whose name mentions drops (e.g. drop counters of the core or the bus). */
function dropCount(status) {
  let n = status.droppedSubscribers ?? 0;
  const walk = (obj) => {
    for (const [k, v] of Object.entries(obj ?? {})) {
      if (typeof v === "number" && /drop/i.test(k)) n += v;
      else if (v && typeof v === "object" && /drop/i.test(k)) {
        for (const x of Object.values(v)) if (typeof x === "number") n += x;
      }
    }
  };
  walk(status.counters);
  for (const c of [...(status.sources ?? []), ...(status.sinks ?? [])]) walk(c.details);
  return n;
}

const state = () => document.documentElement.dataset.conn;

export class ServerStatus {
  constructor(el) {
    this.el = el;
    this.status = null;
    this.receivedAt = 0;
    this.invalidate = renderer("status", () => this.draw());
    setInterval(() => {
      if (this.status && state() === "live") this.invalidate();
    }, 1000);
  }

  update(status) {
    this.status = status;
    this.receivedAt = performance.now();
    this.invalidate();
  }

  draw() {
    const s = this.status;
    if (!s) return;
    const el = this.el;
    el.querySelector(".version").textContent = `v${s.version}`;
    // Uptime keeps counting between polls (while the connection is live).
    const since = state() === "live" ? (performance.now() - this.receivedAt) / 1000 : 0;
    el.querySelector(".uptime").textContent = `up ${fmtDuration(s.uptimeS + since)}`;
    const ready = el.querySelector(".ready");
    ready.textContent = s.ready ? "ready" : `degraded: ${s.reasons.join("; ")}`;
    ready.dataset.ok = String(s.ready);
    const sources = el.querySelector(".sources");
    sources.replaceChildren(...s.sources.map(componentChip));
    const sinks = el.querySelector(".sinks");
    sinks.replaceChildren(
      ...(s.sinks.length ? s.sinks.map(componentChip) : [Object.assign(document.createElement("li"), { className: "chip none", textContent: "no sinks" })]),
    );
    const drops = dropCount(s);
    const d = el.querySelector(".drops");
    d.textContent = `drops ${fmtSize(drops)}`;
    d.dataset.ok = String(drops === 0);
    el.querySelector(".subscribers").textContent = `${s.subscribers} subscribers`;
  }
}
