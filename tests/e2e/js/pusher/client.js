// A pusher-js client under Node, driven by a test over stdin/stdout (one JSON document a
// line each way).
//
//   node client.js <ws host> <ws port> <app key> <auth endpoint URL> <user id>
//
// Commands in: {"op":"subscribe","channel"}, {"op":"unsubscribe","channel"},
// {"op":"trigger","channel","event","data"} (a client event), {"op":"disconnect"}.
// Reports out: {"kind":"state","current"}, {"kind":"connected","socket_id"},
// {"kind":"event","channel","event","data","user_id"}, {"kind":"error","error"}.
"use strict";

const readline = require("readline");
const Pusher = require("pusher-js");

const [host, port, key, authEndpoint, user] = process.argv.slice(2);

function report(doc) {
  process.stdout.write(JSON.stringify(doc) + "\n");
}

const pusher = new Pusher(key, {
  wsHost: host,
  wsPort: Number(port),
  forceTLS: false,
  enabledTransports: ["ws"],
  disableStats: true,
  cluster: "unused",
  activityTimeout: 120000,
  channelAuthorization: { endpoint: authEndpoint, transport: "ajax", params: { user } },
});

pusher.connection.bind("state_change", (states) => report({ kind: "state", current: states.current }));
pusher.connection.bind("connected", () => report({ kind: "connected", socket_id: pusher.connection.socket_id }));
pusher.connection.bind("error", (error) => report({ kind: "error", error: error && (error.data || error.error || error.type) }));

function members(channel) {
  const out = {};
  channel.members.each((member) => { out[member.id] = member.info === undefined ? null : member.info; });
  return { count: channel.members.count, me: channel.members.me && channel.members.me.id, members: out };
}

function subscribe(name) {
  const channel = pusher.subscribe(name);
  channel.bind_global((event, data, metadata) => {
    const doc = { kind: "event", channel: name, event, data };
    if (metadata && metadata.user_id) doc.user_id = metadata.user_id;
    if (event === "pusher:subscription_succeeded" && name.startsWith("presence-")) {
      doc.data = members(channel);
    }
    report(doc);
  });
}

readline.createInterface({ input: process.stdin }).on("line", (line) => {
  const command = JSON.parse(line);
  if (command.op === "subscribe") subscribe(command.channel);
  else if (command.op === "unsubscribe") pusher.unsubscribe(command.channel);
  else if (command.op === "trigger") {
    const ok = pusher.channel(command.channel).trigger(command.event, command.data);
    report({ kind: "triggered", ok });
  } else if (command.op === "disconnect") {
    pusher.disconnect();
    setTimeout(() => process.exit(0), 50);
  }
});
