/**
 * Child process of bench/soak.ts: ONE FastnetServer (dev certificate, every option at its default) on
 * loopback that advertises the soak's relay as its UDP address and echoes every reliable message and
 * every datagram back on the session it came from. Started with fork() by the soak (with --expose-gc);
 * never run by hand. Usage (argv): soak-server.ts <relayPort> <lifetimeMs> (the run's length plus a margin)
 *
 * Reliable messages start with a 4-byte big-endian sequence number, 0, 1, 2, ... per session: the
 * child counts every message that does not carry the next number (a loss, duplicate or reordering the
 * transport let through) as an order error.
 *
 * Protocol (IPC), on top of bench/support/child-server.ts: the parent sends {type:"sample", gc} and gets
 * {type:"sample", ...SoakSample} back (with gc, after a full garbage collection, so heap readings are
 * comparable); {type:"loop-reset"} clears the event-loop delay histogram (after the warm-up). The
 * histogram is paused around each forced collection, which would otherwise count as a loop delay.
 */
import { monitorEventLoopDelay } from "node:perf_hooks";
import { FastnetServer, type FastnetSession } from "../../src/index.js";
import { runServerChild, takeIpc, type ParentMessage } from "./child-server.js";

const HOST = "127.0.0.1";
/** Event-loop delay sampling period (ms); it is subtracted from the readings. */
export const LOOP_RESOLUTION_MS = 2;

/** One reading of the server process. */
export interface SoakSample {
  /** performance.now() of the child when read. */
  t: number;
  rssMb: number;
  heapMb: number;
  heapTotalMb: number;
  externalMb: number;
  sessions: number;
  sessionsOpened: number;
  sessionsClosed: number;
  messages: number;
  datagrams: number;
  orderErrors: number;
  migrations: number;
  /** Sessions opened by the soak's hostile player, and those still open. */
  hostileSessions: number;
  hostileLive: number;
  /** Sum of the sessions' heldBytes (engine accounting), and the largest one. */
  heldBytes: number;
  heldBytesMax: number;
  /** Event-loop delay since the last loop-reset, ms (resolution subtracted). */
  loopP50Ms: number;
  loopP99Ms: number;
  loopMaxMs: number;
  loopSamples: number;
}

export type SoakParentMessage = ParentMessage | { type: "sample"; gc: boolean } | { type: "loop-reset" };
export type SoakChildMessage = { type: "sample" } & SoakSample;

const send = takeIpc<SoakChildMessage>();
const MB = 1024 * 1024;

runServerChild<SoakParentMessage>("soak-server", "soak", send, async () => {
  const relayPort = Number(process.argv[2]);
  if (!Number.isInteger(relayPort) || relayPort <= 0) throw new Error("soak-server.ts needs the relay's port");
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error("soak-server.ts must run with --expose-gc");

  const counts = { opened: 0, closed: 0, messages: 0, datagrams: 0, orderErrors: 0, migrations: 0, hostileSessions: 0, hostileLive: 0 };
  const server = new FastnetServer({ publicAddress: HOST, publicPort: relayPort });
  server.on("error", (err) => process.stderr.write(`soak server: ${err.message}\n`));
  server.on("migration", () => counts.migrations++);
  const live = new Set<FastnetSession>();
  server.on("session", (session, info) => {
    counts.opened++;
    live.add(session);
    // The soak's hostile player numbers nothing: only well-behaved sessions are held to the order.
    const hostile = info.hello.path.startsWith("/soak/hostile");
    if (hostile) {
      counts.hostileSessions++;
      counts.hostileLive++;
    }
    let next = 0;
    session.on("message", (m) => {
      counts.messages++;
      const seq = m.length >= 4 ? Buffer.from(m.buffer, m.byteOffset, m.length).readUInt32BE(0) : -1;
      if (seq !== next && !hostile) counts.orderErrors++;
      next = seq + 1;
      try {
        session.send(m);
      } catch {
        if (!hostile) counts.orderErrors++; // an echo the server could not queue is a message the client will miss
      }
    });
    session.on("datagram", (d) => {
      counts.datagrams++;
      session.sendUnreliable(d);
    });
    session.on("close", () => {
      counts.closed++;
      if (hostile) counts.hostileLive--;
      live.delete(session);
    });
  });
  await server.listen(0, HOST);
  const fp = server.fingerprint;
  if (!fp) throw new Error("server has no dev-certificate fingerprint");

  const loop = monitorEventLoopDelay({ resolution: LOOP_RESOLUTION_MS });
  loop.enable();
  const ms = (ns: number): number => Math.max(0, ns / 1e6 - LOOP_RESOLUTION_MS);

  send?.({ type: "ready", port: server.port, udpPort: server.udpPort, fingerprint: Buffer.from(fp).toString("hex"), aead: server.aeadBackend });
  return {
    stop: () => server.close(),
    onMessage: (msg) => {
      if (msg.type === "loop-reset") {
        loop.reset();
        return;
      }
      if (msg.type !== "sample") return;
      if (msg.gc) {
        loop.disable();
        gc();
        loop.enable();
      }
      const mem = process.memoryUsage();
      let held = 0;
      let heldMax = 0;
      for (const s of live) {
        const h = (s.getStats() as { heldBytes?: number }).heldBytes ?? 0;
        held += h;
        heldMax = Math.max(heldMax, h);
      }
      send?.({
        type: "sample",
        t: performance.now(),
        rssMb: mem.rss / MB,
        heapMb: mem.heapUsed / MB,
        heapTotalMb: mem.heapTotal / MB,
        externalMb: mem.external / MB,
        sessions: server.sessionCount,
        sessionsOpened: counts.opened,
        sessionsClosed: counts.closed,
        messages: counts.messages,
        datagrams: counts.datagrams,
        orderErrors: counts.orderErrors,
        migrations: counts.migrations,
        hostileSessions: counts.hostileSessions,
        hostileLive: counts.hostileLive,
        heldBytes: held,
        heldBytesMax: heldMax,
        loopP50Ms: ms(loop.percentile(50)),
        loopP99Ms: ms(loop.percentile(99)),
        loopMaxMs: ms(loop.max),
        loopSamples: loop.count,
      });
    },
  };
}, Number(process.argv[3]) || undefined);
