// Croupier browser SDK: a real-time client and the iframe postMessage bridge.
//
// No build step and no dependencies. Served as an ES module at /sdk/croupier.js; the server
// also serves /sdk/croupier.classic.js, the same source as a classic script that defines
// `window.Croupier`. Both are documented in docs/sdk.md.
//
// One file on purpose, though it holds two concepts (the client, then the bridge): a page
// loads it with one request, and an integrator can vendor it as it is.

const VERSION = "1.0.0";

const CONTROL = new Set([
  "connected", "subscribed", "unsubscribed", "published", "authenticated",
  "error", "pong", "disconnect", "reset", "keepalive",
]);

function report(error) {
  // A handler of the application threw: show it, but keep delivering to the others.
  if (typeof globalThis.reportError === "function") globalThis.reportError(error);
  else console.error(error);
}

/** Handlers by type; `on` returns the emitter so calls chain. */
class Emitter {
  constructor() {
    this._handlers = new Map();
  }

  on(type, handler) {
    if (typeof handler !== "function") throw new TypeError("a handler must be a function");
    if (!this._handlers.has(type)) this._handlers.set(type, new Set());
    this._handlers.get(type).add(handler);
    return this;
  }

  /** Remove one handler, or every handler of `type` when none is given. */
  off(type, handler) {
    const set = this._handlers.get(type);
    if (!set) return this;
    if (handler === undefined) set.clear();
    else set.delete(handler);
    if (set.size === 0) this._handlers.delete(type);
    return this;
  }

  _emit(type, ...args) {
    const set = this._handlers.get(type);
    if (!set) return;
    for (const handler of [...set]) {
      try {
        handler(...args);
      } catch (error) {
        report(error);
      }
    }
  }
}

/**
 * The delay before reconnect attempt `attempt` (0 for the first): `initial` doubling up to
 * `max`, less a random share of up to `jitter` of it, so clients cut off together do not
 * come back together.
 */
export function backoffDelay(attempt, options = {}, random = Math.random) {
  const { initial = 1000, max = 30000, factor = 2, jitter = 0.5 } = options;
  const base = Math.min(max, initial * Math.pow(factor, Math.max(0, attempt)));
  return Math.round(base * (1 - jitter * random()));
}

// -- the connect URL -----------------------------------------------------------------------

// The most channel/since query bytes put in a WebSocket connect URL, and the most channels
// (the server's default max_subscriptions): past either, the rest go as subscribe messages.
const MAX_URL_QUERY = 4096;
const MAX_URL_CHANNELS = 128;
// A token this close to its expiry is refreshed before it is put in a connect URL.
const TOKEN_MARGIN_MS = 2000;
const EPOCH = /^[A-Za-z0-9_-]{1,64}$/;

/**
 * Where a subscription resumes, as a connect URL's `since` value: "" when it has no position
 * (subscribe from now), undefined when its position cannot be written there (no epoch: it is
 * sent in a subscribe message, which forces `recovered: false`).
 */
function urlSince(position) {
  if (!position) return "";
  const { offset, epoch } = position;
  if (!Number.isSafeInteger(offset) || offset < 0 || !EPOCH.test(epoch ?? "")) return undefined;
  return `${offset}.${epoch}`;
}

/** When a JWT runs out (its `exp` claim, in ms since the epoch), or null if unknown. */
function tokenExpiry(token) {
  const part = typeof token === "string" ? token.split(".")[1] : undefined;
  if (!part) return null;
  try {
    const padded = part.replace(/-/g, "+").replace(/_/g, "/");
    const claims = JSON.parse(atob(padded + "=".repeat((4 - (padded.length % 4)) % 4)));
    return typeof claims.exp === "number" ? claims.exp * 1000 : null;
  } catch {
    return null;
  }
}

// -- SSE resume ids ------------------------------------------------------------------------

let CRC_TABLE = null;

/** A server message, or undefined when the text is not JSON (ignored, never thrown). */
function parseMessage(text) {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function crc32(text) {
  if (CRC_TABLE === null) {
    CRC_TABLE = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      CRC_TABLE[n] = c >>> 0;
    }
  }
  let crc = 0xffffffff;
  for (const byte of new TextEncoder().encode(text)) {
    crc = CRC_TABLE[(crc ^ byte) & 0xff] ^ (crc >>> 8);
  }
  return (crc ^ 0xffffffff) >>> 0;
}

function base64url(text) {
  return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/**
 * The SSE resume id for `channels` standing at `positions` (a Map channel -> {offset, epoch}):
 * the plain offset for one channel, else the server's multi-channel cursor. The cursor's
 * layout is private to Croupier; this SDK ships with the server that reads it.
 */
function sseResumeId(channels, positions) {
  if (channels.length === 1) {
    const position = positions.get(channels[0]);
    return position ? String(position.offset) : null;
  }
  const parts = [];
  let previous = null;
  let any = false;
  for (const channel of channels) {
    const position = positions.get(channel);
    if (!position || !position.epoch) {
      parts.push("");
      continue;
    }
    any = true;
    parts.push(previous === position.epoch ? String(position.offset)
      : `${position.offset}.${position.epoch}`);
    previous = position.epoch;
  }
  if (!any) return null;
  return base64url(`${crc32(channels.join("\n")).toString(16)}|${parts.join(",")}`);
}

/** Where each channel of an SSE stream starts, read from the greeting's id. */
function sseStart(channels, id) {
  const out = new Map();
  if (!id) return out;
  if (channels.length === 1) {
    if (/^[0-9]{1,18}$/.test(id)) out.set(channels[0], { offset: Number(id), epoch: null });
    return out;
  }
  let text;
  try {
    const padded = id.replace(/-/g, "+").replace(/_/g, "/");
    text = atob(padded + "=".repeat((4 - (padded.length % 4)) % 4));
  } catch {
    return out;
  }
  const parts = text.slice(text.indexOf("|") + 1).split(",");
  let epoch = null;
  parts.forEach((part, i) => {
    if (!part || i >= channels.length) return;
    const [offset, own] = part.split(".");
    if (own !== undefined) epoch = own;
    if (/^[0-9]{1,18}$/.test(offset) && epoch) {
      out.set(channels[i], { offset: Number(offset), epoch });
    }
  });
  return out;
}

// -- the client ----------------------------------------------------------------------------

/**
 * One channel a client follows. Events arrive through `on(type, handler)`, with
 * `handler(data, event)`; `"*"` receives every event. Lifecycle types: `subscribed`
 * (`{recovered, position, presence}`), `reset` (`{channel, recovered: false, position}`:
 * events were missed, reload the state), `error` (`{code, message}`: the server refused).
 */
export class Subscription extends Emitter {
  constructor(client, channel) {
    super();
    this.client = client;
    this.channel = channel;
    this.position = null; // {offset, epoch} of the last stored event seen
    this.active = true;
  }

  /** Stop receiving this channel; the handlers are dropped. */
  unsubscribe() {
    if (!this.active) return;
    this.active = false;
    this.client._unsubscribe(this);
    this._handlers.clear();
  }

  _event(message) {
    if (message.offset != null) {
      const seen = this.position;
      const sameEpoch = !seen || !seen.epoch || !message.epoch || seen.epoch === message.epoch;
      if (seen && sameEpoch && message.offset <= seen.offset) return; // already delivered
      this.position = { offset: message.offset, epoch: message.epoch ?? (seen && seen.epoch) };
    }
    this._emit(message.type, message.data, message);
    this._emit("*", message.data, message);
  }
}

const STATES = ["idle", "connecting", "connected", "reconnecting", "closed"];

/**
 * A connection to a Croupier server that survives the network.
 *
 * Options:
 *   url            the server (default: the page's origin)
 *   token          a player token (string), or none for public channels
 *   refreshToken   async () => a fresh token; called before the token runs out and when
 *                  the server says it has
 *   transport      "auto" (WebSocket, falling back to SSE and trying the WebSocket again
 *                  now and then), "websocket" or "sse"
 *   fallbackAfter  WebSocket attempts refused in a row before "auto" uses SSE (2)
 *   backoff        {initial: 1000, max: 30000, factor: 2, jitter: 0.5} (milliseconds)
 *   pingInterval   milliseconds between pings (default: what the server asks for)
 *   queueSize      messages kept while offline, or on SSE in "auto" mode, until a WebSocket
 *                  takes them (100; the oldest is dropped first: reason "overflow")
 *   retries        times a message is sent again after a failed try (3; then reason
 *                  "retries")
 *   onDrop         (message, reason) => …, for a queued message given up: "overflow",
 *                  "retries", or "closed" when the app calls close()
 *   sseIdleTimeout milliseconds of a silent event stream before reconnecting (45000)
 *   subscribeInUrl on (re)connect, name the channels already followed, where each stands,
 *                  and the token in the WebSocket URL: one request instead of a connect
 *                  and a message per channel (true)
 */
export class Client extends Emitter {
  constructor(options = {}) {
    super();
    const base = options.url ?? globalThis.location?.origin;
    if (!base) throw new TypeError("Croupier: give the server's url");
    this.url = String(base).replace(/\/+$/, "");
    this.token = options.token ?? null;
    this.refreshToken = options.refreshToken ?? null;
    this.mode = options.transport ?? "auto";
    if (!["auto", "websocket", "sse"].includes(this.mode)) {
      throw new TypeError(`Croupier: unknown transport ${this.mode}`);
    }
    this.fallbackAfter = options.fallbackAfter ?? 2;
    this.backoff = { initial: 1000, max: 30000, factor: 2, jitter: 0.5, ...options.backoff };
    this.pingInterval = options.pingInterval ?? null;
    this.queueSize = options.queueSize ?? 100;
    this.retries = options.retries ?? 3;
    this.onDrop = options.onDrop ?? null;
    this.sseIdleTimeout = options.sseIdleTimeout ?? 45000;
    this.subscribeInUrl = options.subscribeInUrl ?? true;
    this._WebSocket = options.WebSocket ?? globalThis.WebSocket;
    this._EventSource = options.EventSource ?? globalThis.EventSource;

    this.state = "idle";
    this.transport = null; // "websocket" | "sse" while connected
    this.subscriptions = new Map();
    this.queue = [];
    this._useSse = this.mode === "sse";
    this._refused = 0;
    this._retryAfter = 0; // ms an overloaded server asked to wait before the next attempt
    this._attempt = 0;
    this._probes = 0; // WebSocket probes while on SSE in "auto" mode
    this._nextId = 1;
    this._pending = new Map(); // request id -> {kind, ...}
    // Subscriptions named in the current WebSocket's URL, answered without an id:
    // channel -> {sub, since, dropped}.
    this._urlSubs = new Map();
    this._tokenInUrl = null; // the token the current WebSocket's URL carries
    this._expiry = null; // {token, at}: when the server said that token runs out (ms)
    this._ws = null;
    this._es = null;
    this._timers = new Set();
    this._ping = null;
    this._lastSeen = 0;
    this._tokenStale = false;
    this._refreshTimer = null;
    this._reopen = false;
  }

  get version() {
    return VERSION;
  }

  /** Start connecting (idempotent). */
  connect() {
    if (this.state === "idle" || this.state === "closed") {
      this._setState("connecting");
      this._open();
    }
    return this;
  }

  /** Close for good: no reconnect; queued messages are dropped. */
  close() {
    this._setState("closed");
    this._teardown();
    for (const item of this.queue.splice(0)) this._drop(item, "closed");
  }

  /** Follow `channel`; returns its Subscription (the same one if already followed). */
  subscribe(channel) {
    if (typeof channel !== "string" || channel.length === 0 || channel.length > 255) {
      throw new TypeError("Croupier: a channel name is 1 to 255 characters");
    }
    let sub = this.subscriptions.get(channel);
    if (sub) return sub;
    sub = new Subscription(this, channel);
    this.subscriptions.set(channel, sub);
    if (this.transport === "websocket") this._sendSubscribe(sub);
    else if (this.transport === "sse") this._reopenSse();
    if (this.state === "idle") this.connect();
    return sub;
  }

  _unsubscribe(sub) {
    if (this.subscriptions.get(sub.channel) !== sub) return;
    this.subscriptions.delete(sub.channel);
    if (this.transport === "websocket") {
      const named = this._urlSubs.get(sub.channel);
      if (named && named.sub === sub) named.dropped = true; // its answer may be on the way
      this._send({ type: "unsubscribe", channel: sub.channel, id: this._nextId++ });
    } else if (this.transport === "sse") {
      this._reopenSse();
    }
  }

  /**
   * Publish a player event (over the WebSocket). Resolves when the server has taken it.
   * While offline, or on SSE in "auto" mode, it waits in the queue for a WebSocket; it is
   * sent again after a connection drops before the server answered, at most `retries` more
   * times.
   */
  publish(channel, event, data = {}) {
    return new Promise((resolve, reject) => {
      const item = { message: { type: "publish", channel, event, data }, tries: 0, resolve, reject };
      if (this.mode === "sse") {
        reject(Object.assign(new Error("publishing needs the WebSocket; this client uses SSE"),
          { code: "not_supported" }));
      } else if (this.transport === "websocket") {
        this._sendItem(item);
      } else {
        this._enqueue(item);
      }
    });
  }

  // -- state -------------------------------------------------------------------------------

  _setState(state, detail = {}) {
    // Every reconnect attempt is announced (with its delay); other states once.
    if (!STATES.includes(state) || (state === this.state && state !== "reconnecting")) return;
    const previous = this.state;
    this.state = state;
    this._emit("state", { state, previous, transport: this.transport, ...detail });
  }

  _later(fn, ms) {
    const timer = setTimeout(() => {
      this._timers.delete(timer);
      fn();
    }, ms);
    this._timers.add(timer);
    return timer;
  }

  _teardown() {
    for (const timer of this._timers) clearTimeout(timer);
    this._timers.clear();
    clearInterval(this._ping);
    this._ping = null;
    clearTimeout(this._refreshTimer);
    this._refreshTimer = null;
    const ws = this._ws;
    const es = this._es;
    this._ws = null;
    this._es = null;
    if (ws) {
      try {
        ws.close(1000);
      } catch {
        // already closing
      }
    }
    if (es) es.close();
    this.transport = null;
    this._urlSubs = new Map();
    this._tokenInUrl = null;
    this._requeuePending();
  }

  async _token() {
    if (this.refreshToken && (this._tokenStale || !this.token || this._tokenDue())) {
      try {
        const fresh = await this.refreshToken();
        if (fresh) this.token = fresh;
        this._tokenStale = false;
      } catch (error) {
        this._emit("error", { code: "token_refresh_failed", message: String(error) });
      }
    }
    return this.token;
  }

  /** The token runs out within TOKEN_MARGIN_MS: by the server's word if it gave one. */
  _tokenDue() {
    const at = this._expiry?.token === this.token ? this._expiry.at : tokenExpiry(this.token);
    return at !== null && at - Date.now() < TOKEN_MARGIN_MS;
  }

  _open() {
    if (this.state === "closed") return;
    if (this._useSse) this._openSse();
    else this._openWs();
  }

  /** The connection ended; `refused` if it never opened. Reconnect, maybe over SSE. */
  _lost(refused) {
    if (this.state === "closed") return;
    const was = this.transport;
    this._teardown();
    if (refused && !this._useSse && this.mode === "auto") {
      this._refused += 1;
      if (this._refused >= this.fallbackAfter) {
        // The queue stays: its messages go out once a WebSocket works again (see _probeWs).
        this._useSse = true;
        this._refused = 0;
        this._emit("fallback", { transport: "sse" });
        this._setState("reconnecting", { attempt: this._attempt, delay: 0 });
        this._open();
        return;
      }
    } else if (refused && this._useSse && this.mode === "auto") {
      // The event stream is refused too: the server is down, not just its WebSocket.
      this._useSse = false;
    }
    let delay = backoffDelay(this._attempt, this.backoff);
    if (this._retryAfter) {
      delay = Math.max(delay, Math.round(this._retryAfter * (1 + Math.random())));
      this._retryAfter = 0;
    }
    this._attempt += 1;
    this._setState("reconnecting", { attempt: this._attempt, delay, lost: was });
    this._later(() => this._open(), delay);
  }

  _opened(transport) {
    this.transport = transport;
    this._attempt = 0;
    this._refused = 0;
    this._lastSeen = Date.now();
    this._setState("connected", { transport });
    if (transport === "websocket") this._probes = 0;
    else this._scheduleProbe();
  }

  /** On SSE in "auto" mode, try the WebSocket again after a backoff delay. */
  _scheduleProbe() {
    if (this.mode !== "auto") return;
    const delay = backoffDelay(this._probes, this.backoff);
    this._probes += 1;
    this._later(() => this._probeWs(), delay);
  }

  /** Open a WebSocket beside the event stream; once it greets, it replaces the stream. */
  async _probeWs() {
    if (this.state === "closed" || this.transport !== "sse" || this._ws) return;
    const token = await this._token();
    if (this.state === "closed" || this.transport !== "sse" || this._ws) return;
    this._dialProbe(this._wsOpening(token));
  }

  _dialProbe(opening) {
    let ws;
    try {
      ws = new this._WebSocket(opening.url);
    } catch {
      if (opening.subs.size > 0) this._dialProbe(this._wsOpening(null, true));
      else this._scheduleProbe();
      return;
    }
    let taken = false;
    let heard = false;
    ws.onmessage = (e) => {
      heard = true;
      const message = parseMessage(e.data);
      if (taken || message?.type !== "connected") return;
      taken = true;
      if (this.state === "closed" || this.transport !== "sse") {
        ws.close(1000);
        return;
      }
      this._useSse = false;
      // The event stream goes; the channels named in the URL resume from where they stood
      // when it was dialled (what the stream gave meanwhile is not delivered twice: see
      // Subscription._event), the others by message from their positions.
      this._teardown();
      this._watchWs(ws, true, opening);
      this._greetedWs(message);
    };
    ws.onclose = () => {
      if (taken || this.transport !== "sse") return;
      if (!heard && opening.subs.size > 0) this._dialProbe(this._wsOpening(null, true));
      else this._scheduleProbe();
    };
  }

  // -- WebSocket ---------------------------------------------------------------------------

  /**
   * The URL of a WebSocket attempt, with what it names: {url, subs, token}. Unless `bare`,
   * the channels already followed go in it, in the order subscribed, each with `since` its
   * position (a channel whose position has no epoch is left out, and so is every one past
   * MAX_URL_CHANNELS or MAX_URL_QUERY bytes of query); and with them the token, since the
   * server subscribes them at the upgrade, before any message could authenticate. Channels
   * left out go as subscribe messages once the server greets.
   */
  _wsOpening(token, bare = false) {
    const url = this.url.replace(/^http/, "ws") + "/ws";
    const subs = new Map();
    if (bare || !this.subscribeInUrl) return { url, subs, token: null };
    const query = [];
    let size = 0;
    for (const sub of this.subscriptions.values()) {
      const since = urlSince(sub.position);
      if (since === undefined) continue;
      const pairs = [["channel", sub.channel]];
      if (since) pairs.push(["since", since]);
      const bytes = new URLSearchParams(pairs).toString().length + 1;
      if (size + bytes > MAX_URL_QUERY || subs.size >= MAX_URL_CHANNELS) break;
      size += bytes;
      query.push(...pairs);
      subs.set(sub.channel, { sub, since: since ? sub.position : null, dropped: false });
    }
    if (subs.size === 0) return { url, subs, token: null };
    const params = new URLSearchParams(token ? [["token", token], ...query] : query);
    return { url: `${url}?${params}`, subs, token: token || null };
  }

  async _openWs() {
    const token = await this._token();
    if (this.state === "closed" || this._ws || this._es) return;
    this._dialWs(this._wsOpening(token));
  }

  _dialWs(opening) {
    let ws;
    try {
      ws = new this._WebSocket(opening.url);
    } catch {
      if (opening.subs.size > 0) this._dialWs(this._wsOpening(null, true));
      else this._later(() => this._lost(true), 0);
      return;
    }
    this._watchWs(ws, false, opening);
  }

  _watchWs(ws, greetedAlready, opening) {
    this._ws = ws;
    this._urlSubs = opening.subs;
    this._tokenInUrl = opening.token;
    let greeted = greetedAlready;
    let heard = greetedAlready;
    ws.onmessage = (e) => {
      if (this._ws !== ws) return;
      heard = true;
      this._lastSeen = Date.now();
      const message = parseMessage(e.data);
      if (message === undefined) return;
      if (message.type === "connected") {
        greeted = true;
        this._greetedWs(message);
      } else {
        this._message(message);
      }
    };
    ws.onclose = () => {
      if (this._ws !== ws) return;
      if (!heard && opening.subs.size > 0) {
        // Closed before the server said a word: it may be down, or it (or a proxy) refused
        // this URL (a token it will not take, a longer URL than it reads: a page cannot
        // tell which). The same attempt tries the bare URL at once, with the token and the
        // channels as messages, whose answers say what is wrong.
        this._ws = null;
        this._dialWs(this._wsOpening(null, true));
      } else {
        this._lost(!greeted && !this._retryAfter);
      }
    };
  }

  _greetedWs(message) {
    this._opened("websocket");
    const seconds = message.ping_interval || 25;
    const every = this.pingInterval ?? seconds * 1000;
    this._ping = setInterval(() => this._heartbeat(every), every);
    if (this._tokenInUrl) {
      // The server took the URL's token at the upgrade: no auth message, and a fresh token
      // goes out before this one runs out.
      if (message.expires_in != null) {
        const at = Date.now() + message.expires_in * 1000;
        this._expiry = { token: this._tokenInUrl, at };
        this._scheduleRefresh(at / 1000);
      }
    } else if (this.token) {
      this._sendAuth(this.token);
    }
    for (const [channel, named] of this._urlSubs) {
      if (this.subscriptions.get(channel) !== named.sub) {
        // Unsubscribed (or subscribed anew) while connecting: the URL's subscription goes.
        named.dropped = true;
        this._send({ type: "unsubscribe", channel, id: this._nextId++ });
      }
    }
    for (const sub of this.subscriptions.values()) {
      if (this._urlSubs.get(sub.channel)?.sub !== sub) this._sendSubscribe(sub);
    }
    for (const item of this.queue.splice(0)) this._sendItem(item);
  }

  _heartbeat(every) {
    if (Date.now() - this._lastSeen > 2 * every) {
      // Nothing heard for two intervals: the connection is dead even if the socket
      // has not noticed yet.
      this._lost(false);
      return;
    }
    this._send({ type: "ping" });
  }

  _send(message) {
    if (!this._ws || this._ws.readyState !== 1) return false;
    this._ws.send(JSON.stringify(message));
    return true;
  }

  _sendAuth(token) {
    const id = this._nextId++;
    this._pending.set(id, { kind: "auth", token });
    this._send({ type: "auth", token, id });
  }

  _sendSubscribe(sub) {
    const id = this._nextId++;
    // A position without an epoch (a single-channel event stream's start, before its first
    // event) cannot be checked by the server: it answers recovered:false, and the app reloads
    // rather than silently missing what happened meanwhile.
    const since = sub.position ? { offset: sub.position.offset, epoch: sub.position.epoch ?? "" }
      : null;
    this._pending.set(id, { kind: "subscribe", sub, since });
    const message = { type: "subscribe", channel: sub.channel, id };
    if (since) message.since = since;
    this._send(message);
  }

  _enqueue(item) {
    while (this.queue.length >= this.queueSize) this._drop(this.queue.shift(), "overflow");
    this.queue.push(item);
  }

  _sendItem(item) {
    item.tries += 1;
    const id = this._nextId++;
    this._pending.set(id, { kind: "publish", item });
    if (!this._send({ ...item.message, id })) {
      this._pending.delete(id);
      this._retry(item);
    }
  }

  _retry(item) {
    if (item.tries > this.retries) this._drop(item, "retries");
    else this._enqueue(item);
  }

  _drop(item, reason) {
    const error = Object.assign(new Error(`message dropped: ${reason}`), { code: reason });
    item.reject(error);
    if (this.onDrop) {
      try {
        this.onDrop(item.message, reason);
      } catch (e) {
        report(e);
      }
    }
    this._emit("drop", { message: item.message, reason });
  }

  _requeuePending() {
    // Publishes the server never answered go back to the front of the queue, in order.
    const unanswered = [];
    for (const entry of this._pending.values()) {
      if (entry.kind === "publish") unanswered.push(entry.item);
    }
    this._pending.clear();
    for (const item of unanswered.reverse()) {
      if (item.tries > this.retries) this._drop(item, "retries");
      else {
        this.queue.unshift(item);
        while (this.queue.length > this.queueSize) this._drop(this.queue.shift(), "overflow");
      }
    }
  }

  _scheduleRefresh(exp) {
    clearTimeout(this._refreshTimer);
    if (!this.refreshToken || !exp) return;
    const left = exp * 1000 - Date.now();
    const wait = Math.max(1000, left - Math.min(60000, left * 0.2));
    this._refreshTimer = setTimeout(async () => {
      this._tokenStale = true;
      const token = await this._token();
      if (this.transport === "websocket") this._sendAuth(token);
      else if (this.transport === "sse") this._reopenSse();
    }, wait);
  }

  // -- messages from either transport ------------------------------------------------------

  _message(message) {
    const type = message.type;
    if (!CONTROL.has(type)) {
      const sub = this.subscriptions.get(message.channel);
      if (sub) sub._event(message);
      this._emit("event", message);
      return;
    }
    const pending = message.id != null ? this._pending.get(message.id) : undefined;
    if (pending) this._pending.delete(message.id);
    // A channel named in the connect URL is answered without an id: matched by its name.
    const named = message.id == null && (type === "subscribed" || type === "error")
      ? this._urlSubs.get(message.channel) : undefined;
    if (named) {
      this._urlSubs.delete(message.channel);
      if (named.dropped) return; // the app has let it go meanwhile
    }
    switch (type) {
      case "subscribed": {
        const asked = named ?? (pending?.kind === "subscribe" ? pending : null);
        const sub = asked ? asked.sub : this.subscriptions.get(message.channel);
        if (!sub || this.subscriptions.get(sub.channel) !== sub) return;
        const since = asked && asked.since;
        if (since && !message.recovered) {
          sub.position = message.position ?? null;
          sub._emit("reset", { channel: sub.channel, recovered: false, position: sub.position });
        } else if (!since && message.position) {
          sub.position = message.position;
        }
        sub._emit("subscribed", {
          recovered: message.recovered ?? false,
          resumed: Boolean(since),
          position: message.position ?? null,
          presence: message.presence ?? null,
        });
        return;
      }
      case "reset": {
        const sub = this.subscriptions.get(message.channel);
        if (sub && sub._resuming) {
          sub._emit("reset", { channel: sub.channel, recovered: false, position: sub.position });
        }
        return;
      }
      case "published":
        if (pending && pending.kind === "publish") pending.item.resolve(message);
        return;
      case "authenticated":
        if (pending?.kind === "auth" && message.exp) {
          this._expiry = { token: pending.token, at: message.exp * 1000 };
        }
        this._scheduleRefresh(message.exp);
        this._emit("authenticated", message);
        return;
      case "error":
        this._error(message, named ? { kind: "subscribe", sub: named.sub } : pending);
        return;
      case "disconnect":
        if (message.code === "token_expired") this._tokenStale = true;
        // An overloaded server says when to come back: then, plus up to as long again.
        if (message.retry_after > 0) this._retryAfter = message.retry_after * 1000;
        this._emit("disconnect", message);
        if (message.reconnect === false) {
          this._emit("error", message);
          this.close();
        }
        return;
      default:
        return; // pong, keepalive
    }
  }

  _error(message, pending) {
    const error = { code: message.code, message: message.message };
    if (pending && pending.kind === "subscribe") {
      pending.sub._emit("error", error);
      if (this.subscriptions.get(pending.sub.channel) === pending.sub) {
        this.subscriptions.delete(pending.sub.channel);
        pending.sub.active = false;
      }
    } else if (pending && pending.kind === "publish") {
      const item = pending.item;
      if (message.code === "rate_limited" && item.tries <= this.retries) {
        this._later(() => (this.transport === "websocket" ? this._sendItem(item)
          : this._enqueue(item)), 1000);
      } else {
        item.reject(Object.assign(new Error(message.message), error));
      }
    } else if (pending && pending.kind === "auth") {
      if (["invalid_token", "token_expired"].includes(message.code) && this.refreshToken
        && !this._tokenStale) {
        this._tokenStale = true;
        this._token().then((token) => token && this._sendAuth(token));
      }
      this._emit("error", error);
    } else {
      this._emit("error", error);
    }
  }

  // -- Server-Sent Events ------------------------------------------------------------------

  _reopenSse() {
    // Several subscribe() calls in a row make one new stream.
    if (this._reopen) return;
    this._reopen = true;
    queueMicrotask(() => {
      this._reopen = false;
      if (this.transport !== "sse") return;
      this._teardown();
      this._openSse();
    });
  }

  async _openSse() {
    const token = await this._token();
    if (this.state === "closed" || this._ws || this._es) return;
    const channels = [...this.subscriptions.keys()];
    if (channels.length === 0) {
      // Nothing to stream yet: the first subscribe() opens the stream.
      this._opened("sse");
      return;
    }
    const positions = new Map();
    for (const sub of this.subscriptions.values()) {
      sub._resuming = Boolean(sub.position);
      if (sub.position) positions.set(sub.channel, sub.position);
    }
    const params = new URLSearchParams();
    for (const channel of channels) params.append("channel", channel);
    if (token) params.set("token", token);
    const resume = sseResumeId(channels, positions);
    if (resume) params.set("lastEventId", resume);
    const es = new this._EventSource(`${this.url}/sse?${params}`);
    this._es = es;
    let greeted = false;
    es.onmessage = (e) => {
      if (this._es !== es) return;
      this._lastSeen = Date.now();
      const message = parseMessage(e.data);
      if (message === undefined) return;
      if (message.type === "connected") {
        greeted = true;
        for (const [channel, position] of sseStart(channels, e.lastEventId)) {
          const sub = this.subscriptions.get(channel);
          if (sub && (!sub.position || position.offset !== sub.position.offset)) {
            sub.position = { offset: position.offset, epoch: position.epoch ?? sub.position?.epoch };
          }
        }
        this._opened("sse");
        this._ping = setInterval(() => {
          if (Date.now() - this._lastSeen > this.sseIdleTimeout) this._lost(false);
        }, Math.min(5000, this.sseIdleTimeout));
        for (const sub of this.subscriptions.values()) {
          sub._emit("subscribed", {
            recovered: sub._resuming, resumed: sub._resuming, position: sub.position,
            presence: null,
          });
        }
      } else if (message.type === "error") {
        this._emit("error", { code: message.code, message: message.message });
        this._lost(false);
      } else if (message.type === "disconnect") {
        this._message(message);
        if (this._es === es) this._lost(false);
      } else {
        this._message(message);
      }
    };
    es.onerror = () => {
      // EventSource would reconnect by itself, without our backoff, token refresh or
      // positions: take over.
      if (this._es === es) this._lost(!greeted);
    };
  }
}

// -- the postMessage bridge ----------------------------------------------------------------

const GAME = "game-platform";
const CASINO = "casino-ui";

/** What a game may tell the casino page. */
export const GAME_EVENTS = Object.freeze([
  "tournament.connected", "tournament.started", "tournament.completed", "player.eliminated",
  "rebuy.requested", "player.score.updated", "leaderboard.updated",
]);

/** What the casino page may answer. */
export const CASINO_EVENTS = Object.freeze(["rebuy.success", "rebuy.failed"]);

const MAX_ID = 128;
const BOARD_TOP = 10; // a leaderboard.updated carries at most this many places
const BOARD_EVERY_MS = 1000; // and goes out at most once a second

// Milliseconds on a clock that only goes forward (the wall clock can be set back or slewed).
const monotonic = () => (globalThis.performance?.now ? globalThis.performance.now() : Date.now());

function isId(value) {
  return (typeof value === "string" && value.length > 0 && value.length <= MAX_ID)
    || (Number.isSafeInteger(value) && value >= 0);
}

function plain(value) {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

function randomId() {
  if (globalThis.crypto?.randomUUID) return globalThis.crypto.randomUUID();
  return `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 10)}`;
}

function checkOrigin(origin, name) {
  if (typeof origin !== "string" || origin === "*" || !/^https?:\/\/[^/]+$/.test(origin)) {
    throw new TypeError(`${name} must be one exact origin such as https://casino.example.com`);
  }
  return origin;
}

/**
 * The game's side, inside the iframe: tells the casino page what happens, only ever to the
 * configured casino origin, and hears its answers (`rebuy.success` / `rebuy.failed`).
 *
 * Options: casinoOrigin (required), target (default window.parent), window (default the
 * global one), onRejected(report) for a message from anyone else.
 */
export class GameBridge extends Emitter {
  constructor(options = {}) {
    super();
    this.casinoOrigin = checkOrigin(options.casinoOrigin, "casinoOrigin");
    this.window = options.window ?? globalThis;
    this.target = options.target ?? this.window.parent;
    this.onRejected = options.onRejected ?? null;
    this.rejected = [];
    this._waiting = new Map(); // requestId -> {resolve, timer}
    this._board = null; // the leaderboard waiting for its second (see leaderboardUpdated)
    this._boardTimer = null;
    this._boardSentAt = -Infinity;
    this._listener = (event) => this._receive(event);
    this.window.addEventListener("message", this._listener);
  }

  /** Send one of GAME_EVENTS with its fields; returns the message sent. */
  send(type, fields = {}) {
    if (!GAME_EVENTS.includes(type)) {
      throw new TypeError(`${type} is not a game event (${GAME_EVENTS.join(", ")})`);
    }
    if (!plain(fields)) throw new TypeError("fields must be an object");
    const message = { ...fields, source: GAME, timestamp: new Date().toISOString(), type };
    this.target.postMessage(message, this.casinoOrigin);
    return message;
  }

  tournamentConnected(fields) { return this.send("tournament.connected", { status: "active", ...fields }); }
  tournamentStarted(fields) { return this.send("tournament.started", fields); }
  tournamentCompleted(fields) { return this.send("tournament.completed", fields); }
  playerEliminated(fields) {
    return this.send("player.eliminated", { eliminatedAt: new Date().toISOString(), ...fields });
  }
  scoreUpdated(fields) { return this.send("player.score.updated", fields); }
  /**
   * Tell the casino the leaderboard: only its top 10 (highest `score` first when every
   * entry has a numeric score; else as given), and at most once a second. Calls within the
   * second are coalesced: the latest is sent when the second is up. Returns the message if
   * it was sent now, null if it waits.
   */
  leaderboardUpdated(fields) {
    let board = Array.isArray(fields.leaderboard) ? [...fields.leaderboard] : [];
    if (board.every((e) => plain(e) && typeof e.score === "number")) {
      board.sort((a, b) => b.score - a.score);
    }
    board = board.slice(0, BOARD_TOP);
    this._board = { ...fields, leaderboard: board };
    if (this._boardTimer) return null;
    return this._boardDue();
  }

  // Send the waiting board if the second is up; else wait for the rest of it. A timer may
  // fire a little early, so the second is checked again when it does.
  _boardDue() {
    const wait = this._boardSentAt + BOARD_EVERY_MS - monotonic();
    if (wait <= 0) return this._sendBoard();
    this._boardTimer = setTimeout(() => {
      this._boardTimer = null;
      this._boardDue();
    }, Math.ceil(wait));
    return null;
  }

  _sendBoard() {
    const fields = this._board;
    this._board = null;
    const sent = this.send("leaderboard.updated", { lastUpdated: new Date().toISOString(), ...fields });
    // Timed from when the message went out, not from before it was built: the casino sees
    // the next one at least a second after this one however long the sending took.
    this._boardSentAt = monotonic();
    return sent;
  }

  /**
   * Ask the casino for a rebuy. Resolves with its answer (`rebuy.success` or
   * `rebuy.failed`), or with a `rebuy.failed` of error "timeout" after `timeoutMs`.
   */
  requestRebuy(fields, timeoutMs = 60000) {
    const requestId = fields.requestId ?? randomId();
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this._waiting.delete(requestId);
        resolve({ type: "rebuy.failed", ...fields, requestId, error: "timeout" });
      }, timeoutMs);
      this._waiting.set(requestId, { resolve, timer });
      this.send("rebuy.requested", { ...fields, requestId });
    });
  }

  close() {
    this.window.removeEventListener("message", this._listener);
    clearTimeout(this._boardTimer);
    this._boardTimer = null;
    for (const { timer } of this._waiting.values()) clearTimeout(timer);
    this._waiting.clear();
  }

  _reject(event, reason) {
    const entry = { origin: event.origin, reason, type: plain(event.data) ? event.data.type : undefined };
    this.rejected.push(entry);
    if (this.rejected.length > 100) this.rejected.shift();
    if (this.onRejected) this.onRejected(entry);
    this._emit("rejected", entry);
  }

  _receive(event) {
    if (event.origin !== this.casinoOrigin) return this._reject(event, "origin");
    const data = event.data;
    if (!plain(data) || data.source !== CASINO) return this._reject(event, "source");
    if (!CASINO_EVENTS.includes(data.type)) return this._reject(event, "type");
    const waiting = this._waiting.get(data.requestId);
    if (waiting) {
      clearTimeout(waiting.timer);
      this._waiting.delete(data.requestId);
      waiting.resolve(data);
    }
    this._emit(data.type, data);
    this._emit("*", data);
  }
}

/**
 * The casino page's side: accepts messages only from the configured game origin tagged
 * `source: "game-platform"`, routes them to handlers, and answers a rebuy request after
 * confirming it with the casino's own endpoint.
 *
 * Options:
 *   gameOrigin     the game iframe's origin (required)
 *   frame          the <iframe> element (or a window) answers go to
 *   rebuyUrl       the casino's endpoint; POSTed {tournamentId, playerId, requestId,
 *                  rebuyAmount}, it answers {rebuyProcessed, newEntryCount,
 *                  remainingRebuys, newBalance?, error?}
 *   rebuyHeaders   extra headers for it (e.g. a CSRF token); cookies are sent
 *   confirmRebuy   async (request) => answer, instead of rebuyUrl
 *   approve        async (request) => boolean: ask the player first (default: yes)
 *   onRejected     (report) => …, for every message ignored
 */
export class CasinoBridge extends Emitter {
  constructor(options = {}) {
    super();
    this.gameOrigin = checkOrigin(options.gameOrigin, "gameOrigin");
    this.frame = options.frame ?? null;
    this.window = options.window ?? globalThis;
    this.rebuyUrl = options.rebuyUrl ?? null;
    this.rebuyHeaders = options.rebuyHeaders ?? {};
    this.confirmRebuy = options.confirmRebuy ?? null;
    this.approve = options.approve ?? null;
    this.onRejected = options.onRejected ?? null;
    this.rejected = [];
    this._listener = (event) => this._receive(event);
    this.window.addEventListener("message", this._listener);
  }

  close() {
    this.window.removeEventListener("message", this._listener);
  }

  /** Send `rebuy.success` or `rebuy.failed` to the game. */
  sendToGame(type, fields = {}) {
    if (!CASINO_EVENTS.includes(type)) throw new TypeError(`${type} is not a casino answer`);
    const target = this.frame && "contentWindow" in this.frame ? this.frame.contentWindow : this.frame;
    if (!target) throw new Error("CasinoBridge has no game frame to answer");
    const message = { ...fields, source: CASINO, timestamp: new Date().toISOString(), type };
    target.postMessage(message, this.gameOrigin);
    this._emit("sent", message);
    return message;
  }

  _reject(event, reason) {
    const entry = { origin: event.origin, reason, type: plain(event.data) ? event.data.type : undefined };
    this.rejected.push(entry);
    if (this.rejected.length > 100) this.rejected.shift();
    console.warn(`Croupier CasinoBridge ignored a message (${reason}) from ${event.origin}`);
    if (this.onRejected) this.onRejected(entry);
    this._emit("rejected", entry);
  }

  _receive(event) {
    if (event.origin !== this.gameOrigin) return this._reject(event, "origin");
    const data = event.data;
    if (!plain(data) || data.source !== GAME) return this._reject(event, "source");
    if (!GAME_EVENTS.includes(data.type)) return this._reject(event, "type");
    if (!isId(data.tournamentId) || (data.playerId !== undefined && !isId(data.playerId))) {
      return this._reject(event, "invalid");
    }
    if (data.type === "rebuy.requested") {
      const amount = data.rebuyAmount;
      if (!isId(data.playerId) || !isId(data.requestId)
        || (amount !== undefined && !(Number.isFinite(amount) && amount >= 0))) {
        return this._reject(event, "invalid");
      }
    }
    this._emit(data.type, data);
    this._emit("*", data);
    if (data.type === "rebuy.requested") this._rebuy(data);
  }

  async _rebuy(data) {
    const request = {
      tournamentId: data.tournamentId,
      playerId: data.playerId,
      requestId: data.requestId,
      rebuyAmount: data.rebuyAmount,
    };
    const ids = { tournamentId: request.tournamentId, playerId: request.playerId,
      requestId: request.requestId };
    let answer;
    try {
      if (this.approve && !(await this.approve(request))) {
        answer = { rebuyProcessed: false, error: "declined by the player" };
      } else if (this.confirmRebuy) {
        answer = await this.confirmRebuy(request);
      } else if (this.rebuyUrl) {
        const response = await fetch(this.rebuyUrl, {
          method: "POST",
          credentials: "same-origin",
          headers: { "Content-Type": "application/json", ...this.rebuyHeaders },
          body: JSON.stringify(request),
        });
        answer = await response.json().catch(() => ({}));
        if (!response.ok && !answer.error) answer.error = `the casino answered ${response.status}`;
      } else {
        answer = { rebuyProcessed: false, error: "this casino page does not take rebuys" };
      }
    } catch (error) {
      answer = { rebuyProcessed: false, error: "the rebuy could not be processed" };
      this._emit("error", { request, error: String(error) });
    }
    if (answer && answer.rebuyProcessed === true) {
      const fields = { ...ids, newEntryCount: answer.newEntryCount,
        remainingRebuys: answer.remainingRebuys };
      if (answer.newBalance !== undefined) fields.newBalance = answer.newBalance;
      this.sendToGame("rebuy.success", fields);
    } else {
      this.sendToGame("rebuy.failed", { ...ids, error: String(answer?.error ?? "rebuy declined") });
    }
  }
}

export { VERSION };
