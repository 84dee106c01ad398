/**
 * Child process of bench/rtt.ts: runs ONE echo server and reports where it listens over IPC.
 * Started with fork() by the benchmark; never run by hand. Usage (argv): rtt-server.ts <kind> [backend]
 *   kind "udp-raw": a node:dgram socket on 127.0.0.1 that sends every datagram back to its sender.
 *   kind "fastnet": a FastnetServer forced to `backend` that echoes every reliable message on its session.
 *   kind "ws":      a `ws` WebSocketServer echoing every message with the same binary flag.
 *   kind "wss":     the same over TLS 1.3 (node:https with a fresh self-signed dev certificate, sent as `cert`).
 * Protocol (IPC): the child sends {type:"ready", port, udpPort, fingerprint?, aead?} once listening, or
 * {type:"error", message} if it could not start; the parent sends {type:"stop"} and the child closes and
 * exits. The child also exits when the IPC channel goes away (parent died) or after a lifetime limit.
 */
import dgram from "node:dgram";
import https from "node:https";
import type { AddressInfo } from "node:net";
import { WebSocketServer } from "ws";
import { FastnetServer, generateDevCertificate } from "../../src/index.js";
import type { AeadBackendName } from "../../src/index.js";
import { runServerChild, takeIpc } from "./child-server.js";

const HOST = "127.0.0.1";
const send = takeIpc();

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
  send?.({ type: "ready", port, udpPort: port });
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
  send?.({ type: "ready", port: server.port, udpPort: server.udpPort, fingerprint: Buffer.from(fp).toString("hex"), aead: server.aeadBackend });
  return () => server.close();
}

async function startWs(tls: boolean): Promise<Stopper> {
  const dev = tls ? await generateDevCertificate() : null;
  const server = dev ? https.createServer({ key: dev.key, cert: dev.cert, minVersion: "TLSv1.3" }) : null;
  const wss = server ? new WebSocketServer({ server, perMessageDeflate: false }) : new WebSocketServer({ host: HOST, port: 0, perMessageDeflate: false });
  wss.on("connection", (ws) => {
    ws.on("message", (data, isBinary) => ws.send(data, { binary: isBinary }));
  });
  const listening = server ?? wss;
  await new Promise<void>((resolve, reject) => {
    listening.once("error", reject);
    listening.once("listening", () => {
      listening.off("error", reject);
      resolve();
    });
    server?.listen(0, HOST);
  });
  const port = ((server ?? wss).address() as AddressInfo).port;
  send?.({ type: "ready", port, udpPort: 0, ...(dev ? { cert: dev.cert } : {}) });
  return () =>
    new Promise<void>((resolve) => {
      for (const c of wss.clients) c.terminate();
      wss.close(() => (server ? server.close(() => resolve()) : resolve()));
    });
}

runServerChild("rtt-server", "rtt", send, async () => {
  const [kind, backend] = process.argv.slice(2);
  switch (kind) {
    case "udp-raw":
      return { stop: await startUdpRaw() };
    case "fastnet":
      return { stop: await startFastnet((backend ?? "auto") as AeadBackendName) };
    case "ws":
      return { stop: await startWs(false) };
    case "wss":
      return { stop: await startWs(true) };
    default:
      throw new Error(`unknown server kind ${String(kind)}`);
  }
});
