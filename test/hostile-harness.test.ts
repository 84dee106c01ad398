/**
 * Hostile players (issue 7, item 5): a client that holds the session's real keys misbehaves on
 * purpose against a real FastnetServer in a child process, while a well-behaved bystander session
 * echoes messages through the same server. For every behaviour three things must hold:
 *
 *   1. the hostile session's memory on the server stays under the documented bound (peak heldBytes
 *      under HOSTILE_SESSION_BOUND_BYTES, and with the backlog the application queues behind it under
 *      that plus DEFAULT_BACKLOG_BYTES), and the server process's heap grows by less than
 *      PROCESS_GROWTH_BOUND_BYTES;
 *   2. the server's event-loop delay stays under 20 ms at the 99th percentile;
 *   3. the bystander gets every message echoed, in order, and its session is not closed.
 *
 * Where issue 7 names the server's answer, that is checked too: a stalled peer is closed, an ACK of a
 * packet never sent and a message over maxMessageSize end the session as protocol violations (1002),
 * no unvalidated address gets more than 3x the bytes it sent, and every claim of another player's
 * sessionId is refused. The Colyseus-level test runs in this process (@pm2/io in @colyseus/core
 * takes over a child's IPC channel), so its delay figure includes the clients' own work.
 *
 * Set HOSTILE_VERBOSE=1 to print each behaviour's figures.
 */
import assert from "node:assert/strict";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { Room, type Client } from "@colyseus/core";
import type { Room as SdkRoom } from "@colyseus/sdk";
import { connect, type FastnetClientSession, type FastnetSession } from "../src/index.js";
import { DEFAULT_BACKLOG_BYTES } from "../src/node/send-backlog.js";
import type { SessionOptions } from "../src/protocol/options.js";
import { transportOf } from "../src/client.js";
import { ColyseusHarness, recordEvents } from "./support/colyseus-harness.js";
import { HOSTILE_SESSION_BOUND_BYTES, HostileClient, PayloadBuilder, streamFrameSize, type SocketLedger } from "./support/hostile-client.js";
import { HostileServer, held, type ServerReport, type SessionReport } from "./support/hostile-server-child.js";
import { within } from "./support/wait.js";

/** The issue's bound on the server's event-loop delay, 99th percentile. */
const ELD_P99_BOUND_MS = 20;
/** Generous: a bounded hostile session pins a few MiB; an unbounded structure grows far past this. */
const PROCESS_GROWTH_BOUND_BYTES = 48 * 1024 * 1024;
/** stallTimeoutMs of the never-acknowledging test's server. */
const STALL_TIMEOUT_MS = 1000;
/** Shortest measurement window: the bystander sends about 100 messages in it. */
const MIN_WINDOW_MS = 1000;
const VERBOSE = process.env.HOSTILE_VERBOSE === "1";

/** Gives the event loop a turn (lets datagrams leave and arrive between bursts). */
const tick = (ms = 0): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * The well-behaved session beside the hostile one: sends a numbered message every 10 ms and checks
 * that the echoes come back complete and in order.
 */
class Bystander {
  private sent = 0;
  private echoed = 0;
  private outOfOrder: string | null = null;
  private timer: NodeJS.Timeout | null = null;
  closed: { code: number; reason: string } | null = null;

  private constructor(readonly session: FastnetClientSession) {
    session.on("message", (data) => {
      const seq = new DataView(data.buffer, data.byteOffset, data.byteLength).getUint32(0);
      if (seq !== this.echoed && this.outOfOrder === null) this.outOfOrder = `expected echo #${this.echoed}, got #${seq}`;
      this.echoed++;
    });
    session.on("close", (code, reason) => (this.closed = { code, reason }));
  }

  static async open(server: HostileServer): Promise<Bystander> {
    const session = await within(
      connect(server.url, { fingerprint: server.fingerprint, path: "/echo/bystander", localAddress: "127.0.0.3" }),
      10_000,
      "the bystander's connect",
    );
    return new Bystander(session);
  }

  start(): void {
    this.timer = setInterval(() => {
      if (this.session.readyState !== 1) return;
      const m = new Uint8Array(32);
      new DataView(m.buffer).setUint32(0, this.sent++);
      this.session.send(m);
    }, 10);
  }

  /** Stops sending and waits (bounded) until every echo is back or the session closed. */
  async finish(ms: number): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    const deadline = performance.now() + ms;
    while (this.echoed < this.sent && this.closed === null && performance.now() < deadline) await tick(5);
  }

  /** What went wrong for the bystander, if anything. */
  problems(): string[] {
    const p: string[] = [];
    if (this.sent < 20) p.push(`bystander sent only ${this.sent} messages during the attack`);
    if (this.closed) p.push(`bystander session closed: ${this.closed.code} ${this.closed.reason}`);
    if (this.echoed !== this.sent) p.push(`bystander got ${this.echoed} of ${this.sent} echoes`);
    if (this.outOfOrder) p.push(`bystander echoes out of order: ${this.outOfOrder}`);
    return p;
  }

  get summary(): string {
    return `${this.echoed}/${this.sent} echoed`;
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    if (this.session.readyState < 3) this.session.abort(1000, "test over");
  }
}

/**
 * Sends `next(i)` for i = 0, 1, ... until `done()` or `count` packets, in bursts of 25 every 10 ms:
 * 2500 packets a second from one player, a flood for a game server, paced so that the hostile's own
 * sending does not starve the server child of CPU on a small machine.
 */
async function flood(count: number, done: () => boolean, next: (i: number) => void): Promise<number> {
  let i = 0;
  while (i < count && !done()) {
    const burstEnd = Math.min(count, i + 25);
    for (; i < burstEnd && !done(); i++) next(i);
    await tick(10);
  }
  return i;
}

/** Distinct PATH_CHALLENGE data, cheaply (a counter in a reused buffer: the frame writer copies it). */
const challengeScratch = new DataView(new ArrayBuffer(8));
function challengeData(n: number): Uint8Array {
  challengeScratch.setFloat64(0, n);
  return new Uint8Array(challengeScratch.buffer);
}

const mib = (n: number): string => `${(n / 1048576).toFixed(2)} MiB`;

describe("hostile clients: a key holder hurts no one but itself", function () {
  this.timeout(30_000);
  let server: HostileServer | null = null;
  let bystander: Bystander | null = null;
  const hostiles: HostileClient[] = [];

  beforeEach(async function () {
    server = await HostileServer.start(this.currentTest?.title ?? "hostile");
    bystander = await Bystander.open(server);
  });

  /** Replaces the server child by one with these session options (and a new bystander). */
  async function restartServer(options: Partial<SessionOptions>): Promise<void> {
    bystander?.close();
    await server?.stop();
    server = await HostileServer.start("hostile", options);
    bystander = await Bystander.open(server);
  }

  afterEach(async () => {
    for (const h of hostiles.splice(0)) h.close();
    bystander?.close();
    bystander = null;
    await server?.stop();
    server = null;
  });

  /** A hostile client with real keys, bound over UDP (its session is open on the server). */
  async function hostile(path: string, localAddress = "127.0.0.2"): Promise<HostileClient> {
    const h = await HostileClient.open({ url: server!.url, fingerprint: server!.fingerprint, path, localAddress });
    hostiles.push(h);
    await h.bind();
    return h;
  }

  /**
   * Runs `attack` inside a measurement window with the bystander talking, then checks the three
   * properties; `extra` adds behaviour-specific problems. Every problem is reported at once.
   */
  async function underAttack(
    name: string,
    attack: () => Promise<void>,
    extra: (report: ServerReport, h: SessionReport) => string[] = () => [],
  ): Promise<ServerReport> {
    await server!.measure();
    bystander!.start();
    const started = performance.now();
    await attack();
    const attackMs = performance.now() - started;
    // The bystander talks for at least a second, however quick the attack was.
    if (attackMs < MIN_WINDOW_MS) await tick(MIN_WINDOW_MS - attackMs);
    await bystander!.finish(5000);
    const report = await server!.report(10_000);
    const h = report.sessions.find((s) => s.tag === "hostile");
    assert.ok(h, "the server never saw the hostile session");
    const problems: string[] = [];
    if (h.maxHeldBytes > HOSTILE_SESSION_BOUND_BYTES) {
      problems.push(`hostile session held ${mib(h.maxHeldBytes)} by heldBytes${h.heldKnown ? "" : " (estimated: no heldBytes in stats)"}, bound ${mib(HOSTILE_SESSION_BOUND_BYTES)}`);
    }
    if (h.maxMemoryBytes > HOSTILE_SESSION_BOUND_BYTES + DEFAULT_BACKLOG_BYTES) {
      problems.push(`hostile session held ${mib(h.maxMemoryBytes)} with its backlog (${mib(h.maxBacklogBytes)}), bound ${mib(HOSTILE_SESSION_BOUND_BYTES + DEFAULT_BACKLOG_BYTES)}`);
    }
    if (!h.heldKnown) problems.push("session.getStats() has no heldBytes");
    if (report.memory.growth > PROCESS_GROWTH_BOUND_BYTES) problems.push(`server heap grew by ${mib(report.memory.growth)}, bound ${mib(PROCESS_GROWTH_BOUND_BYTES)}`);
    if (!(report.eld.p99 < ELD_P99_BOUND_MS)) problems.push(`server event-loop delay p99 ${report.eld.p99.toFixed(1)} ms (max ${report.eld.max.toFixed(1)} ms), bound ${ELD_P99_BOUND_MS} ms`);
    problems.push(...bystander!.problems(), ...extra(report, h));
    if (VERBOSE) {
      console.log(
        `      [${name}] attack ${attackMs.toFixed(0)} ms; hostile peak ${mib(h.maxMemoryBytes)} (held ${mib(h.maxHeldBytes)}${h.heldKnown ? "" : "~"}, backlog ${mib(h.maxBacklogBytes)}), ` +
          `sent records ${h.sentRecords}, pieces ${h.outOfOrderPieces}, close ${h.close ? `${h.close.code} ${h.close.reason}` : "none"}; ` +
          `heap +${mib(report.memory.growth)}; eld p99 ${report.eld.p99.toFixed(1)} max ${report.eld.max.toFixed(1)} ms (n ${report.eld.count}); ` +
          `server cpu ${report.cpu.usedMs.toFixed(0)} ms in ${report.cpu.windowMs.toFixed(0)} ms; ` +
          `bystander ${bystander!.summary}; dropped ${JSON.stringify(h.dropped)}`,
      );
    }
    if (problems.length > 0) assert.fail(`${name}:\n  ${problems.join("\n  ")}`);
    return report;
  }

  it("never acknowledges while the server streams reliable data to it", async () => {
    // A short stall timeout (default 10 s) so that the server's giving up shows within the test.
    await restartServer({ stallTimeoutMs: STALL_TIMEOUT_MS });
    const h = await hostile("/stream/hostile?bytes=6291456");
    await underAttack(
      "never-ack",
      async () => {
        // Keep the session alive (ack-eliciting PINGs) and never send a single ACK frame.
        const until = performance.now() + STALL_TIMEOUT_MS + 1500;
        while (performance.now() < until && h.closedBy === null) {
          h.send(new PayloadBuilder().ping());
          await tick(20);
        }
      },
      (_r, s) => (s.close ? [] : [`the server still holds a peer that acknowledged nothing for ${STALL_TIMEOUT_MS + 1500} ms (stallTimeoutMs ${STALL_TIMEOUT_MS})`]),
    );
  });

  it("acknowledges packets the server never sent", async () => {
    const h = await hostile("/echo/hostile");
    await underAttack(
      "ack-never-sent",
      async () => {
        // RFC 9000 §13.1: acknowledging a packet that was never sent is a protocol violation.
        await flood(300, () => h.closedBy !== null, () => h.send(new PayloadBuilder().ping().ackRange(0, h.largestServerPn + 1_000_000)));
        await h.waitFor(() => h.closedBy !== null, 1000, "a CLOSE").catch(() => {});
      },
      (_r, s) => (s.close?.code === 1002 ? [] : [`hostile session not closed as a protocol violation: ${s.close ? `${s.close.code} ${s.close.reason}` : "still open"}`]),
    );
  });

  it("sends about 100 ACK frames per packet while it grows the server's in-flight list", async () => {
    const h = await hostile("/sink/hostile");
    await underAttack("many-acks", async () => {
      // Each packet draws one PATH_RESPONSE packet, which the hostile never acknowledges (so the server's
      // in-flight list grows), and carries 100 ACK frames of the server's first packet, each of which
      // acknowledges nothing new but walks that list.
      await flood(2000, () => h.closedBy !== null, (i) => {
        const p = new PayloadBuilder().pathChallenge(challengeData(i));
        for (let k = 0; k < 100; k++) p.ackRange(0, 0);
        h.send(p);
      });
    });
  });

  it("floods PATH_CHALLENGEs and never acknowledges", async () => {
    const h = await hostile("/sink/hostile");
    await underAttack("challenge-flood", async () => {
      let n = 0;
      await flood(2000, () => h.closedBy !== null, () => {
        const p = new PayloadBuilder();
        while (p.room >= 9) p.pathChallenge(challengeData(n++));
        h.send(p);
      });
    });
  });

  it("sends 1-byte STREAM pieces with 1-byte gaps across the whole receive window", async () => {
    const h = await hostile("/sink/hostile");
    let offset = 1;
    await underAttack("fragments", async () => {
      // Offset 0 never comes, so nothing can be delivered: every piece must be held, and the pieces
      // 1, 3, 5, ... cover the window the server advertised (half a million of them at 1 MiB),
      // unless the server ends the session first.
      const one = Uint8Array.of(0x2a);
      await flood(Infinity, () => offset >= h.serverWindow || h.closedBy !== null, () => {
        const p = new PayloadBuilder();
        while (offset < h.serverWindow && p.room >= streamFrameSize(offset, 1)) {
          p.stream(offset, one);
          offset += 2;
        }
        h.send(p);
      });
    });
    assert.ok(offset >= h.serverWindow || h.closedBy !== null, `the attack stopped at offset ${offset} with the session open`);
  });

  it("sends oversized and malformed frames and datagrams", async () => {
    const h = await hostile("/sink/hostile");
    const ff8 = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]; // a varint of 2^62 - 1
    /** Payloads that must be dropped (or end the session as a protocol violation), never obeyed. */
    const frames: Array<(p: PayloadBuilder, k: number) => void> = [
      (p) => p.raw(0x03).varint(0).varint(5000).raw(1, 2, 3), // STREAM length past the packet
      (p) => p.raw(0x04).varint(5000).raw(1), // DATAGRAM length past the packet
      (p) => p.raw(0x05).varint(1000).varint(1 << 20).raw(0x41, 0x42), // CLOSE with a 1 MB reason length
      (p, k) => p.ping().raw(0x0a + (k % 0xf6)), // unknown frame types 0x0a..0xff
      (p) => p.raw(0x02, ...ff8, 0, 0, 0), // ACK, largest 2^62 - 1
      (p) => p.raw(0x02).varint(5).varint(0).varint(2 ** 30).varint(0), // ACK with 2^30 more ranges
      (p) => p.raw(0x02).varint(3).varint(0).varint(1).varint(1).varint(5).varint(0), // ACK range below 0
      (p) => p.raw(0x02).varint(3).varint(0).varint(0).varint(9), // ACK first range above largest
      (p) => p.raw(0x03, ...ff8).varint(1).raw(0), // STREAM at offset 2^62 - 1
      (p) => p.ping().raw(0x03, 0xc0), // varint cut short at the end
      (p) => p.raw(0x06, 1, 2, 3), // PATH_CHALLENGE cut short
      (p) => p.raw(0x04, ...ff8), // DATAGRAM of 2^62 - 1 bytes
    ];
    /** Datagrams that are bad as a whole, sealed with the real keys where that makes sense. */
    const datagramKinds: Array<() => Uint8Array[]> = [
      () => [h.seal(new PayloadBuilder().ping().padding(1300).bytes())], // over 1200 bytes
      () => {
        const d = h.seal(new PayloadBuilder().ping().bytes());
        d[d.length - 1]! ^= 1; // fails the AEAD
        return [d];
      },
      () => {
        const d = h.seal(new PayloadBuilder().ping().bytes());
        d[0]! |= 0x04; // a reserved header bit
        return [d];
      },
      () => {
        const d = h.seal(new PayloadBuilder().ping().bytes());
        return [d, d]; // a replay
      },
      () => [Uint8Array.of(0x40, 1, 2, 3, 4)], // a runt
    ];
    let datagrams = 0;
    await underAttack(
      "malformed",
      async () => {
        // Every kind of bad datagram 100 times, interleaved.
        const kinds = frames.length + datagramKinds.length;
        datagrams = await flood(100 * kinds, () => h.closedBy !== null, (i) => {
          const kind = i % kinds;
          if (kind < frames.length) {
            const p = new PayloadBuilder();
            frames[kind]!(p, Math.floor(i / kinds));
            h.send(p);
          } else {
            for (const d of datagramKinds[kind - frames.length]!()) h.sendRaw(d);
          }
        });
        // Still served: a PING draws an acknowledgement (unless a violation already closed it).
        const before = h.datagramsReceived;
        h.send(new PayloadBuilder().ping());
        await h.waitFor(() => h.datagramsReceived > before || h.closedBy !== null, 2000, "an answer to a PING after the malformed packets");
        // Then a reliable message whose length prefix says 2^62 - 1 bytes: past maxMessageSize, a violation.
        h.send(new PayloadBuilder().stream(0, Uint8Array.from(ff8)));
        await h.waitFor(() => h.closedBy !== null, 2000, "a CLOSE after the oversized message").catch(() => {});
      },
      (r, s) => {
        const p: string[] = [];
        if (s.close?.code !== 1002) p.push(`hostile session should end as a protocol violation (1002), got ${s.close ? `${s.close.code} ${s.close.reason}` : "no close"}`);
        if (VERBOSE) console.log(`      [malformed] ${datagrams} bad datagrams; session drops ${JSON.stringify(s.dropped)}; endpoint malformed ${r.endpoint.malformed}`);
        return p;
      },
    );
  });

  it("migrates in a storm: authenticated packets from many addresses of 127.0.0.0/8", async () => {
    const h = await hostile("/stream/hostile?bytes=2097152");
    const storm: SocketLedger[] = [];
    for (let a = 10; a < 30; a++) for (let n = 0; n < 2; n++) storm.push(await h.addSocket(`127.0.0.${a}`));
    await underAttack(
      "migration-storm",
      async () => {
        // Every address sends PINGs with the newest packet numbers, acknowledging whatever reached it, and
        // never answers a PATH_CHALLENGE: none of them is validated, so none may get more than 3x its bytes.
        for (let round = 0; round < 60 && h.closedBy === null; round++) {
          for (const s of storm) {
            const p = new PayloadBuilder().ping();
            if (!s.received.isEmpty()) p.ack(s.received.starts, s.received.ends);
            h.send(p, s);
          }
          await tick(20);
        }
        await tick(300); // what the server still sends toward the storm's addresses
      },
      (r) => {
        const p: string[] = [];
        for (const s of storm) {
          if (s.bytesReceived > 3 * s.bytesSent) p.push(`unvalidated ${s.address}:${s.port} got ${s.bytesReceived} bytes for ${s.bytesSent} sent (over 3x)`);
        }
        if (VERBOSE) {
          const got = storm.reduce((n, s) => n + s.bytesReceived, 0);
          const sent = storm.reduce((n, s) => n + s.bytesSent, 0);
          console.log(`      [migration-storm] ${storm.length} sockets sent ${sent} B, got ${got} B; migrations ${r.endpoint.migrations}, refused ${r.endpoint.migrationsRefused}`);
        }
        return p.slice(0, 5).concat(p.length > 5 ? [`... and ${p.length - 5} more addresses over 3x`] : []);
      },
    );
  });
});

/** Colyseus-level room: echoes "echo" messages and logs who joined, dropped and left. */
const roomLog: string[] = [];
class EchoRoom extends Room {
  override onCreate(): void {
    this.onMessage("echo", (client, n: number) => client.send("echo", n));
  }
  override onJoin(client: Client): void {
    roomLog.push(`join ${client.sessionId}`);
  }
  override onDrop(client: Client, code?: number): void {
    roomLog.push(`drop ${client.sessionId} ${code}`);
  }
  override onLeave(client: Client, code?: number): void {
    roomLog.push(`leave ${client.sessionId} ${code}`);
  }
}

/** A full GC in this process (mocha runs without --expose-gc): for the heap figures of the in-process test. */
function gcNow(): void {
  setFlagsFromString("--expose-gc");
  (runInNewContext("gc") as () => void)();
}

describe("hostile clients at the Colyseus level: claiming another player's sessionId", function () {
  this.timeout(30_000);
  let h: ColyseusHarness;
  const hostiles: HostileClient[] = [];

  beforeEach(async () => {
    roomLog.length = 0;
    h = await new ColyseusHarness().start({ echo: EchoRoom });
  });

  afterEach(async () => {
    for (const c of hostiles.splice(0)) c.close();
    await h.stop();
  });

  // In-process (@pm2/io in @colyseus/core takes over a child's IPC channel), so the event-loop delay
  // measured here includes the hostile client's and the victim's own work: a stricter test, not a looser one.
  it("reconnects as the victim with a bogus token, or joins under its sessionId: the victim sees nothing", async () => {
    const victim = await h.join<SdkRoom>(h.client(), "echo");
    const victimEvents = recordEvents(victim);
    let echoed = 0;
    let outOfOrder: string | null = null;
    victim.onMessage("echo", (n: number) => {
      if (n !== echoed && outOfOrder === null) outOfOrder = `expected echo #${echoed}, got #${n}`;
      echoed++;
    });
    const victimSession = transportOf(victim).session!;
    const processId = new URL(transportOf(victim).url).pathname.split("/")[1]!;
    const base = `/${processId}/${victim.roomId}?sessionId=${encodeURIComponent(victim.sessionId)}`;
    const claims = [
      `${base}&reconnectionToken=bogus`,
      `${base}&reconnectionToken=${victim.roomId}:bogus`,
      base,
      `${base}&skipHandshake=1`,
      `${base}&reconnectionToken=bogus&skipHandshake=1`,
    ];

    // The hostile sessions on the server, found by their hello path, and their peak memory.
    const hostileSessions: FastnetSession[] = [];
    const onSession = (session: FastnetSession, info: { hello: { path: string } }): void => {
      if (claims.includes(info.hello.path)) hostileSessions.push(session);
    };
    h.transport.engine.on("session", onSession);
    let peakHeld = 0;
    let heldKnown = true;
    const sampler = setInterval(() => {
      for (const s of hostileSessions) {
        const m = held(s);
        peakHeld = Math.max(peakHeld, m.bytes);
        heldKnown &&= m.known;
      }
    }, 2);

    gcNow();
    const heapBefore = process.memoryUsage().heapUsed + process.memoryUsage().arrayBuffers;
    const eld = monitorEventLoopDelay({ resolution: 1 });
    eld.enable();
    let sent = 0;
    const talk = setInterval(() => {
      if (transportOf(victim).isOpen) victim.send("echo", sent++);
    }, 10);
    const closes: string[] = [];
    try {
      const started = performance.now();
      for (let round = 0; round < 2; round++) {
        for (const path of claims) {
          const c = await HostileClient.open({ url: h.endpoint, fingerprint: Uint8Array.from(h.transport.fingerprint as number[]), path, localAddress: "127.0.0.2", autoAck: true });
          hostiles.push(c);
          await c.bind();
          await c.waitFor(() => c.closedBy !== null, 3000, "the server to refuse the claim").catch(() => {});
          closes.push(c.closedBy ? `${c.closedBy.code}` : "open");
          c.close();
        }
      }
      const elapsed = performance.now() - started;
      if (elapsed < MIN_WINDOW_MS) await tick(MIN_WINDOW_MS - elapsed);
    } finally {
      clearInterval(talk);
    }
    const deadline = performance.now() + 5000;
    while (echoed < sent && victimSession.readyState === 1 && performance.now() < deadline) await tick(5);
    eld.disable();
    clearInterval(sampler);
    h.transport.engine.off("session", onSession);
    gcNow();
    const growth = process.memoryUsage().heapUsed + process.memoryUsage().arrayBuffers - heapBefore;

    const problems: string[] = [];
    if (peakHeld > HOSTILE_SESSION_BOUND_BYTES) problems.push(`a hostile session held ${mib(peakHeld)}, bound ${mib(HOSTILE_SESSION_BOUND_BYTES)}`);
    if (!heldKnown) problems.push("session.getStats() has no heldBytes");
    if (growth > PROCESS_GROWTH_BOUND_BYTES) problems.push(`heap grew by ${mib(growth)}, bound ${mib(PROCESS_GROWTH_BOUND_BYTES)}`);
    const p99 = eld.percentile(99) / 1e6;
    if (!(p99 < ELD_P99_BOUND_MS)) problems.push(`event-loop delay p99 ${p99.toFixed(1)} ms (max ${(eld.max / 1e6).toFixed(1)} ms), bound ${ELD_P99_BOUND_MS} ms`);
    if (sent < 20) problems.push(`victim sent only ${sent} messages during the attack`);
    if (echoed !== sent) problems.push(`victim got ${echoed} of ${sent} echoes`);
    if (outOfOrder) problems.push(`victim echoes out of order: ${outOfOrder}`);
    if (victimSession.readyState !== 1) problems.push(`victim's fastnet session is no longer open (readyState ${victimSession.readyState})`);
    if (transportOf(victim).session !== victimSession) problems.push("victim's SDK had to open a new session");
    for (const [what, list] of Object.entries({ drop: victimEvents.drop, leave: victimEvents.leave, error: victimEvents.error })) {
      if (list.length > 0) problems.push(`victim's SDK saw on${what}: ${JSON.stringify(list)}`);
    }
    const roomSaw = roomLog.filter((e) => !e.startsWith("join ") && e.includes(victim.sessionId));
    if (roomSaw.length > 0) problems.push(`the room saw the victim ${roomSaw.join(", ")}`);
    if (closes.includes("open")) problems.push(`a claim was not refused: ${closes.join(" ")}`);
    if (VERBOSE) {
      console.log(
        `      [claim-session-id] ${claims.length * 2} claims, closed with ${closes.join(" ")}; hostile peak held ${mib(peakHeld)}${heldKnown ? "" : "~"}; ` +
          `heap +${mib(growth)}; eld p99 ${p99.toFixed(1)} max ${(eld.max / 1e6).toFixed(1)} ms; victim ${echoed}/${sent} echoed; room log ${roomLog.join(", ")}`,
      );
    }
    if (problems.length > 0) assert.fail(`claim-session-id:\n  ${problems.join("\n  ")}`);
  });
});
