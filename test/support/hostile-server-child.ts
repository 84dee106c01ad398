/**
 * The server side of the hostile-client harness, in a child process of its own so that what the
 * hostile client and the bystander do in the test process cannot pollute the server's event-loop
 * delay. The child runs a FastnetServer on 127.0.0.1 and an application chosen by each session's
 * hello path, "/<role>/<tag>[?query]":
 *
 *   echo    sends every reliable message back (the well-behaved bystander, or a target)
 *   stream  pushes `bytes` (query) of 4 KiB messages through a SendBacklog, as the Colyseus adapters
 *           queue behind the send queue, 64 KiB every 5 ms
 *   sink    ignores what it receives
 *
 * Over IPC the parent asks it to start a measurement window ("measure": event-loop delay histogram
 * reset, heap measured after a GC) and to report on it ("report": event-loop delay percentiles, heap
 * growth, and per session its memory (peak `heldBytes` plus backlog), close, counters).
 *
 * The same file holds the parent's handle, `startHostileServer`; the child's main runs only when
 * this file is the process's entry script.
 */
import { setPriority } from "node:os";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { fileURLToPath, pathToFileURL } from "node:url";
import { startScriptChild, type ServerChild } from "../../bench/support/children.js";
import type { ChildMessage } from "../../bench/support/child-server.js";
import { FastnetServer, type EndpointStats } from "../../src/node/server.js";
import { formatFingerprint, parseFingerprint } from "../../src/node/fingerprint.js";
import { SendBacklog } from "../../src/node/send-backlog.js";
import type { FastnetSession } from "../../src/node/session.js";
import type { SessionOptions } from "../../src/protocol/options.js";
import type { DropCounters } from "../../src/protocol/stats.js";

/** What the child reports about one session (memory figures are peaks over the window, sampled every 5 ms). */
export interface SessionReport {
  tag: string;
  role: string;
  open: boolean;
  close: { code: number; reason: string; remote: boolean } | null;
  /** Whether the engine reports `heldBytes`; without it (main before issue 7) the harness estimates it. */
  heldKnown: boolean;
  heldBytes: number;
  maxHeldBytes: number;
  maxBacklogBytes: number;
  /** Peak of heldBytes + backlog: what the session pins in the server. */
  maxMemoryBytes: number;
  backlogFailure: string | null;
  messagesReceived: number;
  packetsReceived: number;
  packetsSent: number;
  bytesSent: number;
  bytesReceived: number;
  dropped: DropCounters;
  /** Engine internals for the report, when their fields exist: sent-packet records, out-of-order pieces. */
  sentRecords: number | null;
  outOfOrderPieces: number | null;
}

export interface ServerReport {
  /** Event-loop delay over the window (ms; monitorEventLoopDelay at 1 ms resolution, which it includes). */
  eld: { p50: number; p99: number; max: number; count: number };
  /** CPU time the server process used over the window (user + system, ms), and the window's length (ms). */
  cpu: { usedMs: number; windowMs: number };
  /** V8 heap plus ArrayBuffers (Buffers live there), after a full GC at both ends of the window. */
  memory: { before: number; after: number; growth: number };
  sessions: SessionReport[];
  endpoint: EndpointStats;
}

type ParentRequest = { type: "measure" } | { type: "report" } | { type: "stop" };
type ChildReply = { type: "measuring" } | { type: "report"; report: ServerReport };

const ELD_RESOLUTION_MS = 1;
const SAMPLE_EVERY_MS = 5;
const STREAM_MESSAGE_BYTES = 4096;
const STREAM_CHUNK_MESSAGES = 16;
const STREAM_EVERY_MS = 5;
/** The child exits after this whatever the parent does (a test takes a few seconds). */
const MAX_LIFETIME_MS = 120_000;
/**
 * Per-record charge of the estimate used when the engine has no `heldBytes` (main before issue 7):
 * a sent-packet record or an out-of-order piece costs at least an object and a map or array slot.
 */
const ESTIMATED_RECORD_BYTES = 64;

// ---------------------------------------------------------------------------------------- child

interface Tracked {
  tag: string;
  role: string;
  session: FastnetSession;
  backlog: SendBacklog | null;
  backlogFailure: string | null;
  close: SessionReport["close"];
  maxHeld: number;
  maxBacklog: number;
  maxMemory: number;
}

/** heldBytes from the engine, or an estimate from its internals on an engine that lacks it. */
export function held(session: FastnetSession): { bytes: number; known: boolean } {
  const stats = session.getStats() as { heldBytes?: unknown };
  if (typeof stats.heldBytes === "number") return { bytes: stats.heldBytes, known: true };
  const d = internals(session);
  const buffered = (session.connection as unknown as { streamIn?: { bufferedBytes?: number } }).streamIn?.bufferedBytes ?? 0;
  return { bytes: session.connection.queuedBytes + buffered + ((d.sentRecords ?? 0) + (d.outOfOrderPieces ?? 0)) * ESTIMATED_RECORD_BYTES, known: false };
}

/** Record counts read from the engine's private state (null where the field is not there). */
function internals(session: FastnetSession): { sentRecords: number | null; outOfOrderPieces: number | null } {
  const c = session.connection as unknown as { sent?: unknown[]; streamIn?: { segments?: { size?: number }; pieceCount?: number } };
  const pieces = c.streamIn?.pieceCount ?? c.streamIn?.segments?.size;
  return { sentRecords: Array.isArray(c.sent) ? c.sent.length : null, outOfOrderPieces: typeof pieces === "number" ? pieces : null };
}

function sample(t: Tracked): void {
  const h = held(t.session).bytes;
  const b = t.backlog?.waitingBytes ?? 0;
  t.maxHeld = Math.max(t.maxHeld, h);
  t.maxBacklog = Math.max(t.maxBacklog, b);
  t.maxMemory = Math.max(t.maxMemory, h + b);
}

function reportOf(t: Tracked): SessionReport {
  if (t.close === null) sample(t);
  const s = t.session.getStats();
  const h = held(t.session);
  return {
    tag: t.tag,
    role: t.role,
    open: t.close === null,
    close: t.close,
    heldKnown: h.known,
    heldBytes: h.bytes,
    maxHeldBytes: t.maxHeld,
    maxBacklogBytes: t.maxBacklog,
    maxMemoryBytes: t.maxMemory,
    backlogFailure: t.backlogFailure,
    messagesReceived: s.messagesReceived,
    packetsReceived: s.packetsReceived,
    packetsSent: s.packetsSent,
    bytesSent: s.bytesSent,
    bytesReceived: s.bytesReceived,
    dropped: s.dropped,
    ...internals(t.session),
  };
}

function memoryNow(): number {
  (globalThis as { gc?: () => void }).gc?.();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

function startApplication(t: Tracked, query: URLSearchParams): void {
  const { session } = t;
  if (t.role === "echo") {
    session.on("message", (data) => {
      if (session.readyState === 1) t.backlog!.send(data);
    });
    return;
  }
  if (t.role === "stream") {
    const total = Number(query.get("bytes") ?? 0);
    const message = new Uint8Array(STREAM_MESSAGE_BYTES).fill(0x5a);
    let pushed = 0;
    const pump = setInterval(() => {
      for (let i = 0; i < STREAM_CHUNK_MESSAGES && pushed < total && session.readyState === 1 && t.backlogFailure === null; i++) {
        t.backlog!.send(message);
        pushed += message.length;
      }
      if (pushed >= total || session.readyState !== 1 || t.backlogFailure !== null) clearInterval(pump);
    }, STREAM_EVERY_MS);
    session.once("close", () => clearInterval(pump));
  }
  // sink: nothing to do
}

async function childMain(): Promise<void> {
  const ipc = process.send?.bind(process);
  if (!ipc) throw new Error("hostile-server-child.ts must be started by the hostile harness with an IPC channel");
  const send = (m: ChildMessage | ChildReply): void => void ipc(m);
  setTimeout(() => process.exit(3), MAX_LIFETIME_MS).unref();
  process.on("disconnect", () => process.exit(0));

  const eld = monitorEventLoopDelay({ resolution: ELD_RESOLUTION_MS });
  eld.enable();
  let memoryBefore = memoryNow();
  let cpuBefore = process.cpuUsage();
  let windowStart = performance.now();
  const tracked: Tracked[] = [];
  const server = new FastnetServer(JSON.parse(process.argv[2] ?? "{}") as Partial<SessionOptions>);
  server.on("error", (err) => process.stderr.write(`server error: ${err.message}\n`));
  server.on("session", (session, info) => {
    const url = new URL(info.hello.path, "fastnet://child");
    const [, role = "sink", tag = "?"] = url.pathname.split("/");
    const t: Tracked = { tag, role, session, backlog: null, backlogFailure: null, close: null, maxHeld: 0, maxBacklog: 0, maxMemory: 0 };
    t.backlog = new SendBacklog(session, (err) => {
      // As the adapters do: a reliable stream with a gap is worse than a close.
      t.backlogFailure = err.code;
      session.close(1009, err.message);
    });
    session.on("close", (code, reason, remote) => {
      sample(t);
      t.close = { code, reason, remote };
    });
    tracked.push(t);
    startApplication(t, url.searchParams);
  });
  await server.listen(0, "127.0.0.1");
  const sampler = setInterval(() => {
    for (const t of tracked) if (t.close === null) sample(t);
  }, SAMPLE_EVERY_MS);
  sampler.unref();

  process.on("message", (msg: ParentRequest) => {
    switch (msg?.type) {
      case "measure":
        memoryBefore = memoryNow();
        for (const t of tracked) {
          t.maxHeld = 0;
          t.maxBacklog = 0;
          t.maxMemory = 0;
          if (t.close === null) sample(t);
        }
        eld.reset();
        cpuBefore = process.cpuUsage();
        windowStart = performance.now();
        send({ type: "measuring" });
        break;
      case "report": {
        // Delay and CPU first: the GC below blocks the loop and is not the attack's doing.
        const ms = (ns: number): number => ns / 1e6;
        const delay = { p50: ms(eld.percentile(50)), p99: ms(eld.percentile(99)), max: ms(eld.max), count: eld.count };
        const cpu = process.cpuUsage(cpuBefore);
        const windowMs = performance.now() - windowStart;
        const after = memoryNow();
        send({
          type: "report",
          report: {
            eld: delay,
            cpu: { usedMs: (cpu.user + cpu.system) / 1000, windowMs },
            memory: { before: memoryBefore, after, growth: after - memoryBefore },
            sessions: tracked.map(reportOf),
            endpoint: { ...server.stats },
          },
        });
        break;
      }
      case "stop": {
        clearInterval(sampler);
        // Sessions of a peer that never acknowledges would make close() wait for them: abort them all.
        for (const t of tracked) if (t.close === null) t.session.abort(1001, "test over");
        setTimeout(() => process.exit(0), 1000).unref();
        server.close().then(
          () => process.exit(0),
          () => process.exit(0),
        );
        break;
      }
    }
  });
  send({ type: "ready", port: server.port, udpPort: server.udpPort, fingerprint: formatFingerprint(server.fingerprint!) });
}

// --------------------------------------------------------------------------------------- parent

const SCRIPT = fileURLToPath(import.meta.url);
/** Nice value asked for the server child (lower is more CPU); see `HostileServer.start`. */
const CHILD_PRIORITY = -10;

/** The parent's handle on a hostile-harness server child. */
export class HostileServer {
  private constructor(private readonly child: ServerChild) {}

  /**
   * Forks the child (with --expose-gc, so its memory figures follow a full GC) and waits for it to
   * listen; `options` go to its FastnetServer. Where permitted, the child runs at a higher scheduling priority: in a deployment the
   * hostile client does not share the server's CPU, and on a small loaded machine other processes
   * (this test's own hostile client included) would otherwise show up as the server's delay.
   */
  static async start(label: string, options: Partial<SessionOptions> = {}): Promise<HostileServer> {
    const child = await startScriptChild(SCRIPT, label, [JSON.stringify(options)], 20_000, ["--expose-gc"]);
    try {
      if (child.process.pid !== undefined) setPriority(child.process.pid, CHILD_PRIORITY);
    } catch {
      // Not permitted (no privilege to raise a priority): measured at the normal priority.
    }
    return new HostileServer(child);
  }

  get url(): string {
    return `http://127.0.0.1:${this.child.info.port}`;
  }

  get fingerprint(): Uint8Array {
    return parseFingerprint(this.child.info.fingerprint!);
  }

  /** Starts the measurement window (resolves once the child has reset its figures). */
  measure(timeoutMs = 5000): Promise<void> {
    return this.request({ type: "measure" }, "measuring", timeoutMs).then(() => undefined);
  }

  /**
   * The child's report on the window so far. Rejects when the child does not answer within
   * `timeoutMs`: a server whose event loop is blocked for that long fails every bound anyway.
   */
  async report(timeoutMs = 5000): Promise<ServerReport> {
    const reply = await this.request({ type: "report" }, "report", timeoutMs);
    return (reply as Extract<ChildReply, { type: "report" }>).report;
  }

  /** Stops the child (SIGKILL if it does not exit within 3 s, e.g. with its event loop blocked). */
  stop(): Promise<void> {
    return this.child.stop(3000);
  }

  private request(msg: ParentRequest, answer: ChildReply["type"], timeoutMs: number): Promise<ChildReply> {
    const proc = this.child.process;
    return new Promise<ChildReply>((resolve, reject) => {
      const onMessage = (m: ChildReply): void => {
        if (m?.type !== answer) return;
        done();
        resolve(m);
      };
      const onExit = (): void => {
        done();
        reject(new Error(`server child exited before answering ${msg.type}: ${this.child.output()}`));
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`server child did not answer "${msg.type}" within ${timeoutMs} ms (event loop blocked?)`));
      }, timeoutMs);
      const done = (): void => {
        clearTimeout(timer);
        proc.off("message", onMessage);
        proc.off("exit", onExit);
      };
      proc.on("message", onMessage);
      proc.once("exit", onExit);
      proc.send(msg);
    });
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  childMain().catch((err: unknown) => {
    process.stderr.write(`hostile server child failed: ${err instanceof Error ? err.stack : String(err)}\n`);
    process.send?.({ type: "error", message: err instanceof Error ? err.message : String(err) });
    setTimeout(() => process.exit(2), 100);
  });
}
