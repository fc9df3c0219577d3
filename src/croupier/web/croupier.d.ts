// Types of the Croupier browser SDK (/sdk/croupier.js), for TypeScript pages. Save this
// file as croupier.d.ts beside croupier.js (vendored, or a path your bundler maps to the
// server's /sdk/croupier.js); `import { Client } from "./croupier.js"` then has types.

/** The SDK's version (the same as `client.version`). */
export declare const VERSION: string;

/** A channel's stream position: the last stored offset and the channel's epoch. */
export interface Position {
  offset: number;
  epoch: string;
}

/** An event as the server delivers it (stored ones carry `offset` and `epoch`). */
export interface CroupierEvent<T = unknown> {
  type: string;
  channel: string;
  data: T;
  ts?: string;
  offset?: number;
  epoch?: string;
}

/** Why something failed: the server's stable `code` and a message for people. */
export interface CroupierErrorInfo {
  code: string;
  message: string;
}

/** The server ended the connection: `code` is the reason (`slow_consumer`, `operator` …). */
export interface DisconnectMessage {
  type: "disconnect";
  code: string;
  reconnect: boolean;
}

export type ConnectionState = "idle" | "connecting" | "connected" | "reconnecting" | "closed";
export type TransportName = "websocket" | "sse";

export interface StateChange {
  state: ConnectionState;
  previous: ConnectionState;
  transport: TransportName | null;
  /** On `reconnecting`: the attempt number and the delay before it (ms). */
  attempt?: number;
  delay?: number;
  [detail: string]: unknown;
}

export interface BackoffOptions {
  /** ms before the first reconnect (1000) */
  initial?: number;
  /** longest wait in ms (30000) */
  max?: number;
  /** growth per attempt (2) */
  factor?: number;
  /** share of the delay taken off at random, 0..1 (0.5) */
  jitter?: number;
}

export interface ClientOptions {
  /** The server (default: the page's origin). */
  url?: string;
  /** A player token, or none for public channels. */
  token?: string | null;
  /** Called before the token runs out and when the server says it has. */
  refreshToken?: (() => Promise<string> | string) | null;
  /** "auto" (WebSocket, falling back to SSE), "websocket" or "sse". */
  transport?: "auto" | TransportName;
  /** WebSocket attempts refused in a row before "auto" uses SSE (2). */
  fallbackAfter?: number;
  backoff?: BackoffOptions;
  /** ms between pings (default: what the server asks for). */
  pingInterval?: number | null;
  /** Messages kept while offline (100; the oldest is dropped first). */
  queueSize?: number;
  /** Times a message is sent again after a failed try (3). */
  retries?: number;
  /** A queued message given up. */
  onDrop?: ((message: OutgoingMessage, reason: string) => void) | null;
  /** ms of a silent event stream before reconnecting (45000). */
  sseIdleTimeout?: number;
  /**
   * On (re)connect, name the channels already followed, where each stands, and the token
   * in the WebSocket URL: one request instead of a connect and a message per channel
   * (true). False keeps the token out of URLs, at a message per channel.
   */
  subscribeInUrl?: boolean;
  /** For tests and other runtimes. */
  WebSocket?: typeof WebSocket;
  EventSource?: typeof EventSource;
}

/** What the client sends: a player publish, as queued. */
export interface OutgoingMessage {
  type: "publish";
  channel: string;
  event: string;
  data: unknown;
}

export interface SubscribedInfo {
  /** Every event after the position resumed from was replayed. */
  recovered: boolean;
  /** The subscription resumed from a position (after a reconnect). */
  resumed: boolean;
  position: Position | null;
  presence: { count: number } | null;
}

export interface ResetInfo {
  channel: string;
  recovered: false;
  position: Position | null;
}

type Handler<A extends unknown[]> = (...args: A) => void;

/** Events of one subscription: its lifecycle, then event types by name, or "*" for all. */
export interface SubscriptionEvents {
  subscribed: [info: SubscribedInfo];
  /** Events were missed and cannot be replayed: reload the state. */
  reset: [info: ResetInfo];
  /** The server refused the subscription. */
  error: [error: CroupierErrorInfo];
}

export declare class Subscription {
  readonly client: Client;
  readonly channel: string;
  /** The last stored event seen. */
  position: Position | null;
  /** False once unsubscribed or refused. */
  active: boolean;
  on<K extends keyof SubscriptionEvents>(type: K, handler: Handler<SubscriptionEvents[K]>): this;
  /** Events of `type` (e.g. "player.score.updated"), or "*" for every event. */
  on<T = any>(type: string, handler: (data: T, event: CroupierEvent<T>) => void): this;
  off(type: string, handler?: (...args: any[]) => void): this;
  /** Stop receiving this channel; the handlers are dropped. */
  unsubscribe(): void;
}

/** Events of the client as a whole. */
export interface ClientEvents {
  state: [change: StateChange];
  /** Every event of every subscription. */
  event: [event: CroupierEvent];
  /**
   * A token sent as a message was accepted (with its expiry, seconds since the epoch): a
   * refresh, or the first token of a connection whose URL named no channel.
   */
  authenticated: [message: { type: "authenticated"; exp?: number; [k: string]: unknown }];
  /** The server ended the connection and said why. */
  disconnect: [message: DisconnectMessage];
  error: [error: CroupierErrorInfo];
  /** "auto" gave up on WebSocket for now. */
  fallback: [info: { transport: "sse" }];
  /** A queued message was given up. */
  drop: [info: { message: OutgoingMessage; reason: string }];
}

export declare class Client {
  constructor(options?: ClientOptions);
  readonly url: string;
  readonly version: string;
  token: string | null;
  state: ConnectionState;
  /** The transport in use while connected. */
  transport: TransportName | null;
  readonly subscriptions: Map<string, Subscription>;
  /** Start connecting (idempotent). */
  connect(): this;
  /** Close for good: no reconnect; queued messages are dropped. */
  close(): void;
  /** Follow `channel`; returns its Subscription (the same one if already followed). */
  subscribe(channel: string): Subscription;
  /** Publish a player event over the WebSocket; resolves when the server has taken it. */
  publish(
    channel: string,
    event: string,
    data?: unknown,
  ): Promise<{ type: "published"; id: number; channel: string }>;
  on<K extends keyof ClientEvents>(type: K, handler: Handler<ClientEvents[K]>): this;
  off(type: keyof ClientEvents | string, handler?: (...args: any[]) => void): this;
}

/** The delay (ms) before reconnect attempt `attempt` (0 for the first). */
export declare function backoffDelay(
  attempt: number,
  options?: BackoffOptions,
  random?: () => number,
): number;

// -- the postMessage bridge -----------------------------------------------------------------

/** What a game may tell the casino page. */
export declare const GAME_EVENTS: readonly [
  "tournament.connected",
  "tournament.started",
  "tournament.completed",
  "player.eliminated",
  "rebuy.requested",
  "player.score.updated",
  "leaderboard.updated",
];
/** What the casino page may answer. */
export declare const CASINO_EVENTS: readonly ["rebuy.success", "rebuy.failed"];

export type GameEventType = (typeof GAME_EVENTS)[number];
export type CasinoEventType = (typeof CASINO_EVENTS)[number];
export type Id = string | number;

/** Every bridge message carries these; the fields of its type come beside them. */
export interface BridgeMessage {
  type: string;
  source: "game-platform" | "casino-ui";
  timestamp: string;
  [field: string]: unknown;
}

export interface GameMessage extends BridgeMessage {
  type: GameEventType;
  source: "game-platform";
  tournamentId: Id;
  playerId?: Id;
}

export interface RebuyRequest {
  tournamentId: Id;
  playerId: Id;
  requestId: Id;
  rebuyAmount?: number;
}

export interface RebuySuccess extends BridgeMessage {
  type: "rebuy.success";
  source: "casino-ui";
  tournamentId: Id;
  playerId: Id;
  requestId: Id;
  newEntryCount?: number;
  remainingRebuys?: number;
  newBalance?: number;
}

export interface RebuyFailed extends BridgeMessage {
  type: "rebuy.failed";
  tournamentId: Id;
  playerId: Id;
  requestId: Id;
  /** Why; "timeout" when the casino did not answer in time. */
  error: string;
}

/** A message a bridge ignored, and why. */
export interface Rejection {
  origin: string;
  reason: "origin" | "source" | "type" | "invalid";
  type?: string;
}

export interface LeaderboardEntry {
  playerId: Id;
  score?: number;
  position?: number;
  displayName?: string;
  [field: string]: unknown;
}

export interface GameBridgeOptions {
  /** The casino page's exact origin, e.g. https://casino.example.com (required). */
  casinoOrigin: string;
  /** Where messages go (default window.parent). */
  target?: { postMessage(message: unknown, targetOrigin: string): void };
  window?: Window;
  onRejected?: ((report: Rejection) => void) | null;
}

export declare class GameBridge {
  constructor(options: GameBridgeOptions);
  readonly casinoOrigin: string;
  /** The last 100 messages ignored. */
  readonly rejected: Rejection[];
  /** Send one of GAME_EVENTS with its fields; returns the message sent. */
  send(type: GameEventType, fields?: Record<string, unknown>): GameMessage;
  tournamentConnected(fields: { tournamentId: Id; playerId?: Id; [k: string]: unknown }): GameMessage;
  tournamentStarted(fields: { tournamentId: Id; [k: string]: unknown }): GameMessage;
  tournamentCompleted(fields: { tournamentId: Id; [k: string]: unknown }): GameMessage;
  playerEliminated(fields: { tournamentId: Id; playerId: Id; [k: string]: unknown }): GameMessage;
  scoreUpdated(fields: {
    tournamentId: Id;
    playerId: Id;
    score: number;
    [k: string]: unknown;
  }): GameMessage;
  /** Top 10, at most once a second (coalesced); the message if sent now, else null. */
  leaderboardUpdated(fields: {
    tournamentId: Id;
    leaderboard: LeaderboardEntry[];
    [k: string]: unknown;
  }): GameMessage | null;
  /** Resolves with the casino's answer, or a `rebuy.failed` with error "timeout". */
  requestRebuy(
    fields: { tournamentId: Id; playerId: Id; requestId?: Id; rebuyAmount?: number },
    timeoutMs?: number,
  ): Promise<RebuySuccess | RebuyFailed>;
  on(type: "rebuy.success", handler: (message: RebuySuccess) => void): this;
  on(type: "rebuy.failed", handler: (message: RebuyFailed) => void): this;
  on(type: "rejected", handler: (report: Rejection) => void): this;
  on(type: "*", handler: (message: RebuySuccess | RebuyFailed) => void): this;
  off(type: string, handler?: (...args: any[]) => void): this;
  close(): void;
}

export interface RebuyAnswer {
  rebuyProcessed: boolean;
  newEntryCount?: number;
  remainingRebuys?: number;
  newBalance?: number;
  error?: string;
}

export interface CasinoBridgeOptions {
  /** The game iframe's exact origin (required). */
  gameOrigin: string;
  /** The <iframe> element (or a window) answers go to. */
  frame?: HTMLIFrameElement | Window | null;
  window?: Window;
  /** The casino's endpoint; POSTed a RebuyRequest, it answers a RebuyAnswer. */
  rebuyUrl?: string | null;
  /** Extra headers for it (e.g. a CSRF token); cookies are sent. */
  rebuyHeaders?: Record<string, string>;
  /** Instead of rebuyUrl. */
  confirmRebuy?: ((request: RebuyRequest) => Promise<RebuyAnswer>) | null;
  /** Ask the player first (default: yes). */
  approve?: ((request: RebuyRequest) => Promise<boolean> | boolean) | null;
  onRejected?: ((report: Rejection) => void) | null;
}

export declare class CasinoBridge {
  constructor(options: CasinoBridgeOptions);
  readonly gameOrigin: string;
  readonly rejected: Rejection[];
  /** Send `rebuy.success` or `rebuy.failed` to the game. */
  sendToGame(type: CasinoEventType, fields?: Record<string, unknown>): BridgeMessage;
  on(type: GameEventType | "*", handler: (message: GameMessage) => void): this;
  on(type: "rejected", handler: (report: Rejection) => void): this;
  on(type: "sent", handler: (message: BridgeMessage) => void): this;
  on(type: "error", handler: (info: { request: RebuyRequest; error: string }) => void): this;
  off(type: string, handler?: (...args: any[]) => void): this;
  close(): void;
}
