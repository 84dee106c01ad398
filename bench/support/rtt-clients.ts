/**
 * Client sides of bench/rtt.ts: one echo client per transport, all behind the same small interface so
 * the measuring loop is identical for every transport (same callbacks, same timing code).
 */
import dgram from "node:dgram";
import WebSocket from "ws";
import { connect } from "../../src/index.js";
import type { AeadBackendName, FastnetClientSession } from "../../src/index.js";

/** An open connection to an echo server in a child process. */
export interface EchoClient {
  /** Sends one message (the echo comes back through `onEcho`). May throw if the transport is dead. */
  send(data: Uint8Array): void;
  /** Set by the measuring loop: called with each echoed message. */
  onEcho: ((data: Uint8Array) => void) | null;
  /** Set by the measuring loop: called when the transport fails or closes under it. */
  onFail: ((err: Error) => void) | null;
  /** The first failure of the transport, kept so a failure between blocks is not missed. */
  failed: Error | null;
  /** Closes the connection; bounded by its own timeout. */
  close(): Promise<void>;
}

const HOST = "127.0.0.1";

/** Rejects with a clear message when `p` does not settle within `ms`. */
export function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: timed out after ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

function fail(client: EchoClient, err: Error): void {
  client.failed ??= err;
  client.onFail?.(err);
}

/** Raw unencrypted UDP: a connected dgram socket (no per-send address lookup). */
export async function openUdpRaw(port: number, timeoutMs: number): Promise<EchoClient> {
  const socket = dgram.createSocket("udp4");
  await withTimeout(
    new Promise<void>((resolve, reject) => {
      socket.once("error", reject);
      socket.bind(0, HOST, () => {
        socket.connect(port, HOST, () => {
          socket.off("error", reject);
          resolve();
        });
      });
    }),
    timeoutMs,
    "udp-raw: bind/connect",
  ).catch((err: unknown) => {
    socket.close();
    throw err;
  });
  const client: EchoClient = {
    onEcho: null,
    onFail: null,
    failed: null,
    send: (data) => socket.send(data),
    close: () => withTimeout(new Promise<void>((resolve) => socket.close(() => resolve())), timeoutMs, "udp-raw: close").catch(() => undefined),
  };
  socket.on("message", (msg) => client.onEcho?.(msg));
  socket.on("error", (err) => fail(client, new Error(`udp-raw: socket error: ${err.message}`)));
  return client;
}

/** fastnet: the engine's reliable channel over a session forced to `backend` (the server is forced too). */
export async function openFastnet(
  port: number,
  fingerprintHex: string,
  backend: AeadBackendName,
  timeoutMs: number,
): Promise<EchoClient> {
  const fingerprint = new Uint8Array(Buffer.from(fingerprintHex, "hex"));
  const session: FastnetClientSession = await withTimeout(
    connect(`http://${HOST}:${port}`, { fingerprint, aead: backend, handshakeTimeoutMs: timeoutMs }),
    timeoutMs + 1000,
    `fastnet-${backend}: connect`,
  );
  let closing = false;
  const client: EchoClient = {
    onEcho: null,
    onFail: null,
    failed: null,
    send: (data) => session.send(data),
    close: async () => {
      if (closing) return;
      closing = true;
      if (session.readyState === 3) return;
      const closed = new Promise<void>((resolve) => session.once("close", () => resolve()));
      session.close(1000, "bench done");
      await withTimeout(closed, timeoutMs, `fastnet-${backend}: close`).catch(() => undefined);
    },
  };
  session.on("message", (m) => client.onEcho?.(m));
  session.on("close", (code, reason, remote) => {
    if (!closing) fail(client, new Error(`fastnet-${backend}: session closed (code ${code}, "${reason}", ${remote ? "by server" : "locally"})`));
  });
  return client;
}

/**
 * WebSocket (`ws`, over loopback, no compression, binary frames): plain ws://, or wss:// (TLS 1.3) when
 * the server's self-signed certificate `ca` is given, trusted as its own anchor.
 */
export async function openWs(port: number, timeoutMs: number, ca?: string): Promise<EchoClient> {
  // The dev certificate names 127.0.0.1 among its IP SANs, so the server identity check passes.
  const ws = new WebSocket(`${ca ? "wss" : "ws"}://${HOST}:${port}/`, { perMessageDeflate: false, handshakeTimeout: timeoutMs, ...(ca ? { ca } : {}) });
  await withTimeout(
    new Promise<void>((resolve, reject) => {
      ws.once("open", () => {
        ws.off("error", reject);
        resolve();
      });
      ws.once("error", reject);
    }),
    timeoutMs + 1000,
    "ws: connect",
  ).catch((err: unknown) => {
    ws.terminate();
    throw err;
  });
  let closing = false;
  const client: EchoClient = {
    onEcho: null,
    onFail: null,
    failed: null,
    send: (data) => ws.send(data, { binary: true }),
    close: async () => {
      if (closing) return;
      closing = true;
      if (ws.readyState === WebSocket.CLOSED) return;
      const closed = new Promise<void>((resolve) => ws.once("close", () => resolve()));
      ws.close(1000, "bench done");
      await withTimeout(closed, timeoutMs, "ws: close").catch(() => ws.terminate());
    },
  };
  ws.on("message", (data: WebSocket.RawData) => {
    // Binary messages arrive as one Buffer (binaryType "nodebuffer"); anything else is a failure.
    if (Buffer.isBuffer(data)) client.onEcho?.(data);
    else fail(client, new Error("ws: unexpected non-Buffer message"));
  });
  ws.on("error", (err) => fail(client, new Error(`ws: ${err.message}`)));
  ws.on("close", (code) => {
    if (!closing) fail(client, new Error(`ws: connection closed (code ${code})`));
  });
  return client;
}
