// The centrifuge SDK under Node with the ws package, driven over stdin/stdout: one JSON
// command per input line (see driver.cjs), one JSON report per output line.
import { createRequire } from "node:module";
import readline from "node:readline";

import { Centrifuge } from "centrifuge";
import WebSocket from "ws";

const require = createRequire(import.meta.url);
const { createDriver } = require("./driver.cjs");

const driver = createDriver(Centrifuge, { websocket: WebSocket }, (doc) =>
  process.stdout.write(JSON.stringify(doc) + "\n"),
);
const lines = readline.createInterface({ input: process.stdin });
lines.on("line", (line) => {
  if (line.trim()) driver.handle(JSON.parse(line));
});
lines.on("close", () => {
  driver.close();
  setTimeout(() => process.exit(0), 50);
});
process.stdout.write(JSON.stringify({ event: "ready" }) + "\n");
