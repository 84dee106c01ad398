/**
 * Helpers for the connection-migration and stateless-reset tests over real loopback UDP: servers bound
 * to 127.0.0.1 with OS-chosen ports, clients bound to other 127.0.0.x addresses, raw attacker sockets,
 * taps on the datagrams a client or server hands to its socket (test instrumentation), bounded waits,
 * and one cleanup list that closes everything a test opened.
 */
import dgram from "node:dgram";
import { once } from "node:events";
import { FastnetServer, connect, type ConnectOptions, type FastnetClientSession, type FastnetServerOptions, type FastnetSession } from "../../src/index.js";
import { pollUntil, within } from "./wait.js";

/** 127.0.0.n: every address of 127.0.0.0/8 is local on Linux, so each is a distinct client address. */
export const lo = (n: number): string => `127.0.0.${n}`;

export { within };

/** Polls `cond` every 3 ms until it holds; fails after `ms` with `what` (and `detail()` if given). */
export function waitFor(cond: () => boolean, ms: number, what: string, detail?: () => string): Promise<void> {
  return pollUntil(cond, ms, what, detail, 3);
}

/** One macrotask turn plus the I/O already queued (datagrams on loopback are delivered by then). */
export function settle(turns = 3): Promise<void> {
  return new Promise<void>((resolve) => {
    const step = (n: number): void => {
      if (n === 0) resolve();
      else setImmediate(() => step(n - 1));
    };
    step(turns);
  });
}

/** Everything a test opened, closed in reverse order by `run()` (afterEach). */
export class Cleanup {
  private readonly closers: Array<() => unknown> = [];

  add(fn: () => unknown): void {
    this.closers.push(fn);
  }

  async run(): Promise<void> {
    const errors: unknown[] = [];
    for (const fn of this.closers.splice(0).reverse()) {
      try {
        await fn();
      } catch (err) {
        errors.push(err);
      }
    }
    if (errors.length > 0) throw errors[0];
  }
}

/** A FastnetServer on 127.0.0.1 (OS-chosen TCP port, UDP on the same number unless `udpPort` is given). */
export async function startServer(cleanup: Cleanup, options: FastnetServerOptions = {}): Promise<FastnetServer> {
  const server = new FastnetServer(options);
  await server.listen(0, "127.0.0.1");
  cleanup.add(() => server.close());
  return server;
}

/** Connects a client (bound to `localAddress`, default 127.0.0.2) and returns it with the server's session. */
export async function openSession(
  cleanup: Cleanup,
  server: FastnetServer,
  options: ConnectOptions = {},
): Promise<{ client: FastnetClientSession; peer: FastnetSession }> {
  const peerP = once(server, "session") as Promise<[FastnetSession]>;
  const client = await within(
    connect(`http://127.0.0.1:${server.port}`, { fingerprint: server.fingerprint!, localAddress: lo(2), ...options }),
    10_000,
    "connect",
  );
  cleanup.add(() => {
    if (client.readyState < 3) client.abort(1000, "test teardown");
  });
  const [peer] = await within(peerP, 5000, "the server's session");
  return { client, peer };
}

/** The local address and port of a client session's current socket. */
export function localOf(client: FastnetClientSession): { address: string; port: number } {
  const a = client.socket!.address();
  return { address: a.address, port: a.port };
}

/** A plain UDP socket on a loopback address: an attacker, or a spoofed source. Records what it receives. */
export class RawUdp {
  readonly received: Buffer[] = [];
  bytesReceived = 0;
  bytesSent = 0;
  private constructor(readonly socket: dgram.Socket) {
    socket.on("message", (msg) => {
      this.received.push(msg);
      this.bytesReceived += msg.length;
    });
  }

  static async bind(cleanup: Cleanup, address: string): Promise<RawUdp> {
    const socket = dgram.createSocket("udp4");
    await new Promise<void>((resolve, reject) => {
      socket.once("error", reject);
      socket.bind(0, address, () => {
        socket.off("error", reject);
        resolve();
      });
    });
    const raw = new RawUdp(socket);
    cleanup.add(() => raw.close());
    return raw;
  }

  get address(): { address: string; port: number } {
    const a = this.socket.address();
    return { address: a.address, port: a.port };
  }

  /** Sends one datagram and resolves once it was handed to the kernel. */
  send(data: Uint8Array, port: number, address = "127.0.0.1"): Promise<void> {
    this.bytesSent += data.length;
    return new Promise<void>((resolve, reject) => this.socket.send(data, port, address, (err) => (err ? reject(err) : resolve())));
  }

  private closed = false;
  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.closed = true;
    return new Promise<void>((resolve) => this.socket.close(() => resolve()));
  }
}

export type Tap = (datagram: Buffer) => "drop" | void;

/**
 * Sees every datagram `client` hands to its socket, on this socket and on every socket a rebind puts in
 * its place; a tap returning "drop" keeps it from being sent (as if the network lost it). Returns a
 * function removing the tap.
 */
export function tapClientSends(client: FastnetClientSession, tap: Tap): () => void {
  const state = client as unknown as { __taps?: Set<Tap>; socket: dgram.Socket | null };
  if (!state.__taps) {
    const taps = new Set<Tap>();
    state.__taps = taps;
    const wrap = (s: dgram.Socket | null): void => {
      if (!s || (s as unknown as { __tapped?: boolean }).__tapped) return;
      (s as unknown as { __tapped?: boolean }).__tapped = true;
      const original = s.send.bind(s) as (...args: unknown[]) => void;
      (s as unknown as { send: (...args: unknown[]) => void }).send = (...args: unknown[]) => {
        const d = args[0] as Buffer;
        let drop = false;
        for (const t of taps) if (t(d) === "drop") drop = true;
        if (!drop) original(...args);
      };
    };
    let current = state.socket;
    wrap(current);
    Object.defineProperty(client, "socket", {
      configurable: true,
      enumerable: true,
      get: () => current,
      set: (s: dgram.Socket | null) => {
        wrap(s);
        current = s;
      },
    });
  }
  state.__taps.add(tap);
  return () => state.__taps!.delete(tap);
}

export type ServerTap = (datagram: Buffer, port: number, address: string) => "drop" | void;

/** Sees every datagram the server hands to its UDP socket (resets included); "drop" keeps it from leaving. */
export function tapServerSends(server: FastnetServer, tap: ServerTap): () => void {
  const socket = (server as unknown as { socket: dgram.Socket | null }).socket;
  if (!socket) throw new Error("server is not listening");
  const s = socket as unknown as { __taps?: Set<ServerTap>; send: (...args: unknown[]) => void };
  if (!s.__taps) {
    const taps = new Set<ServerTap>();
    s.__taps = taps;
    const original = socket.send.bind(socket) as (...args: unknown[]) => void;
    s.send = (...args: unknown[]) => {
      const d = args[0] as Buffer;
      let drop = false;
      for (const t of taps) if (t(d, args[1] as number, args[2] as string) === "drop") drop = true;
      if (!drop) original(...args);
    };
  }
  s.__taps.add(tap);
  return () => s.__taps!.delete(tap);
}

/** The server's own UDP socket (to send a datagram from the server's address, as an on-path forger would). */
export function serverSocket(server: FastnetServer): dgram.Socket {
  const socket = (server as unknown as { socket: dgram.Socket | null }).socket;
  if (!socket) throw new Error("server is not listening");
  return socket;
}

/** A message carrying sequence number `n` in its first 4 bytes, `size` bytes long, with a checkable pattern. */
export function seqMessage(n: number, size = 16): Uint8Array {
  const b = new Uint8Array(Math.max(size, 8));
  const v = new DataView(b.buffer);
  v.setUint32(0, n);
  v.setUint32(4, b.length);
  for (let k = 8; k < b.length; k++) b[k] = (n * 131 + k) & 0xff;
  return b;
}

/** The sequence number of a `seqMessage`, after checking its length and pattern. */
export function readSeq(b: Uint8Array): number {
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const n = v.getUint32(0);
  if (v.getUint32(4) !== b.length) throw new Error(`message ${n}: length ${b.length}, expected ${v.getUint32(4)}`);
  for (let k = 8; k < b.length; k++) if (b[k] !== ((n * 131 + k) & 0xff)) throw new Error(`message ${n} corrupted at byte ${k}`);
  return n;
}
