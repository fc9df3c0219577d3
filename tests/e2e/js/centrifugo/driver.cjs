// Remote control for the centrifuge SDK, shared by the Node runner (node.mjs) and the
// Chromium page: the test sends commands ({op, ref, ...}), and every SDK event and every
// call's outcome is reported through `emit` as one JSON-friendly object.
"use strict";

function createDriver(Centrifuge, baseOptions, emit) {
  let client = null;
  const subs = {};
  const tokens = []; // tokens the test handed over for the SDK's next getToken
  const waiting = []; // getToken calls waiting for the test to hand one over

  function nextToken() {
    emit({ event: "getToken" });
    if (tokens.length) return Promise.resolve(tokens.shift());
    return new Promise((resolve) => waiting.push(resolve));
  }

  function err(e) {
    if (e && typeof e === "object") {
      return { code: e.code, message: e.message, temporary: e.temporary || false };
    }
    return { code: 0, message: String(e) };
  }

  function answer(ref, promise) {
    promise.then(
      (ok) => emit({ reply: ref, ok: ok === undefined ? null : ok }),
      (e) => emit({ reply: ref, error: err(e) }),
    );
  }

  function watchSubscription(channel, sub) {
    sub.on("subscribing", (ctx) =>
      emit({ event: "subscribing", channel, code: ctx.code, reason: ctx.reason }),
    );
    sub.on("subscribed", (ctx) =>
      emit({
        event: "subscribed",
        channel,
        recovered: ctx.recovered,
        wasRecovering: ctx.wasRecovering,
        recoverable: ctx.recoverable,
        positioned: ctx.positioned,
        streamPosition: ctx.streamPosition || null,
        hasRecoveredPublications: ctx.hasRecoveredPublications,
      }),
    );
    sub.on("unsubscribed", (ctx) =>
      emit({ event: "unsubscribed", channel, code: ctx.code, reason: ctx.reason }),
    );
    sub.on("publication", (ctx) =>
      emit({
        event: "publication",
        channel,
        data: ctx.data,
        offset: ctx.offset === undefined ? null : ctx.offset,
        tags: ctx.tags || null,
        info: ctx.info || null,
      }),
    );
    sub.on("join", (ctx) => emit({ event: "join", channel, info: ctx.info }));
    sub.on("leave", (ctx) => emit({ event: "leave", channel, info: ctx.info }));
    sub.on("error", (ctx) => emit({ event: "sub_error", channel, error: err(ctx.error) }));
  }

  const ops = {
    connect(cmd) {
      const options = Object.assign(
        {
          token: cmd.token || "",
          getToken: nextToken,
          minReconnectDelay: 50,
          maxReconnectDelay: 400,
          timeout: 5000,
        },
        baseOptions,
        cmd.options || {},
      );
      if (!cmd.token && !cmd.refreshable) delete options.getToken;
      client = new Centrifuge(cmd.url, options);
      client.on("connecting", (ctx) =>
        emit({ event: "connecting", code: ctx.code, reason: ctx.reason }),
      );
      client.on("connected", (ctx) => emit({ event: "connected", client: ctx.client }));
      client.on("disconnected", (ctx) =>
        emit({ event: "disconnected", code: ctx.code, reason: ctx.reason }),
      );
      client.on("error", (ctx) => emit({ event: "error", type: ctx.type, error: err(ctx.error) }));
      client.connect();
    },
    token(cmd) {
      if (waiting.length) waiting.shift()(cmd.token);
      else tokens.push(cmd.token);
    },
    subscribe(cmd) {
      const options = {};
      if (cmd.since) options.since = cmd.since;
      const sub = client.newSubscription(cmd.channel, options);
      subs[cmd.channel] = sub;
      watchSubscription(cmd.channel, sub);
      sub.subscribe();
    },
    unsubscribe(cmd) {
      const sub = subs[cmd.channel];
      delete subs[cmd.channel];
      sub.unsubscribe();
      client.removeSubscription(sub);
    },
    publish(cmd) {
      answer(cmd.ref, subs[cmd.channel] ? subs[cmd.channel].publish(cmd.data)
        : client.publish(cmd.channel, cmd.data));
    },
    presence(cmd) {
      answer(cmd.ref, subs[cmd.channel].presence());
    },
    presenceStats(cmd) {
      answer(cmd.ref, subs[cmd.channel].presenceStats());
    },
    history(cmd) {
      answer(cmd.ref, subs[cmd.channel].history(cmd.options || {}));
    },
    rpc(cmd) {
      answer(cmd.ref, client.rpc(cmd.method, cmd.data));
    },
    send(cmd) {
      answer(cmd.ref, client.send(cmd.data));
    },
    disconnect() {
      client.disconnect();
    },
    reconnect() {
      client.connect();
    },
  };

  return {
    handle(cmd) {
      try {
        ops[cmd.op](cmd);
      } catch (e) {
        emit({ event: "driver_error", op: cmd.op, ref: cmd.ref, message: String(e) });
      }
    },
    close() {
      if (client) client.disconnect();
    },
  };
}

if (typeof module !== "undefined" && module.exports) {
  module.exports = { createDriver };
} else {
  window.createDriver = createDriver;
}
