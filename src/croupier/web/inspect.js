// The console's debugging views: the live log, the channel and connection inspectors and
// the webhooks page. Each stands on the admin HTTP API (see /api/v1/openapi.json); the key
// travels in the Authorization header, never in a cookie.

export const $ = (id) => document.getElementById(id);
const LOG_KEEP = 1000; // records the browser keeps; older ones fall off
const LOG_SHOW = 300; // rows shown at once
const HISTORY_PAGE = 20;

export function el(tag, text, attrs = {}) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  return node;
}

function cells(values) {
  const tr = el("tr");
  for (const value of values) {
    tr.append(value instanceof Node ? wrap(value) : el("td", value ?? "—"));
  }
  return tr;
}

function wrap(node) {
  const td = el("td");
  td.append(node);
  return td;
}

function button(text, onclick, attrs = {}) {
  const b = el("button", text, { type: "button", ...attrs });
  b.addEventListener("click", onclick);
  return b;
}

function clock(ms) {
  return new Date(ms).toISOString().slice(11, 23);
}

export function age(ms) {
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  return s < 120 ? `${s}s` : s < 7200 ? `${Math.round(s / 60)}m` : `${Math.round(s / 3600)}h`;
}

const enc = encodeURIComponent;

export class Inspectors {
  /** @param api (path, init) => Promise<json>; @param key () => the admin key */
  constructor(api, key, paths) {
    this.api = api;
    this.key = key;
    this.paths = paths;
    this.log = { records: [], paused: false, unseen: 0, abort: null, started: false, hello: null };
    this.channels = { next: null, query: "", current: null, since: 0 };
    this.webhook = null;
  }

  start() {
    for (const b of document.querySelectorAll("#views button")) {
      b.addEventListener("click", () => this.show(b.dataset.view));
    }
    $("views").hidden = false;
    if (!this.paths.has("/api/v1/webhooks")) {
      document.querySelector('#views [data-view="webhooks"]').hidden = true;
    }
    this.wireLog();
    this.wireChannels();
    this.wireConnections();
    $("redeliver-all").addEventListener("click", () => this.redeliverAll());
  }

  show(view) {
    for (const main of document.querySelectorAll("main.view")) {
      main.hidden = main.dataset.view !== view;
    }
    for (const b of document.querySelectorAll("#views button")) {
      if (b.dataset.view === view) b.setAttribute("aria-current", "page");
      else b.removeAttribute("aria-current");
    }
    document.body.dataset.view = view;
    if (view === "log" && !this.log.started) this.streamLog();
    if (view === "channels" && !$("channel-list").children.length) this.searchChannels();
    if (view === "webhooks") this.loadWebhooks();
  }

  // -- the live log -------------------------------------------------------------------------

  wireLog() {
    const kinds = ["connection.opened", "authenticated", "connection.closed",
      "connection.refused", "subscribed",
      "subscribe.refused", "resumed", "published", "slow_consumer", "idle_timeout",
      "auth.failed", "rate_limited", "disconnect.requested", "webhook.delivered",
      "webhook.failed", "log.behind"];
    $("log-kind").append(...kinds.map((k) => el("option", k, { value: k })));
    for (const id of ["log-kind", "log-channel", "log-player", "log-node"]) {
      $(id).addEventListener("input", () => this.renderLog());
    }
    $("log-filters").addEventListener("submit", (e) => e.preventDefault());
    $("log-pause").addEventListener("click", () => {
      this.log.paused = !this.log.paused;
      $("log-pause").textContent = this.log.paused ? "Resume" : "Pause";
      if (!this.log.paused) {
        this.log.unseen = 0;
        this.renderLog();
      }
      this.logStatus();
    });
    $("log-clear").addEventListener("click", () => {
      this.log.records = [];
      this.renderLog();
    });
  }

  async streamLog() {
    this.log.started = true;
    let delay = 500;
    for (;;) {
      const abort = new AbortController();
      this.log.abort = abort;
      try {
        const response = await fetch("/api/v1/admin/log", {
          headers: { Authorization: `Bearer ${this.key()}`, Accept: "text/event-stream" },
          signal: abort.signal,
          cache: "no-store",
        });
        if (!response.ok) throw new Error(`HTTP ${response.status}`);
        document.body.dataset.log = "live";
        delay = 500;
        await this.readLog(response.body);
      } catch (error) {
        if (abort.signal.aborted) return;
        $("log-status").textContent = `log stream lost (${error.message}); reconnecting`;
      }
      document.body.dataset.log = "reconnecting";
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 10000);
    }
  }

  async readLog(body) {
    const reader = body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        let kind = "message";
        let data = "";
        for (const line of block.split("\n")) {
          if (line.startsWith("event:")) kind = line.slice(6).trim();
          else if (line.startsWith("data:")) data += line.slice(5).trim();
        }
        if (!data) continue;
        const doc = JSON.parse(data);
        if (kind === "hello") this.hello(doc);
        else this.record(doc);
      }
    }
  }

  hello(doc) {
    this.log.hello = doc;
    $("log-sampling").textContent = `Sampled: each node records at most ${doc.rate} records/s ` +
      `(bursts of ${doc.burst}); a record says how many the cap skipped before it. ` +
      `This page keeps the last ${LOG_KEEP}. Recording costs the server only while a console ` +
      `watches.`;
  }

  record(doc) {
    const records = this.log.records;
    records.push(doc);
    if (records.length > LOG_KEEP) records.splice(0, records.length - LOG_KEEP);
    if (this.log.paused) {
      this.log.unseen += 1;
      this.logStatus();
      return;
    }
    if (!this.log.frame) {
      // A timer, not an animation frame: those stop while the tab is in the background.
      this.log.frame = setTimeout(() => {
        this.log.frame = null;
        this.renderLog();
      }, 100);
    }
  }

  logStatus() {
    const { paused, unseen, records } = this.log;
    $("log-status").textContent = paused
      ? `paused · ${unseen} new records not shown`
      : `${records.length} records kept`;
  }

  renderLog() {
    if (this.log.paused) return;
    const kind = $("log-kind").value;
    const channel = $("log-channel").value.trim();
    const player = $("log-player").value.trim();
    const node = $("log-node").value.trim();
    const shown = [];
    for (let i = this.log.records.length - 1; i >= 0 && shown.length < LOG_SHOW; i--) {
      const r = this.log.records[i];
      if (kind && r.kind !== kind) continue;
      if (channel && !String(r.channel ?? "").startsWith(channel)) continue;
      if (player && r.player !== player) continue;
      if (node && r.node !== node) continue;
      shown.push(r);
    }
    $("log-rows").replaceChildren(...shown.map((r) => {
      const { t, node: n, kind: k, channel: c, player: p, ...rest } = r;
      const detail = Object.entries(rest).filter(([, v]) => v !== null && v !== undefined)
        .map(([name, v]) => `${name}=${typeof v === "object" ? JSON.stringify(v) : v}`).join(" ");
      const row = cells([clock(t), n, k, c, p, detail]);
      row.dataset.kind = k;
      if (/refused|failed|slow|idle|rate_limited|behind/.test(k)) row.className = "warn";
      return row;
    }));
    this.logStatus();
  }

  // -- channels -----------------------------------------------------------------------------

  wireChannels() {
    $("channel-search").addEventListener("submit", (e) => {
      e.preventDefault();
      this.searchChannels();
    });
    $("channel-more").addEventListener("click", () => this.searchChannels(true));
    $("history-form").addEventListener("submit", (e) => {
      e.preventDefault();
      this.loadHistory(Number($("history-since").value) || 0);
    });
    $("history-older").addEventListener("click", () =>
      this.loadHistory(Math.max(0, this.channels.since - HISTORY_PAGE)));
    $("history-newer").addEventListener("click", () =>
      this.loadHistory(this.channels.last ?? this.channels.since));
    $("publish-form").addEventListener("submit", (e) => {
      e.preventDefault();
      this.publishTest();
    });
  }

  async searchChannels(more = false) {
    const state = this.channels;
    if (!more) {
      state.query = $("channel-query").value.trim();
      state.next = null;
      $("channel-list").replaceChildren();
    }
    const params = new URLSearchParams({ limit: "50" });
    if (state.query) params.set("contains", state.query);
    if (more && state.next) params.set("after", state.next);
    const page = await this.api(`/api/v1/admin/channels?${params}`);
    state.next = page.next;
    $("channel-more").hidden = !page.next;
    $("channel-list").append(...page.channels.map((c) => {
      const link = button(c.channel, () => this.openChannel(c.channel), { class: "link" });
      const row = cells([link, c.offset, c.subscribers]);
      row.dataset.channel = c.channel;
      return row;
    }));
  }

  async openChannel(name) {
    const d = await this.api(`/api/v1/admin/channels/${enc(name)}`);
    this.channels.current = d.channel;
    $("channel-detail").hidden = false;
    $("channel-detail").dataset.channel = d.channel;
    $("channel-name").textContent = d.channel;
    const r = d.rules;
    $("channel-summary").textContent = `offset ${d.position.offset} · epoch ${d.position.epoch} · ` +
      `first kept ${d.first} · keeps ${r.history_size} events / ${Math.round(r.history_ttl / 3600)} h · ` +
      `subscribe: ${r.subscribe}`;
    $("channel-nodes").textContent = "subscribers: " +
      (d.nodes.map((n) => `${n.node} ${n.subscribers}`).join(" · ") || "none");
    $("channel-presence").textContent = r.presence
      ? `presence: ${d.presence.count}` + (d.presence.members.length ? " — " +
        d.presence.members.map((m) => m.name || m.id || m.client).join(", ") : "")
      : "presence: off for this namespace";
    const since = Math.max(0, d.position.offset - HISTORY_PAGE);
    await this.loadHistory(since);
  }

  async loadHistory(since) {
    const name = this.channels.current;
    if (!name) return;
    const page = await this.api(
      `/api/v1/admin/channels/${enc(name)}/history?since=${since}&limit=${HISTORY_PAGE}`);
    this.channels.since = since;
    this.channels.last = page.events.length ? page.events[page.events.length - 1].offset : since;
    $("history-since").value = String(since);
    $("history-rows").replaceChildren(...page.events.map((e) => {
      const row = cells([e.offset, e.type, e.ts, JSON.stringify(e.data)]);
      row.dataset.offset = String(e.offset);
      return row;
    }));
    if (!page.complete) {
      $("history-rows").prepend(cells([`events after ${since} up to ${page.first - 1} ` +
        "are no longer kept", "", "", ""]));
    }
  }

  async publishTest() {
    const name = this.channels.current;
    let data;
    try {
      data = JSON.parse($("publish-data").value || "null");
    } catch (error) {
      $("publish-result").textContent = `data is not JSON: ${error.message}`;
      return;
    }
    try {
      const body = { type: $("publish-type").value.trim(), data,
        ephemeral: $("publish-ephemeral").checked };
      const r = await this.api(`/api/v1/admin/channels/${enc(name)}/publish`,
        { method: "POST", body: JSON.stringify(body) });
      $("publish-result").textContent = r.offset ? `stored at offset ${r.offset}` : "sent (not stored)";
      if (r.offset) await this.loadHistory(Math.max(0, r.offset - HISTORY_PAGE));
    } catch (error) {
      $("publish-result").textContent = error.message;
    }
  }

  // -- connections --------------------------------------------------------------------------

  wireConnections() {
    $("connection-search").addEventListener("submit", (e) => {
      e.preventDefault();
      this.findConnections();
    });
    $("disconnect-all").addEventListener("click", () => this.disconnectAll());
  }

  reason() {
    return { reason: $("disconnect-reason").value.trim() || "operator",
      reconnect: $("disconnect-reconnect").checked };
  }

  async findConnections() {
    const player = $("connection-player").value.trim();
    const brand = $("connection-brand").value.trim();
    const params = new URLSearchParams({ player });
    if (brand) params.set("brand", brand);
    const found = await this.api(`/api/v1/admin/connections?${params}`);
    const n = found.connections.length;
    $("connection-status").textContent = `${n} connection${n === 1 ? "" : "s"} on ` +
      `${found.nodes.length} node${found.nodes.length === 1 ? "" : "s"} that answered`;
    $("connection-rows").replaceChildren(...found.connections.map((c) => {
      const subs = c.subscriptions.map((s) =>
        s.position ? `${s.channel} @${s.position.offset}` : s.channel).join(", ");
      const out = `${c.outbox} B · ${c.outbox_messages}/${c.outbox_limits.messages} msgs`;
      const end = button("Disconnect", () => this.disconnect(c.id), { class: "danger" });
      const row = cells([c.id, c.node, `${c.transport} (${c.protocol})`,
        c.brand ? `${c.brand}/${c.player}` : c.player, age(c.created), subs, out,
        `${age(c.last_activity)} ago`, end]);
      row.dataset.client = c.id;
      return row;
    }));
  }

  async disconnect(client) {
    const r = await this.api(`/api/v1/admin/connections/${enc(client)}/disconnect`,
      { method: "POST", body: JSON.stringify(this.reason()) });
    $("connection-status").textContent = `disconnected ${r.disconnected}`;
    await this.findConnections();
  }

  async disconnectAll() {
    const player = $("connection-player").value.trim();
    if (!player) return;
    const body = this.reason();
    const brand = $("connection-brand").value.trim();
    if (brand) body.brand = brand;
    const r = await this.api(`/api/v1/admin/players/${enc(player)}/disconnect`,
      { method: "POST", body: JSON.stringify(body) });
    await this.findConnections();
    $("connection-status").textContent = `disconnected ${r.disconnected}`;
  }

  // -- webhooks -----------------------------------------------------------------------------

  async loadWebhooks() {
    if (!this.paths.has("/api/v1/webhooks")) return;
    const list = await this.api("/api/v1/webhooks?limit=100");
    $("webhook-rows").replaceChildren(...list.webhooks.map((w) => {
      const link = button(w.id, () => this.openWebhook(w), { class: "link" });
      const row = cells([link, shownUrl(w.url), w.event_types.join(", "),
        w.active ? "yes" : "no", w.description]);
      row.dataset.endpoint = w.id;
      return row;
    }));
    if (this.webhook) await this.openWebhook(this.webhook);
  }

  async openWebhook(endpoint) {
    this.webhook = endpoint;
    $("webhook-detail").hidden = false;
    $("webhook-name").textContent = `${endpoint.id} · ${shownUrl(endpoint.url)}`;
    const base = `/api/v1/webhooks/${enc(endpoint.id)}/deliveries`;
    const [pending, dead] = await Promise.all([
      this.api(`${base}?status=pending&limit=50`), this.api(`${base}?status=dead&limit=50`),
    ]);
    $("pending-rows").replaceChildren(...pending.deliveries.map((d) => cells([
      d.id, d.type, d.channel, d.attempts, clock(d.next_at * 1000), d.last_error,
    ])));
    $("dead-rows").replaceChildren(...dead.deliveries.map((d) => {
      const again = button("Redeliver", () => this.redeliver(d.id));
      const row = cells([d.id, d.type, d.channel, d.attempts, d.last_error, again]);
      row.dataset.delivery = d.id;
      return row;
    }));
  }

  async redeliver(delivery) {
    const endpoint = this.webhook;
    const r = await this.api(
      `/api/v1/webhooks/${enc(endpoint.id)}/deliveries/${enc(delivery)}/redeliver`,
      { method: "POST", body: "{}" });
    $("webhook-status").textContent = `redelivered ${r.redelivered}`;
    await this.openWebhook(endpoint);
  }

  async redeliverAll() {
    const endpoint = this.webhook;
    if (!endpoint) return;
    const r = await this.api(`/api/v1/webhooks/${enc(endpoint.id)}/redeliver`,
      { method: "POST", body: "{}" });
    $("webhook-status").textContent = `redelivered ${r.redelivered}`;
    await this.openWebhook(endpoint);
  }
}

function shownUrl(url) {
  // Credentials and the query string may hold secrets: show where it goes, not how.
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}${u.pathname}${u.search ? "?…" : ""}`;
  } catch {
    return "(unparsable URL)";
  }
}
