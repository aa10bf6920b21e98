// Talking to tickserver: GraphQL queries over HTTP POST, subscriptions over WebSocket
// (graphql-transport-ws, via the vendored graphql-ws client) with reconnect and backoff.

import { createClient } from "../vendor/graphql-ws/client.js";

/** The server wants a (different) token: HTTP 401, or WebSocket close 4401/4403. */
export class AuthError extends Error {
  constructor(message, { rejected = false } = {}) {
    super(message);
    this.name = "AuthError";
    this.rejected = rejected; // a token was sent and refused
  }
}

/** The server could not be reached (network error, 5xx, server restarting). */
export class NetworkError extends Error {
  constructor(message) {
    super(message);
    this.name = "NetworkError";
  }
}

/** The query ran and GraphQL reported errors (`codes` lists their extensions.code). */
export class QueryError extends Error {
  constructor(errors) {
    super(errors.map((e) => e.message).join("; "));
    this.name = "QueryError";
    this.codes = errors.map((e) => e.extensions?.code).filter(Boolean);
  }
}

/** POST a query to /graphql with the bearer token, if any; resolves to `data`. */
export async function query(document, variables, token) {
  const headers = { "Content-Type": "application/json", Accept: "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  let res;
  try {
    res = await fetch("/graphql", {
      method: "POST",
      headers,
      body: JSON.stringify({ query: document, variables: variables ?? {} }),
      cache: "no-store",
    });
  } catch (err) {
    throw new NetworkError(`cannot reach the server: ${err.message}`);
  }
  if (res.status === 401) throw new AuthError("the server needs a token", { rejected: !!token });
  if (res.status >= 500) throw new NetworkError(`server error ${res.status}`);
  let body;
  try {
    body = await res.json();
  } catch {
    throw new NetworkError(`unexpected reply (${res.status})`);
  }
  if (body.errors?.length) throw new QueryError(body.errors);
  return body.data;
}

/**
 * Delay before reconnect attempt `n` (0-based): 0.25 s doubling to 8 s, with ±20 % jitter so
 * many dashboards do not reconnect in lock-step after a restart.
 */
export function backoffMs(n) {
  const base = Math.min(8000, 250 * 2 ** n);
  return Math.round(base * (0.8 + 0.4 * Math.random()));
}

/**
 * Live subscriptions that survive reconnects and token changes.
 *
 * `onState({state, attempt, retryInMs, code, reason})` reports: "connecting", "live",
 * "disconnected" (waiting to retry, or trying again), "auth" (the server refused the token).
 * `onReconnect()` runs after a connection that replaced a lost one, to refill history.
 */
export class Live {
  constructor({ url, getToken, onState, onReconnect, onAuth }) {
    this.url = url;
    this.getToken = getToken;
    this.onState = onState;
    this.onReconnect = onReconnect;
    this.onAuth = onAuth;
    this.subs = new Map(); // key -> {query, variables, onData, stop}
    this.client = null;
    this.everConnected = false;
    this.lostSinceConnect = false;
  }

  start() {
    this.client = this._createClient();
    for (const sub of this.subs.values()) this._attach(sub);
  }

  /** Drop the current socket and connect again (after a new token). */
  restart() {
    const old = this.client;
    if (!old) return; // not started yet: start() will use the new token
    this.client = null;
    for (const sub of this.subs.values()) sub.stop = null;
    old?.dispose();
    this.start();
  }

  /**
   * Subscribe `key` to an operation (replacing an earlier one with that key); `onData` gets
   * each message's `data`. Returns nothing; use `unsubscribe(key)`.
   */
  subscribe(key, queryText, variables, onData) {
    this.unsubscribe(key);
    const sub = { key, query: queryText, variables, onData, stop: null };
    this.subs.set(key, sub);
    if (this.client) this._attach(sub);
  }

  unsubscribe(key) {
    const sub = this.subs.get(key);
    if (!sub) return;
    this.subs.delete(key);
    sub.stop?.();
  }

  _attach(sub) {
    const client = this.client;
    sub.stop = client.subscribe(
      { query: sub.query, variables: sub.variables },
      {
        next: (msg) => {
          if (this.subs.get(sub.key) !== sub) return;
          if (msg.errors?.length) console.warn(`subscription ${sub.key}:`, msg.errors[0].message);
          if (msg.data) sub.onData(msg.data);
        },
        error: (err) => {
          // Connection-level problems are reported through onState; GraphQL errors here.
          if (Array.isArray(err)) console.warn(`subscription ${sub.key} failed:`, err[0]?.message);
        },
        complete: () => {},
      },
    );
  }

  _createClient() {
    let attempt = 0;
    // createClient emits its first event synchronously, before it returns: `client` is
    // still null then, as is `this.client`, so the checks below let that event through.
    let client = null;
    client = createClient({
      url: this.url,
      lazy: false,
      keepAlive: 10_000, // ping; a dead peer is noticed even without traffic
      retryAttempts: Infinity,
      connectionParams: () => {
        const token = this.getToken();
        return token ? { token } : {};
      },
      shouldRetry: (e) => !(e && (e.code === 4401 || e.code === 4403)),
      retryWait: async (n) => {
        attempt = n + 1;
        const wait = backoffMs(n);
        if (this.client === client) {
          this.onState({ state: "disconnected", attempt, retryInMs: wait });
        }
        await new Promise((r) => setTimeout(r, wait));
      },
      onNonLazyError: () => {}, // reported via the "closed" event
      on: {
        connecting: (isRetry) => {
          if (this.client !== client) return;
          this.onState(
            isRetry || this.everConnected
              ? { state: "disconnected", attempt, retryInMs: 0 }
              : { state: "connecting" },
          );
        },
        connected: () => {
          if (this.client !== client) return;
          const replaced = this.everConnected;
          this.everConnected = true;
          attempt = 0;
          this.onState({ state: "live" });
          if (replaced) this.onReconnect();
        },
        closed: (event) => {
          if (this.client !== client) return;
          const code = event?.code;
          if (code === 4401 || code === 4403) {
            this.onState({ state: "auth", code, reason: event.reason });
            this.onAuth(new AuthError(event.reason || "token required", { rejected: code === 4403 }));
          } else {
            this.onState({ state: "disconnected", attempt, code, reason: event?.reason ?? "" });
          }
        },
      },
    });
    return client;
  }
}
