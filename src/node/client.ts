import { randomFillSync } from "node:crypto";
import dgram from "node:dgram";
import { lookup } from "node:dns/promises";
import { isIP, isIPv6 } from "node:net";
import createDebug from "debug";
import { Connection } from "../protocol/connection.js";
import { FastnetError } from "../protocol/errors.js";
import {
  DEFAULT_ENDPOINT_OPTIONS,
  DEFAULT_SESSION_OPTIONS,
  resolveOptions,
  transportParams,
  type EndpointOptions,
  type SessionOptions,
} from "../protocol/options.js";
import { selectAeadBackend } from "./aead-select.js";
import { parseFingerprint } from "./fingerprint.js";
import { isServerBusy, retryWhenBusy } from "./busy-retry.js";
import { ENGINE_OPTION_KEYS, checkOptionKeys, keysOf } from "./option-keys.js";
import { isFullServerReject, performHandshake } from "./handshake-client.js";
import { FastnetSession, ReadyState, clock } from "./session.js";

const log = createDebug("fastnet:client");

export interface ConnectOptions extends Partial<SessionOptions>, Partial<EndpointOptions> {
  /** Path and query the session stands for (the server sees it in the hello), e.g. a room path. */
  path?: string;
  /** Extra headers passed to the server in the hello. */
  headers?: Record<string, string>;
  /** TLS verification, as node:tls: trust anchors and whether to verify at all. */
  tls?: { ca?: string | string[] | Buffer; rejectUnauthorized?: boolean; servername?: string };
  /** SHA-256 of the server certificate to pin instead of CA verification ("AB:CD:..", bytes or number[]). */
  fingerprint?: string | Uint8Array | number[];
  /** Without `fingerprint`, pin the dev certificate the server announces in its handshake response (see HandshakeOptions). */
  pinAnnouncedFingerprint?: boolean;
  /** Local address (and port) for the UDP socket. */
  localAddress?: string;
  localPort?: number;
  /** Upgrade path of the handshake (default "/.fastnet"). */
  handshakePath?: string;
  /**
   * After this many keep-alive intervals with nothing heard, rebind to a fresh local port and probe,
   * so a dead NAT mapping heals by itself (default 3; 0 turns it off).
   */
  autoRebindAfterKeepAlives?: number;
}

/** Every key connect() takes: a key not in this list throws FastnetOptionError (src/node/option-keys.ts). */
export const CONNECT_OPTION_KEYS: readonly string[] = Object.freeze([
  ...ENGINE_OPTION_KEYS,
  ...keysOf<Omit<ConnectOptions, keyof SessionOptions | keyof EndpointOptions>>({
    path: true,
    headers: true,
    tls: true,
    fingerprint: true,
    pinAnnouncedFingerprint: true,
    localAddress: true,
    localPort: true,
    handshakePath: true,
    autoRebindAfterKeepAlives: true,
  }),
]);

const DEFAULT_AUTO_REBIND_AFTER = 3;

/** Where `rebind` moves the session: a local address and/or port (default: same address, a fresh port). */
export interface RebindOptions {
  localAddress?: string;
  localPort?: number;
}

/**
 * The client side of a session: adds the handshake's facts, and moving to a new local socket
 * (`rebind`) while the server keeps the session (same keys; a spare connection ID on the new path).
 */
export class FastnetClientSession extends FastnetSession {
  /** Stateless reset token the server gave at the handshake (for its first CID; spares bring their own). */
  resetToken: Uint8Array = new Uint8Array(0);
  /** TLS version the keys came from. */
  tlsProtocol = "";
  /** Remote UDP address and port. */
  remoteAddress = "";
  remotePort = 0;
  /** Rebinds done, on request or on their own after silence. */
  rebinds = 0;
  /** The UDP socket in use (replaced by `rebind`). */
  socket: dgram.Socket | null = null;
  /** @internal Local address asked for at connect, reused by automatic rebinds. */
  localAddress: string | undefined;
  /** @internal Keep-alive intervals of silence before an automatic rebind (0: never). */
  autoRebindAfter = 0;
  private rebinding: Promise<void> | null = null;
  private lastAutoRebindAt = -Infinity;
  private readonly pathWaiters = new Set<() => void>();

  /** @internal Makes `socket` the one the session sends on and listens to. */
  attach(socket: dgram.Socket): void {
    this.socket = socket;
    socket.on("message", (msg) => {
      if (this.socket !== socket) return; // a late datagram on a socket being replaced
      // Listener exceptions are caught per listener by the session; whatever else throws here would
      // leave the dgram handler as an uncaught exception and end the process: report it instead.
      try {
        this.receive(msg);
        for (const check of this.pathWaiters) check();
      } catch (err) {
        console.error("fastnet: error while receiving a datagram (the session carries on):", err);
      }
    });
    socket.on("error", (err: NodeJS.ErrnoException) => {
      if (this.socket !== socket) return;
      log("socket error: %s", err.message);
      // A connected UDP socket reports ICMP port unreachable as ECONNREFUSED: the server process may be
      // gone. Only a hint (ICMP is not authenticated): the core probes and closes with
      // SERVER_UNREACHABLE only if no authenticated packet follows within unreachableGraceMs.
      if (err.code === "ECONNREFUSED" && this.readyState === ReadyState.OPEN) {
        this.connection.onUnreachableHint(clock());
        this.drive();
      }
    });
  }

  /**
   * Moves the session to a new local socket at once (closing the old one), probes the new path and
   * resolves when a packet sent from it was acknowledged: the server then sends there. The room on
   * the server sees nothing. Rejects (FastnetError) if the session closes or no answer comes within
   * `bindTimeoutMs`.
   */
  rebind(options: RebindOptions = {}): Promise<void> {
    if (this.readyState !== ReadyState.OPEN) return Promise.reject(new FastnetError("NOT_OPEN", "cannot rebind: session is not open"));
    const run = this.doRebind(options).finally(() => {
      if (this.rebinding === run) this.rebinding = null;
    });
    this.rebinding = run;
    return run;
  }

  private async doRebind(options: RebindOptions): Promise<void> {
    // A given address sticks: later rebind({}) and automatic rebinds take a fresh port there.
    if (options.localAddress !== undefined) this.localAddress = options.localAddress;
    // The new path gets a fresh CID. Replacements for retired ones arrive about a round trip after
    // the previous move's path worked: rebinds in quick succession wait that long for one (bounded).
    if (this.connection.spareCids === 0) await this.waitForSpareCid();
    const next = await openSocket(this.remoteAddress, this.remotePort, this.localAddress, options.localPort);
    if (this.readyState !== ReadyState.OPEN) {
      next.close();
      throw new FastnetError("NOT_OPEN", "cannot rebind: session closed meanwhile");
    }
    const old = this.socket;
    this.attach(next);
    old?.close();
    this.rebinds++;
    // A fresh CID for the fresh path, so an observer of both cannot link them; the old one is retired
    // once this path works. Without a spare (none announced yet) the CID stays.
    if (!this.connection.switchCid()) log("rebind without a spare connection ID: the new path carries the old one");
    const firstPn = this.connection.nextPacketNumber;
    this.connection.probePath(); // a full-size probe: the server may answer with up to 3x that
    this.drive();
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => done(new FastnetError("BIND_TIMEOUT", `rebind: no answer on the new path within ${this.connection.options.bindTimeoutMs} ms`)), this.connection.options.bindTimeoutMs);
      const check = (): void => {
        if (this.connection.largestAcked >= firstPn) done();
      };
      const onClose = (code: number, reason: string): void => done(new FastnetError("NOT_OPEN", `session closed during rebind: ${reason} (${code})`));
      const done = (err?: Error): void => {
        clearTimeout(timer);
        this.pathWaiters.delete(check);
        this.off("close", onClose);
        if (err) reject(err);
        else resolve();
      };
      this.pathWaiters.add(check);
      this.once("close", onClose);
    });
  }

  /**
   * Resolves once the server announced a spare CID, or after max(50 ms, 4 RTT + 2 ACK delays) capped
   * at 250 ms (a dead path brings none: the move then keeps the current CID), or when the session closes.
   */
  private waitForSpareCid(): Promise<void> {
    const c = this.connection;
    const ms = Math.min(250, Math.max(50, 4 * c.rtt.smoothed + 2 * c.options.maxAckDelayMs));
    return new Promise<void>((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.pathWaiters.delete(check);
        this.off("close", done);
        resolve();
      };
      const check = (): void => {
        if (c.spareCids > 0) done();
      };
      const timer = setTimeout(done, ms);
      this.pathWaiters.add(check);
      this.once("close", done);
    });
  }

  /** Heals a dead NAT mapping: after `autoRebindAfter` keep-alive intervals of silence, rebind once. */
  protected override onTimerTick(now: number): void {
    if (this.autoRebindAfter <= 0 || this.rebinding || this.readyState !== ReadyState.OPEN) return;
    const since = this.connection.lastReceivedAt;
    if (since <= this.lastAutoRebindAt) return; // one try per silence
    if (now - since < this.autoRebindAfter * this.connection.options.keepAliveMs) return;
    this.lastAutoRebindAt = since;
    log("silent for %d ms: rebinding to a fresh local port", Math.round(now - since));
    this.rebind({}).catch((err: Error) => log("automatic rebind failed: %s", err.message));
  }
}

/**
 * Opens a session: TLS 1.3 handshake over an HTTP Upgrade to `url` ("http://host:port"), then the UDP
 * bind. Resolves once the server answered over UDP. Rejects with a FastnetError naming the cause:
 * CERTIFICATE_REJECTED, HANDSHAKE_FAILED, HANDSHAKE_TIMEOUT, SERVER_BUSY (a 503, or a full server,
 * after the retries), SERVER_UNREACHABLE (the network reported the UDP port closed), BIND_TIMEOUT (no
 * answer over UDP), INVALID_OPTION (an unknown or invalid option).
 */
export async function connect(url: string, options: ConnectOptions = {}): Promise<FastnetClientSession> {
  checkOptionKeys(options, CONNECT_OPTION_KEYS, "connect() options");
  const sessionOptions = resolveOptions(DEFAULT_SESSION_OPTIONS, options);
  const endpointOptions = resolveOptions(DEFAULT_ENDPOINT_OPTIONS, options);
  const aead = selectAeadBackend(endpointOptions.aead);
  // A 503 (the server's handshake queue is full, or an upgrade waited too long in it) is retried with
  // jittered, growing pauses within the handshake timeout: players behind one NAT address joining at
  // once spread themselves out instead of failing.
  const hs = await retryWhenBusy(() => performHandshake({
    url,
    path: options.handshakePath,
    hello: {
      path: options.path ?? "/",
      headers: options.headers,
      params: transportParams(sessionOptions),
    },
    ca: options.tls?.ca,
    rejectUnauthorized: options.tls?.rejectUnauthorized,
    servername: options.tls?.servername,
    fingerprint: options.fingerprint !== undefined ? parseFingerprint(options.fingerprint) : undefined,
    pinAnnouncedFingerprint: options.pinAnnouncedFingerprint,
    timeoutMs: endpointOptions.handshakeTimeoutMs,
  }), { budgetMs: endpointOptions.handshakeTimeoutMs, isBusy: (err) => isServerBusy(err) && !isFullServerReject(err) });
  let socket: dgram.Socket | null = null;
  try {
    const host = isIP(hs.accept.udpHost) ? hs.accept.udpHost : (await lookup(hs.accept.udpHost)).address;
    socket = await openSocket(host, hs.accept.udpPort, options.localAddress, options.localPort);
    const connection = new Connection({
      role: "client",
      cid: hs.accept.cid,
      keyingMaterial: hs.keyingMaterial,
      aead,
      now: clock(),
      random: randomFillSync,
      alloc: Buffer.allocUnsafe,
      initialRttMs: hs.rttMs,
      peerParams: hs.accept.params,
      options: sessionOptions,
      resetToken: hs.accept.resetToken,
    });
    const s = socket;
    const session: FastnetClientSession = new FastnetClientSession(connection, {
      // A connected socket sends synchronously (no address lookup), so nothing is pending at close.
      send: (d) => session.socket?.send(d),
      closed: () => session.socket?.close(),
    });
    session.localAddress = options.localAddress;
    session.autoRebindAfter = options.autoRebindAfterKeepAlives ?? DEFAULT_AUTO_REBIND_AFTER;
    session.resetToken = hs.accept.resetToken;
    session.tlsProtocol = hs.protocol;
    session.remoteAddress = host;
    session.remotePort = hs.accept.udpPort;
    session.attach(s);
    session.holdDelivery();
    const bound = new Promise<void>((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException): void => {
        // A connected UDP socket reports ICMP port (or host, network) unreachable as ECONNREFUSED
        // (EHOSTUNREACH, ENETUNREACH): fail fast and say so, with its own code rather than a timeout.
        cleanup();
        session.connection.close(1006, "udp unreachable");
        session.drive();
        const code = err.code !== undefined && UNREACHABLE_ERRNO.has(err.code) ? "SERVER_UNREACHABLE" : "BIND_TIMEOUT";
        reject(new FastnetError(code, `UDP bind to ${host}:${hs.accept.udpPort} failed: ${err.code ?? err.message}`, { cause: err }));
      };
      const onOpen = (): void => {
        cleanup();
        resolve();
      };
      const onClose = (code: number, reason: string): void => {
        cleanup();
        const named = /^SERVER_UNREACHABLE\b/.test(reason) ? "SERVER_UNREACHABLE" : "BIND_TIMEOUT";
        reject(new FastnetError(named, `UDP bind to ${host}:${hs.accept.udpPort} failed: ${reason} (code ${code})`));
      };
      const cleanup = (): void => {
        s.off("error", onError);
        session.off("open", onOpen);
        session.off("close", onClose);
      };
      s.on("error", onError);
      session.on("open", onOpen);
      session.on("close", onClose);
    });
    session.drive(); // sends the bind packet
    await bound;
    // Listeners are attached once this promise resolves; deliver what came with the bind answer after.
    setImmediate(() => session.releaseDelivery());
    // The UDP path is proven; the TLS connection has no further use (the server closes it too).
    hs.close();
    return session;
  } catch (err) {
    hs.close();
    try {
      socket?.close();
    } catch {
      // already closed
    }
    throw err;
  }
}

/** Errors a connected UDP socket reports for an ICMP unreachable: the join fails with SERVER_UNREACHABLE. */
const UNREACHABLE_ERRNO = new Set(["ECONNREFUSED", "EHOSTUNREACH", "ENETUNREACH"]);

/** A UDP socket connected to the server, so sends need no address lookup and ICMP errors surface. */
async function openSocket(host: string, port: number, localAddress?: string, localPort?: number): Promise<dgram.Socket> {
  const socket = dgram.createSocket({ type: isIPv6(host) ? "udp6" : "udp4", recvBufferSize: 1 << 20, sendBufferSize: 1 << 20 });
  await new Promise<void>((resolve, reject) => {
    socket.once("error", reject);
    socket.bind(localPort ?? 0, localAddress, () => {
      socket.connect(port, host, () => {
        socket.off("error", reject);
        resolve();
      });
    });
  });
  return socket;
}
