// A page as an integrator writes it in TypeScript, checked against /sdk/croupier.d.ts.
import {
  CasinoBridge,
  Client,
  GameBridge,
  type CroupierEvent,
  type Position,
  type RebuyFailed,
  type RebuySuccess,
} from "./croupier.js";

interface Score {
  tournamentId: string;
  playerId: string;
  score: number;
}

const client = new Client({
  url: "https://croupier.example.com",
  token: "a-token",
  refreshToken: async () => "a-fresh-token",
  transport: "auto",
  backoff: { initial: 500, max: 10000 },
  subscribeInUrl: true,
});
client.on("state", ({ state, transport }) => console.log(state, transport));
client.on("disconnect", (message) => {
  const code: string = message.code;
  const again: boolean = message.reconnect;
  console.log(code, again);
});
const sub = client.subscribe("tournament:12345");
sub.on("subscribed", ({ recovered, position }) => {
  const at: Position | null = position;
  console.log(recovered, at?.offset, at?.epoch);
});
sub.on("reset", ({ channel }) => console.log("reload", channel));
sub.on<Score>("player.score.updated", (data, event: CroupierEvent<Score>) => {
  const total: number = data.score + (event.offset ?? 0);
  console.log(total);
});
client.connect();
void client.publish("match:1", "reaction", { emoji: "🔥" }).then((ack) => ack.channel);
const state: "idle" | "connecting" | "connected" | "reconnecting" | "closed" = client.state;
console.log(state, client.version);

const game = new GameBridge({ casinoOrigin: "https://casino.example.com" });
game.scoreUpdated({ tournamentId: "12345", playerId: "p1", score: 10 });
void game
  .requestRebuy({ tournamentId: "12345", playerId: "p1", rebuyAmount: 5 })
  .then((answer: RebuySuccess | RebuyFailed) => console.log(answer.type));
const casino = new CasinoBridge({
  gameOrigin: "https://games.example.com",
  confirmRebuy: async (request) => ({ rebuyProcessed: request.rebuyAmount !== 0 }),
});
casino.on("player.eliminated", (message) => console.log(message.tournamentId));
casino.close();
