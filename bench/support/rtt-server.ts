/**
 * Child process of bench/rtt.ts: runs ONE echo server and reports where it listens over IPC.
 * Started with fork() by the benchmark; never run by hand. Usage (argv): rtt-server.ts <kind> [backend]
 *   kind "udp-raw": a node:dgram socket on 127.0.0.1 that sends every datagram back to its sender.
 *   kind "fastnet": a FastnetServer forced to `backend` that echoes every reliable message on its session.
 *   kind "ws":      a `ws` WebSocketServer echoing every message with the same binary flag.
 * Protocol (IPC): the child sends {type:"ready", port, udpPort, fingerprint?, aead?} once listening, or
 * {type:"error", message} if it could not start; the parent sends {type:"stop"} and the child closes and
 * exits. The child also exits when the IPC channel goes away (parent died) or after a lifetime limit.
 */
import dgram from "node:dgram";
import type { AddressInfo } from "node:net";
import { WebSocketServer } from "ws";
import { FastnetServer } from "../../src/index.js";
import type { AeadBackendName } from "../../src/index.js";

/** Messages from this child to the benchmark. */
export type ChildMessage =
  | { type: "ready"; port: number; udpPort: number; fingerprint?: string; aead?: string }
  | { type: "error"; message: string };

/** Messages from the benchmark to this child. */
export type ParentMessage = { type: "stop" };

/** Hard cap on how long a child lives, whatever the parent does (the whole benchmark takes far less). */
const MAX_LIFETIME_MS = 15 * 60_000;
const HOST = "127.0.0.1";

function send(msg: ChildMessage): void {
  if (process.send) process.send(msg);
}

type Stopper = () => Promise<void>;

async function startUdpRaw(): Promise<Stopper> {
  const socket = dgram.createSocket("udp4");
  socket.on("message", (msg, rinfo) => socket.send(msg, rinfo.port, rinfo.address));
  await new Promise<void>((resolve, reject) => {
    socket.once("error", reject);
    socket.bind(0, HOST, () => {
      socket.off("error", reject);
      resolve();
    });
  });
  socket.on("error", (err) => process.stderr.write(`udp-raw child: socket error: ${err.message}\n`));
  const port = socket.address().port;
  send({ type: "ready", port, udpPort: port });
  return () => new Promise<void>((resolve) => socket.close(() => resolve()));
}

async function startFastnet(backend: AeadBackendName): Promise<Stopper> {
  const server = new FastnetServer({ aead: backend });
  server.on("session", (session) => {
    session.on("message", (m) => session.send(m));
  });
  server.on("error", (err) => process.stderr.write(`fastnet child: server error: ${err.message}\n`));
  await server.listen(0, HOST);
  const fp = server.fingerprint;
  if (!fp) throw new Error("server has no dev-certificate fingerprint");
  send({ type: "ready", port: server.port, udpPort: server.udpPort, fingerprint: Buffer.from(fp).toString("hex"), aead: server.aeadBackend });
  return () => server.close();
}

async function startWs(): Promise<Stopper> {
  const wss = new WebSocketServer({ host: HOST, port: 0, perMessageDeflate: false });
  wss.on("connection", (ws) => {
    ws.on("message", (data, isBinary) => ws.send(data, { binary: isBinary }));
  });
  await new Promise<void>((resolve, reject) => {
    wss.once("error", reject);
    wss.once("listening", () => {
      wss.off("error", reject);
      resolve();
    });
  });
  const port = (wss.address() as AddressInfo).port;
  send({ type: "ready", port, udpPort: 0 });
  return () =>
    new Promise<void>((resolve) => {
      for (const c of wss.clients) c.terminate();
      wss.close(() => resolve());
    });
}

async function main(): Promise<void> {
  if (!process.send) throw new Error("rtt-server.ts must be started by bench/rtt.ts with an IPC channel");
  const lifetime = setTimeout(() => {
    process.stderr.write("rtt-server child: lifetime limit reached, exiting\n");
    process.exit(3);
  }, MAX_LIFETIME_MS);
  lifetime.unref();
  // The parent is gone (or closed the channel): nobody will ever stop us, so go now.
  process.on("disconnect", () => process.exit(0));

  const [kind, backend] = process.argv.slice(2);
  let stop: Stopper;
  switch (kind) {
    case "udp-raw":
      stop = await startUdpRaw();
      break;
    case "fastnet":
      stop = await startFastnet((backend ?? "auto") as AeadBackendName);
      break;
    case "ws":
      stop = await startWs();
      break;
    default:
      throw new Error(`unknown server kind ${String(kind)}`);
  }

  process.on("message", (msg: ParentMessage) => {
    if (msg?.type !== "stop") return;
    const force = setTimeout(() => process.exit(0), 2000);
    force.unref();
    stop().then(
      () => process.exit(0),
      () => process.exit(0),
    );
  });
}

main().catch((err: unknown) => {
  const message = err instanceof Error ? err.message : String(err);
  send({ type: "error", message });
  process.stderr.write(`rtt-server child failed: ${err instanceof Error ? err.stack : message}\n`);
  // Let the IPC message leave before exiting.
  setTimeout(() => process.exit(2), 100);
});
