// The operator console: every live panel is a Croupier SDK subscription; node figures and
// channel lists come from the admin HTTP API.
import { Client } from "/sdk/croupier.js";
import { $, Inspectors, age, el } from "/console/inspect.js";

const KEY = "croupier.apiKey";
const POLL_MS = 2000;
const console_ = {
  key: null, paths: new Set(), ops: null, player: null, subs: {}, timer: null, timers: {},
};
window.croupierConsole = console_; // for tests and the curious

function row(cells) {
  const tr = el("tr");
  for (const cell of cells) tr.append(el("td", cell));
  return tr;
}

function fmt(n) {
  return typeof n === "number" ? (Number.isInteger(n) ? n.toLocaleString("en") : n.toFixed(1)) : "—";
}

async function api(path, init = {}) {
  const response = await fetch(path, {
    ...init,
    headers: { Authorization: `Bearer ${console_.key}`, "Content-Type": "application/json",
      ...(init.headers || {}) },
  });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = new Error(body.error?.message || `HTTP ${response.status}`);
    error.status = response.status;
    throw error;
  }
  return body;
}

async function mintToken(sub, brand, name) {
  const body = { sub, name, ttl: 3600 };
  if (brand) body.brand = brand;
  return (await api("/api/v1/tokens", { method: "POST", body: JSON.stringify(body) })).token;
}

// -- signing in ------------------------------------------------------------------------------

async function start() {
  const config = await fetch("/console/config.json").then((r) => r.json()).catch(() => ({}));
  if (config.demo) $("demo").hidden = false;
  const key = (config.demo && config.apiKey) || sessionStorage.getItem(KEY);
  $("signin").addEventListener("submit", (e) => {
    e.preventDefault();
    signIn($("key").value.trim());
  });
  $("signout").addEventListener("click", signOut);
  if (key) signIn(key);
  else $("signin").hidden = false;
}

async function signIn(key) {
  console_.key = key;
  $("signin-error").textContent = "";
  try {
    await api("/api/v1/stats");
  } catch (error) {
    console_.key = null;
    $("signin").hidden = false;
    $("signin-error").textContent = error.status === 401 || error.status === 403
      ? "this key is not an admin key" : error.message;
    return;
  }
  sessionStorage.setItem(KEY, key);
  $("signin").hidden = true;
  $("signout").hidden = false;
  const doc = await fetch("/api/v1/openapi.json").then((r) => r.json()).catch(() => ({}));
  console_.paths = new Set(Object.keys(doc.paths || {}));
  console_.inspectors = new Inspectors(api, () => console_.key, console_.paths);
  console_.inspectors.start();
  await connectOps();
  poll();
  console_.timer = setInterval(poll, POLL_MS);
  await Promise.all([watchTournament(), watchMatch(), watchPlayer()]);
}

function signOut() {
  sessionStorage.removeItem(KEY);
  clearInterval(console_.timer);
  console_.ops?.close();
  console_.player?.close();
  location.reload();
}

async function connectOps() {
  const refresh = () => mintToken("console-operator", null, "Operator");
  const client = new Client({ token: await refresh(), refreshToken: refresh });
  console_.ops = client;
  client.on("state", ({ state, transport }) => {
    $("state").textContent = state;
    $("state").dataset.state = state;
    $("transport").textContent = transport || client.transport || "";
  });
  client.connect();
}

// -- nodes, rates, channels ------------------------------------------------------------------

async function poll() {
  try {
    const [stats, channels] = await Promise.all([
      api("/api/v1/stats"), api("/api/v1/channels?limit=50"),
    ]);
    renderNodes(stats);
    drawRates(stats.nodes);
    renderChannels(channels.channels);
  } catch (error) {
    $("state").title = `polling failed: ${error.message}`;
  }
}

function renderNodes(stats) {
  $("total-connections").textContent = fmt(stats.connections);
  $("total-subscriptions").textContent = fmt(stats.subscriptions);
  $("total-published").textContent = fmt(stats.publishedPerSecond);
  $("total-delivered").textContent = fmt(stats.deliveredPerSecond);
  $("nodes").replaceChildren(...stats.nodes.map((n) => row([
    n.id + (n.id === stats.node ? " ★" : ""), n.address, n.version, age(n.startedAt),
    fmt(n.connections), fmt(n.subscriptions), fmt(n.channels), fmt(n.publishedPerSecond),
    fmt(n.deliveredPerSecond), megabytes(n.rss), `${fmt(n.cpu)}%`, `${fmt(n.loopLagMs)} ms`,
  ])));
}

function megabytes(bytes) {
  return typeof bytes === "number" ? `${(bytes / 1048576).toFixed(0)} MB` : "—";
}

function drawRates(nodes) {
  // Sum the nodes' series second by second and draw both rates over the last two minutes.
  const byTime = new Map();
  for (const node of nodes) {
    for (const s of node.series) {
      const t = Math.round(s.t / 1000);
      const sum = byTime.get(t) || { published: 0, delivered: 0 };
      sum.published += s.published;
      sum.delivered += s.delivered;
      byTime.set(t, sum);
    }
  }
  const canvas = $("rates");
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth || canvas.width;
  const height = canvas.clientHeight || canvas.height;
  canvas.width = width * ratio;
  canvas.height = height * ratio;
  const g = canvas.getContext("2d");
  g.scale(ratio, ratio);
  g.clearRect(0, 0, width, height);
  const now = Math.round(Date.now() / 1000);
  const span = 120;
  const points = [...byTime.entries()].filter(([t]) => t > now - span).sort((a, b) => a[0] - b[0]);
  const top = Math.max(1, ...points.map(([, s]) => Math.max(s.published, s.delivered)));
  const scale = niceCeil(top);
  const left = 44, right = 8, upper = 10, lower = 20;
  const w = width - left - right, h = height - upper - lower;
  g.font = "11px system-ui, sans-serif";
  g.fillStyle = "#8a96a3";
  g.strokeStyle = "#2b3540";
  g.lineWidth = 1;
  for (let i = 0; i <= 4; i++) {
    const y = upper + h - (h * i) / 4;
    g.beginPath();
    g.moveTo(left, y);
    g.lineTo(left + w, y);
    g.stroke();
    g.fillText(fmt((scale * i) / 4), 4, y + 4);
  }
  g.fillText(`-${span}s`, left, height - 4);
  g.fillText("now", left + w - 22, height - 4);
  const x = (t) => left + (w * (t - (now - span))) / span;
  const y = (v) => upper + h - (h * v) / scale;
  for (const [field, colour] of [["published", "#4fc3f7"], ["delivered", "#ffb74d"]]) {
    g.strokeStyle = colour;
    g.lineWidth = 2;
    g.beginPath();
    points.forEach(([t, s], i) => (i ? g.lineTo(x(t), y(s[field])) : g.moveTo(x(t), y(s[field]))));
    g.stroke();
  }
  canvas.dataset.points = String(points.length);
}

function niceCeil(value) {
  const power = Math.pow(10, Math.floor(Math.log10(value)));
  for (const step of [1, 2, 5, 10]) if (value <= step * power) return step * power;
  return 10 * power;
}

function renderChannels(channels) {
  const sorted = [...channels].sort((a, b) => b.subscribers - a.subscribers || b.offset - a.offset);
  $("channels").replaceChildren(...sorted.slice(0, 25).map((c) => row([
    c.channel, fmt(c.offset), fmt(c.subscribers),
  ])));
}

// -- a tournament's leaderboard ---------------------------------------------------------------

function follow(client, name, channel) {
  console_.subs[name]?.unsubscribe();
  const sub = client.subscribe(channel);
  console_.subs[name] = sub;
  live(sub, `${name}-panel`);
  return sub;
}

function live(sub, panel) {
  // The panel says when its channel is live (and dims while it is not).
  $(panel).dataset.live = "";
  sub.on("subscribed", () => ($(panel).dataset.live = sub.channel));
}

watchTournament.known = () => tournaments();

async function tournaments() {
  // Known tournaments, newest first (none without the service). Asking only about these
  // keeps the browser from logging a 404 for a made-up id.
  if (!console_.paths.has("/api/v1/tournaments")) return [];
  const list = await api("/api/v1/tournaments?limit=100").catch(() => null);
  return (list && list.tournaments) || [];
}

// A panel whose id the operator has not typed follows what is live: when its tournament or
// match ends, or while none is live, it checks every few seconds and moves to the newest.
const AUTO_MS = 3000;

function autoFollow(name, input, pick, watch) {
  clearTimeout(console_.timers[name]);
  if (input.dataset.typed) return;
  console_.timers[name] = setTimeout(async () => {
    const next = pick(await watch.known());
    if (next && next !== input.value.trim()) watch();
    else autoFollow(name, input, pick, watch);
  }, AUTO_MS);
}

function pickTournament(known) {
  const live = ["running", "registering", "scheduled"];
  const found = live.map((s) => known.find((t) => t.status === s)).find(Boolean) || known[0];
  return found ? found.id : null;
}

async function watchTournament() {
  const input = $("tournament-id");
  const known = await tournaments();
  if (!input.dataset.typed) input.value = pickTournament(known) || input.value || "demo";
  input.onchange = () => {
    input.dataset.typed = "yes";
    watchTournament();
  };
  const id = input.value.trim();
  const current = known.find((t) => t.id === id);
  const followNext = () => autoFollow("tournament", input, pickTournament, watchTournament);
  if (!current || !["running", "registering", "scheduled"].includes(current.status)) followNext();
  else clearTimeout(console_.timers.tournament);
  const board = new Map();
  const load = async () => {
    // The standings so far, for a tournament the service knows; events keep them current.
    if (!known.some((t) => t.id === id)) return;
    const page = await api(`/api/v1/tournaments/${encodeURIComponent(id)}/players?limit=10`)
      .catch(() => null);
    for (const p of (page && page.players) || []) board.set(p.playerId, { ...p });
    render();
    const t = known.find((k) => k.id === id);
    status(`${t.status} · ${t.playerCount ?? board.size} players`);
  };
  const render = () => {
    const rows = [...board.values()].sort((a, b) => (a.position ?? 1e9) - (b.position ?? 1e9)
      || b.score - a.score).slice(0, 10);
    $("leaderboard").replaceChildren(...rows.map((r, i) => row([
      r.position ?? i + 1, r.displayName || r.playerId, fmt(r.score),
    ])));
  };
  render();
  const status = (text) => ($("tournament-status").textContent = text);
  status(`tournament:${id}`);
  const sub = follow(console_.ops, "tournament", `tournament:${id}`);
  sub.on("subscribed", (s) => s.resumed || load());
  sub.on("leaderboard.updated", (data) => {
    board.clear();
    for (const entry of data.leaderboard || []) board.set(entry.playerId, { ...entry });
    render();
  });
  sub.on("player.score.updated", (data) => {
    board.set(data.playerId, { ...board.get(data.playerId), ...data });
    // Positions of the others may have moved: rank by score until the next full board.
    const ranked = [...board.values()].sort((a, b) => b.score - a.score);
    ranked.forEach((entry, i) => (entry.position = i + 1));
    render();
  });
  sub.on("tournament.started", (d) => status(`running · ${d.playerCount} players · round 1/${d.totalRounds}`));
  sub.on("round.started", (d) => status(`running · round ${d.round}/${d.totalRounds}`));
  sub.on("tournament.completed", (d) => {
    const winners = (d.winners || []).slice(0, 3)
      .map((w) => `${w.position}. ${w.displayName || w.playerId} ${fmt(w.prizeAmount)}`);
    status(`completed${winners.length ? " · " + winners.join(" · ") : ""}`);
    followNext();
  });
  sub.on("tournament.cancelled", () => {
    status("cancelled");
    followNext();
  });
  sub.on("reset", () => {
    board.clear();
    render();
    load();
  });
}

// -- a match: score, reactions, viewers --------------------------------------------------------

watchMatch.known = () => sportingEvents();

async function sportingEvents() {
  if (!console_.paths.has("/api/v1/sports/events")) return [];
  const list = await api("/api/v1/sports/events").catch(() => null);
  const events = list && (Array.isArray(list) ? list : list.events || list.items || []);
  return (events || []).map((e) => ({ ...e, eventId: e.eventId ?? e.id }));
}

function hasPath(pattern) {
  return [...console_.paths].some((path) => pattern.test(path));
}

function pickMatch(known) {
  const found = known.find((e) => e.status === "live") || known[0];
  return found && found.eventId ? found.eventId : null;
}

async function watchMatch() {
  const input = $("match-id");
  const known = await sportingEvents();
  if (!input.dataset.typed) input.value = pickMatch(known) || input.value || "demo";
  input.onchange = () => {
    input.dataset.typed = "yes";
    watchMatch();
  };
  const id = input.value.trim();
  const followNext = () => autoFollow("match", input, pickMatch, watchMatch);
  if (known.find((e) => e.eventId === id)?.status !== "live") followNext();
  else clearTimeout(console_.timers.match);
  const load = async () => {
    // The scoreboard and audience so far, for an event the sports service knows.
    if (!known.some((e) => e.eventId === id)) return;
    const base = `/api/v1/sports/events/${encodeURIComponent(id)}`;
    if (hasPath(/^\/api\/v1\/sports\/events\/\{[^}]+\}\/snapshot$/)) {
      const snap = await api(`${base}/snapshot`).catch(() => null);
      if (snap) renderScoreboard(snap.snapshot ?? snap.scoreboard ?? snap);
    }
    if (hasPath(/^\/api\/v1\/sports\/events\/\{[^}]+\}\/viewers$/)) {
      const audience = await api(`${base}/viewers`).catch(() => null);
      if (audience) {
        $("viewers").textContent = fmt(audience.viewers);
        $("viewers-peak").textContent = fmt(audience.peak);
      }
    }
  };
  $("scoreboard").replaceChildren();
  $("match-updates").replaceChildren();
  $("reactions").replaceChildren();
  $("reaction-samples").replaceChildren();
  const sub = follow(console_.ops, "match", `match:${id}`);
  sub.on("subscribed", (s) => s.resumed || load());
  sub.on("reset", () => load());
  const addUpdate = (text) => {
    const list = $("match-updates");
    list.prepend(el("li", text, { class: "flash" }));
    while (list.children.length > 8) list.lastChild.remove();
  };
  sub.on("score.updated", (data) => {
    renderScoreboard(data.snapshot);
    addUpdate(`#${data.seq} ${summary(data.update)}`);
  });
  sub.on("sport.event.updated", (data) => {
    addUpdate(`status: ${data.status ?? summary(data)}`);
    if (data.status === "finished") followNext();
  });
  sub.on("score.update", (data) => addUpdate(summary(data))); // the older demo's shape
  sub.on("reactions.summary", (data) => {
    $("reactions").replaceChildren(...Object.entries(data.counts || {})
      .sort((a, b) => b[1] - a[1]).map(([emoji, n]) => el("span", `${emoji} ${n}  `)));
    $("reactions").dataset.total = String(data.total ?? 0);
    $("reaction-samples").replaceChildren(...(data.samples || []).slice(0, 5).map((s) =>
      el("li", `${s.emoji}${s.comment ? " " + s.comment : ""}`)));
  });
  sub.on("viewers.count", (data) => {
    $("viewers").textContent = fmt(data.viewers);
    $("viewers-peak").textContent = fmt(data.peak);
  });
  for (const button of document.querySelectorAll("[data-emoji]")) {
    button.onclick = () => console_.ops.publish(`match:${id}`, "reaction",
      { emoji: button.dataset.emoji }).catch((e) => ($("match-id").title = e.message));
  }
}

function summary(value) {
  if (value === null || typeof value !== "object") return String(value);
  return Object.entries(value).filter(([, v]) => typeof v !== "object" || v === null)
    .slice(0, 6).map(([k, v]) => `${k} ${v}`).join(" · ");
}

function renderScoreboard(snapshot) {
  if (!snapshot || typeof snapshot !== "object") return;
  $("scoreboard").replaceChildren(...Object.entries(snapshot)
    .filter(([, v]) => typeof v !== "object" || v === null).slice(0, 12)
    .map(([k, v]) => {
      const span = el("span");
      span.append(el("b", k), document.createTextNode(String(v)));
      return span;
    }));
}

// -- a player's notification centre -----------------------------------------------------------

async function watchPlayer() {
  const brand = $("player-brand").value.trim();
  const player = $("player-id").value.trim();
  $("player-brand").onchange = $("player-id").onchange = () => watchPlayer();
  console_.player?.close();
  const list = $("notifications");
  list.replaceChildren();
  if (!brand || !player) return;
  const base = `/api/v1/players/${encodeURIComponent(brand)}/${encodeURIComponent(player)}`;
  const show = (n, atTop) => {
    const item = el("li", `${n.event} · ${n.time ?? ""}`, n.is_read ? {} : { class: "unread" });
    item.dataset.messageId = n.message_id;
    if (atTop) list.prepend(item);
    else list.append(item);
    while (list.children.length > 20) list.lastChild.remove();
  };
  const reload = async () => {
    const [page, unread] = await Promise.all([
      api(`${base}/notifications?limit=20`), api(`${base}/notifications/unread-count`),
    ]).catch(() => [null, null]);
    list.replaceChildren();
    for (const n of page?.notifications || []) show(n, false);
    $("unread").textContent = fmt(unread?.unread ?? 0);
    if (hasPath(/^\/api\/v1\/players\/\{[^}]+\}\/\{[^}]+\}\/coins$/)) {
      const coins = await api(`${base}/coins`).catch(() => null); // the balance so far
      if (coins) $("coins").textContent = fmt(coins.balance);
    }
  };
  const refresh = () => mintToken(player, brand, player);
  const client = new Client({ token: await refresh(), refreshToken: refresh });
  console_.player = client;
  const sub = client.subscribe(`player:${brand}:${player}`);
  live(sub, "player-panel");
  sub.on("subscribed", () => reload());
  sub.on("reset", () => reload());
  sub.on("notification", (data) => {
    if (list.querySelector(`[data-message-id="${CSS.escape(String(data.message_id))}"]`)) return;
    show(data, true);
    $("unread").textContent = fmt(Number($("unread").textContent.replace(/,/g, "")) + 1);
  });
  sub.on("gamification_balance_update", (data) => ($("coins").textContent = fmt(data.balance)));
  sub.on("wallet_balance_update", (data) => {
    $("wallet").textContent = `${data.balance ?? "—"} ${data.currency ?? ""}`;
  });
  $("mark-read").onclick = async () => {
    await api(`${base}/notifications/read`, { method: "POST", body: JSON.stringify({ all: true }) })
      .catch(() => null);
    reload();
  };
  client.connect();
}

start();
