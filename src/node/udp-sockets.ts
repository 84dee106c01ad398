import dgram from "node:dgram";
import { isIPv4, isIPv6 } from "node:net";
import os from "node:os";
import createDebug from "debug";

const log = createDebug("fastnet:udp");

/** Sockets bound per local address at most (the addresses of one host; a bound on handshake-learnt ones). */
export const MAX_ADDRESS_SOCKETS = 64;
/** How often the local addresses are checked for new ones (unref'd timer). */
export const ADDRESS_REFRESH_MS = 5000;

type Bind = (type: "udp4" | "udp6", port: number, host: string) => Promise<dgram.Socket>;

/**
 * For a server bound to all interfaces: one UDP socket per local address (IPv4 and IPv6) on the same
 * port, instead of one wildcard socket, so a reply leaves from the address the client wrote to. A
 * wildcard socket answers from the route's primary address, which a client's connected socket drops
 * when it wrote to a second address (127.0.0.2, a second NIC, an alias). Each session replies through
 * the socket its last authenticated packet came in on. Addresses are read from os.networkInterfaces()
 * at start and every ADDRESS_REFRESH_MS, and a handshake arriving on a local address with no socket
 * yet (127.0.0.2 is local on Linux without being listed) binds one before the client's first datagram.
 */
export class AddressSockets {
  private readonly sockets = new Map<string, dgram.Socket>();
  private readonly binding = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(
    private readonly port: number,
    private readonly bind: Bind,
    private readonly attach: (socket: dgram.Socket) => void,
    /** Whether IPv6 addresses get sockets (the wildcard socket is dual-stack). */
    private readonly ipv6: boolean,
  ) {}

  /**
   * Binds every current local address, then keeps checking for new ones. Fails (closing what it bound)
   * if any of them cannot be bound, e.g. EADDRINUSE: another process holds the port.
   */
  async start(): Promise<void> {
    const addresses = localAddresses().filter((a) => this.usable(a));
    try {
      for (const a of addresses) {
        if (this.sockets.has(a)) continue;
        const socket = await this.bind(isIPv4(a) ? "udp4" : "udp6", this.port, a);
        this.sockets.set(a, socket);
        // Closed while binding (the server shut down during listen): this one is closed with the rest.
        if (this.closed) throw new Error("closed while binding UDP sockets");
        this.attach(socket);
      }
      if (this.sockets.size === 0) throw new Error("no local address to bind UDP to");
    } catch (err) {
      this.close();
      throw err;
    }
    this.timer = setInterval(() => void this.refresh(), ADDRESS_REFRESH_MS);
    this.timer.unref();
  }

  /** The socket bound to `address` (a local address), if there is one. */
  get(address: string): dgram.Socket | undefined {
    return this.sockets.get(normalize(address));
  }

  /** Every socket bound so far. */
  all(): dgram.Socket[] {
    return [...this.sockets.values()];
  }

  get size(): number {
    return this.sockets.size;
  }

  /** Binds a socket for `address` if it is a usable local address without one (e.g. a handshake's local address). */
  async ensure(address: string | undefined): Promise<void> {
    if (this.closed || !address) return;
    const a = normalize(address);
    if (this.sockets.has(a) || this.binding.has(a) || this.sockets.size + this.binding.size >= MAX_ADDRESS_SOCKETS) return;
    if (!this.usable(a)) return;
    this.binding.add(a);
    try {
      const socket = await this.bind(isIPv4(a) ? "udp4" : "udp6", this.port, a);
      if (this.closed) {
        socket.close();
        return;
      }
      this.sockets.set(a, socket);
      this.attach(socket);
      log("udp socket bound to %s:%d", a, this.port);
    } catch (err) {
      // Someone else holds the port on that address: the wildcard socket still receives for it.
      log("no udp socket for %s:%d: %s", a, this.port, (err as Error).message);
    } finally {
      this.binding.delete(a);
    }
  }

  /** The socket any reply may use when a session has none yet (the first one bound). */
  get first(): dgram.Socket | undefined {
    return this.sockets.values().next().value;
  }

  /** IPv4, or IPv6 when enabled; not IPv6 link-local, which needs a zone id to bind. */
  private usable(a: string): boolean {
    if (isIPv4(a)) return true;
    return this.ipv6 && isIPv6(a) && !/^fe[89ab]/i.test(a);
  }

  private async refresh(): Promise<void> {
    await Promise.all(localAddresses().map((a) => this.ensure(a)));
  }

  /** Closes every socket (those already closed are skipped) and the refresh timer; no new ones are bound after this. */
  close(): void {
    this.closed = true;
    clearInterval(this.timer);
    for (const socket of this.sockets.values()) {
      try {
        socket.close();
      } catch {
        // already closed (the primary socket, whose close brought us here)
      }
    }
    this.sockets.clear();
  }
}

function localAddresses(): string[] {
  return Object.values(os.networkInterfaces()).flatMap((list) => (list ?? []).map((i) => normalize(i.address)));
}

/** "::ffff:127.0.0.2" → "127.0.0.2": a dual-stack socket reports IPv4 peers that way. */
function normalize(address: string): string {
  return address.startsWith("::ffff:") && isIPv4(address.slice(7)) ? address.slice(7) : address;
}
