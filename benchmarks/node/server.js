// The reference `croupier bench` measures Croupier against: a bare Node `ws` server.
//
//   node server.js [port]      (0 or none: any free port; prints "listening <port>")
//
// Every connection to any path is accepted with no authentication and no per-client state
// beyond what `ws` keeps. A client may send one of these JSON text messages:
//
//   {"op":"fanout","messages":["…","…"]}  each message, back to back, to every other client
//   {"op":"greet","messages":["…"]}       sent to every client that connects from now on
//   {"op":"count"}                         answered with {"op":"count","clients":N}
//
// Any other message is ignored. Messages are opaque text, sent as they came.
"use strict";

const http = require("http");
const { WebSocketServer, WebSocket } = require("ws");

const server = http.createServer((req, res) => {
  res.writeHead(200, { "content-type": "text/plain" });
  res.end("ok\n");
});
const wss = new WebSocketServer({ server, perMessageDeflate: false, clientTracking: true });
let greeting = [];

wss.on("connection", (ws) => {
  for (const message of greeting) ws.send(message);
  ws.on("message", (data, isBinary) => {
    if (isBinary) return;
    let doc;
    try {
      doc = JSON.parse(data.toString());
    } catch {
      return;
    }
    if (doc === null || typeof doc !== "object") return;
    if (doc.op === "fanout" && Array.isArray(doc.messages)) {
      for (const client of wss.clients) {
        if (client === ws || client.readyState !== WebSocket.OPEN) continue;
        for (const message of doc.messages) client.send(String(message));
      }
    } else if (doc.op === "greet" && Array.isArray(doc.messages)) {
      greeting = doc.messages.map(String);
    } else if (doc.op === "count") {
      ws.send(JSON.stringify({ op: "count", clients: wss.clients.size }));
    }
  });
  ws.on("error", () => {});
});

server.listen(Number(process.argv[2] || 0), "127.0.0.1", () => {
  process.stdout.write(`listening ${server.address().port}\n`);
});

for (const signal of ["SIGTERM", "SIGINT"]) {
  process.on(signal, () => {
    for (const client of wss.clients) client.terminate();
    server.close(() => process.exit(0));
    setTimeout(() => process.exit(0), 1000).unref();
  });
}
