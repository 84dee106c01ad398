/**
 * One fallback scenario, run by test/fallback-netns.test.ts inside a network namespace the test made
 * (`ip netns exec <ns> node --import tsx fallback-scenario.ts <scenario>`): a Colyseus server on the
 * namespace's 127.0.0.1, a FastnetClient, and an nftables rule of this namespace that drops UDP to the
 * server's port on the input hook (client to server; the server's packets still arrive). It prints one
 * line `RESULT <json>` of what it measured (the test asserts), or `FAILED <stack>`, and exits.
 *
 * Scenarios:
 * - blocked-join: UDP dropped before the join; `path` "auto" (default budget); then getLatency().
 * - udp-forced: UDP dropped before the join; `path: "udp"`, bindTimeoutMs 1500.
 * - both-blocked: UDP dropped and the server's WebSocket path off (`webSocket: false`); "auto".
 * - udp-dies: joined over UDP, then UDP dropped for good; the SDK's reconnection keeps the seat.
 */
import { execFileSync } from "node:child_process";
import { Room, type Client } from "@colyseus/core";
import { schema, t } from "@colyseus/schema";
import type { Room as SdkRoom } from "@colyseus/sdk";
import { fastnetCodeOf, transportOf } from "../../src/client.js";
import { ColyseusHarness, recordEvents, rejectionOf, waitFor, within } from "./colyseus-harness.js";

const FallbackState = schema({ counter: t.number() }, "FallbackState");

/** What the server room saw, in order. */
const roomLog: string[] = [];

class FallbackRoom extends Room {
  override state = new FallbackState();
  override onCreate(): void {
    this.state.counter = 0;
    this.onMessage("ping", (client, n: number) => {
      roomLog.push(`ping ${n}`);
      this.state.counter = n;
      client.send("pong", n);
    });
  }
  override onJoin(client: Client): void {
    roomLog.push(`join ${client.sessionId}`);
  }
  override async onDrop(client: Client): Promise<void> {
    roomLog.push(`drop ${client.sessionId}`);
    await this.allowReconnection(client, 30);
  }
  override onReconnect(client: Client): void {
    roomLog.push(`reconnect ${client.sessionId}`);
  }
  override onLeave(client: Client): void {
    roomLog.push(`leave ${client.sessionId}`);
  }
}

/** Drops UDP to `port` arriving in this namespace (input hook: the sender's send still succeeds). */
function dropUdpTo(port: number): void {
  const ruleset = `table inet fallback_test {\n chain input {\n  type filter hook input priority 0; policy accept;\n  udp dport ${port} drop\n }\n}\n`;
  execFileSync("nft", ["-f", "-"], { input: ruleset });
}

/** Sends "ping" n, waits for its "pong" and for the state to show it: messages both ways and state. */
async function play(room: SdkRoom, n: number): Promise<{ pong: number; counter: number }> {
  const pong = new Promise<number>((resolve) => {
    const off = room.onMessage("pong", (v: number) => {
      if (v !== n) return;
      off();
      resolve(v);
    });
  });
  room.send("ping", n);
  const got = await within(pong, 5000, `pong ${n}`);
  await waitFor(() => (room.state as { counter?: number }).counter === n, 5000, `state.counter ${n}`);
  return { pong: got, counter: (room.state as { counter: number }).counter };
}

async function run(scenario: string): Promise<Record<string, unknown>> {
  const h = await new ColyseusHarness().start({ fallback: FallbackRoom }, scenario === "both-blocked" ? { webSocket: false } : {});
  try {
    const udpPort = h.transport.engine.udpPort;
    if (scenario !== "udp-dies") dropUdpTo(udpPort);

    if (scenario === "udp-forced" || scenario === "both-blocked") {
      const client = h.client(scenario === "udp-forced" ? { path: "udp", bindTimeoutMs: 1500 } : {});
      const started = performance.now();
      const err = await rejectionOf(client.joinOrCreate("fallback"), 15_000, "join on a UDP-blocked network");
      return {
        name: err.name,
        message: err.message,
        fastnetCode: fastnetCodeOf(err) ?? null,
        failMs: performance.now() - started,
        webSocketConnections: h.transport.webSocket?.stats.connections ?? 0,
        sessionsOpened: h.transport.stats.sessionsOpened,
        roomLog: [...roomLog],
      };
    }

    const client = h.client(scenario === "udp-dies" ? { idleTimeoutMs: 1500, keepAliveMs: 300 } : {});
    const started = performance.now();
    const room = await h.join(client, "fallback", {}, 10_000);
    const joinMs = performance.now() - started;
    const transport = transportOf(room);
    const joinedPath = transport.path;
    const sessionId = room.sessionId;
    const events = recordEvents(room);
    const before = await play(room, 1);

    if (scenario === "blocked-join") {
      // The latency probe follows: fastnet's goes unanswered, the WebSocket one measures.
      const latencyMs = await within(client.getLatency({ timeout: 1000 }), 5000, "getLatency on a UDP-blocked network");
      return {
        latencyMs,
        webSocketProbes: h.transport.webSocket?.stats.probes ?? 0,
        joinMs,
        joinedPath,
        udpFailure: transport.udpFailure?.code ?? null,
        play: before,
        sessionsOpened: h.transport.stats.sessionsOpened,
        webSocketJoins: h.transport.webSocket?.stats.joins ?? 0,
        roomLog: [...roomLog],
      };
    }

    // udp-dies: the path dies for good a moment after the join.
    room.reconnection.minUptime = 0;
    dropUdpTo(udpPort);
    const cutAt = performance.now();
    await waitFor(() => events.reconnect.length > 0 || events.leave.length > 0, 30_000, "the room to reconnect (or leave)");
    const reconnectMs = performance.now() - cutAt;
    const after = await play(room, 2);
    return {
      joinedPath,
      pathAfter: transport.path,
      sameSessionId: room.sessionId === sessionId,
      reconnectMs,
      clientDrops: events.drop.map((d) => `${d.code} ${d.reason ?? ""}`),
      clientReconnects: events.reconnect.length,
      clientLeaves: events.leave.length,
      play: [before, after],
      webSocketJoins: h.transport.webSocket?.stats.joins ?? 0,
      roomLog: roomLog.map((e) => e.replace(sessionId, "<sid>")),
    };
  } finally {
    await h.stop();
  }
}

run(process.argv[2] ?? "").then(
  (result) => {
    process.stdout.write(`RESULT ${JSON.stringify(result)}\n`);
  },
  (err: Error) => {
    process.stdout.write(`FAILED ${err.stack ?? String(err)}\n`);
    process.exitCode = 1;
  },
);
