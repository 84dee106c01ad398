import dgram from "node:dgram";
import { once } from "node:events";
import type http from "node:http";
import { isIPv6, type Socket as TcpSocket } from "node:net";
import { FastnetError } from "../protocol/errors.js";
import { AddressSockets } from "./udp-sockets.js";
import { literalLookup } from "./udp-lookup.js";

/** How long close() keeps a socket open for datagrams the kernel did not take at once. */
const SEND_FLUSH_MS = 200;

/** Where every datagram a server socket receives goes, with the socket it came in on. */
export type DatagramHandler = (msg: Buffer, rinfo: dgram.RemoteInfo, socket: dgram.Socket) => void;

/**
 * The UDP sockets of a FastnetServer. With no host: all interfaces, IPv4 and IPv6 alike, as the HTTP
 * server listens: one socket per local address, so replies leave from the address each client wrote
 * to (see AddressSockets). Port 0 (OS-chosen, differing per address) keeps one dual-stack wildcard
 * socket; a host gets one socket bound there.
 */
export class ServerSockets {
  /** The socket replies use when a session has none of its own (null before bind and once closing). */
  primary: dgram.Socket | null = null;
  /** Per-address sockets when bound to all interfaces (null with a host or port 0). */
  private perAddress: AddressSockets | null = null;

  constructor(
    private readonly http: http.Server,
    private readonly onDatagram: DatagramHandler,
    private readonly onError: (err: Error) => void,
  ) {}

  /** Bound UDP port (0 before bind). */
  get port(): number {
    return this.primary?.address().port ?? 0;
  }

  /** Binds; a port someone else holds fails with FastnetError UDP_PORT_IN_USE (naming `tcpPort` if it is the same). */
  async bind(udpPort: number, udpHost: string | undefined, tcpPort: number): Promise<void> {
    try {
      if (udpHost === undefined && udpPort !== 0) {
        const sockets = new AddressSockets(udpPort, bindUdp, (s) => this.attach(s), true);
        this.perAddress = sockets;
        await sockets.start();
        // A TCP connection (matchmaking, handshake) on a local address with no socket yet: 127.0.0.2 is
        // local without being listed. Not an 'upgrade' listener: that would change who answers strays.
        this.http.on("connection", this.onTcpConnection);
        this.primary = sockets.first!;
        return;
      }
      const socket =
        udpHost === undefined
          ? await bindUdp("udp6", udpPort, undefined).catch(() => bindUdp("udp4", udpPort, undefined))
          : await bindUdp(isIPv6(udpHost) ? "udp6" : "udp4", udpPort, udpHost);
      this.attach(socket);
      this.primary = socket;
    } catch (err) {
      throw udpBindError(err, udpPort, udpHost, tcpPort);
    }
  }

  /**
   * Stops sending at once and closes every socket once the kernel took what they hold (at most
   * SEND_FLUSH_MS). Resolves when all are closed.
   */
  close(): Promise<void> {
    const sockets = this.perAddress ? this.perAddress.all() : this.primary ? [this.primary] : [];
    this.primary = null;
    const release = (): void => {
      for (const socket of sockets) closeQuietly(socket);
      this.release();
    };
    if (sockets.length === 0) {
      release();
      return Promise.resolve();
    }
    return flushThenClose(sockets, release);
  }

  /** Closes every socket and the address refresh timer now; no socket is bound after this. */
  release(): void {
    this.http.off("connection", this.onTcpConnection);
    if (this.perAddress) this.perAddress.close();
    else if (this.primary) closeQuietly(this.primary);
    this.perAddress = null;
    this.primary = null;
  }

  private attach(socket: dgram.Socket): void {
    socket.on("message", (msg: Buffer, rinfo: dgram.RemoteInfo) => this.onDatagram(msg, rinfo, socket));
    socket.on("error", this.onError);
  }

  private readonly onTcpConnection = (tcp: TcpSocket): void => {
    void this.perAddress?.ensure(tcp.localAddress);
  };
}

/** Closes `sockets` (through `close`) once their send queues are empty, or after SEND_FLUSH_MS. */
function flushThenClose(sockets: dgram.Socket[], close: () => void): Promise<void> {
  const closed = Promise.all(sockets.map((s) => once(s, "close").catch(() => undefined))).then(() => undefined);
  const queued = (): boolean => sockets.some((s) => sendQueueCount(s) > 0);
  if (!queued()) {
    close();
    return closed;
  }
  const deadline = Date.now() + SEND_FLUSH_MS;
  const poll = (): void => {
    if (queued() && Date.now() < deadline) setTimeout(poll, 1);
    else close();
  };
  setTimeout(poll, 1);
  return closed;
}

/** Datagrams a socket holds that the kernel has not taken yet (0 once closed). */
function sendQueueCount(socket: dgram.Socket): number {
  try {
    return socket.getSendQueueCount();
  } catch {
    return 0;
  }
}

/** Closes a socket that may be closed already. */
export function closeQuietly(socket: dgram.Socket): void {
  try {
    socket.close();
  } catch {
    // ERR_SOCKET_DGRAM_NOT_RUNNING: closed already
  }
}

/**
 * A UDP bind failure as the user should read it: EADDRINUSE becomes FastnetError UDP_PORT_IN_USE,
 * naming the UDP port (the TCP one may well be free) and the option that moves it.
 */
function udpBindError(err: unknown, udpPort: number, udpHost: string | undefined, tcpPort: number): unknown {
  const e = err as NodeJS.ErrnoException & { address?: string };
  if (e?.code !== "EADDRINUSE") return err;
  const address = udpHost ?? e.address;
  const where = `UDP port ${udpPort}${address ? ` (on ${address})` : ""}`;
  const tcp = udpPort === tcpPort ? `; TCP port ${tcpPort} was free, the UDP one is not` : "";
  return new FastnetError(
    "UDP_PORT_IN_USE",
    `${where} is already in use by another process${tcp}. Set the \`udpPort\` option to a free port (fastnet sessions run on UDP), or stop the other process`,
    { cause: err },
  );
}

/**
 * A bound UDP socket (large buffers: one socket serves every session). Its sends to an IP literal go
 * to the kernel synchronously (see literalLookup), so a CLOSE sent just before process.exit() leaves.
 */
function bindUdp(type: "udp4" | "udp6", port: number, host: string | undefined): Promise<dgram.Socket> {
  const socket = dgram.createSocket({ type, ipv6Only: false, recvBufferSize: 4 << 20, sendBufferSize: 4 << 20, lookup: literalLookup });
  return new Promise<dgram.Socket>((resolve, reject) => {
    socket.once("error", (err) => {
      socket.close();
      reject(err);
    });
    socket.bind(port, host, () => {
      socket.removeAllListeners("error");
      resolve(socket);
    });
  });
}
