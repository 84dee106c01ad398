/**
 * A loopback UDP relay that can cut the path: clients send to the relay, which forwards each client's
 * flow to the server through its own upstream socket, and back. While `cut` is set, every datagram in
 * either direction is dropped (and counted), as a dead network path would; nothing inside the client or
 * server is touched. The server advertises the relay with the FastnetTransport `publicPort` option.
 */
import dgram from "node:dgram";

interface Flow {
  upstream: dgram.Socket;
  address: string;
  port: number;
  /** This flow's path is dead (both ways); flows from new client sockets still pass. */
  dead: boolean;
}

export class UdpRelay {
  /** Drop everything, both ways, while true. */
  cut = false;
  readonly stats = { toServer: 0, toClient: 0, dropped: 0, flows: 0 };
  private readonly front = dgram.createSocket("udp4");
  private readonly flows = new Map<string, Flow>();
  private target: { host: string; port: number } | null = null;
  private closed = false;

  /** Binds the client-facing socket on `host` (OS-chosen port) and returns the port. */
  async listen(host = "127.0.0.1"): Promise<number> {
    await new Promise<void>((resolve, reject) => {
      this.front.once("error", reject);
      this.front.bind(0, host, () => {
        this.front.off("error", reject);
        resolve();
      });
    });
    this.front.on("message", (msg, rinfo) => this.fromClient(msg, rinfo));
    return this.port;
  }

  get port(): number {
    return this.front.address().port;
  }

  /**
   * Kills the path of every flow that exists now, both ways, while new flows (a new client socket)
   * pass: what a client sees when it moves to another network.
   */
  killExistingFlows(): void {
    for (const f of this.flows.values()) f.dead = true;
  }

  /** Where flows go (the server's bound UDP port). */
  setTarget(port: number, host = "127.0.0.1"): void {
    this.target = { host, port };
  }

  private fromClient(msg: Buffer, rinfo: dgram.RemoteInfo): void {
    const key = `${rinfo.address}:${rinfo.port}`;
    let flow = this.flows.get(key);
    if (this.cut || !this.target || this.closed || flow?.dead) {
      this.stats.dropped++;
      return;
    }
    if (!flow) {
      const upstream = dgram.createSocket("udp4");
      flow = { upstream, address: rinfo.address, port: rinfo.port, dead: false };
      const f = flow;
      upstream.on("message", (reply) => {
        if (this.cut || this.closed || f.dead) {
          this.stats.dropped++;
          return;
        }
        this.stats.toClient++;
        this.front.send(reply, f.port, f.address);
      });
      upstream.on("error", () => {});
      upstream.bind(0, this.target.host);
      this.flows.set(key, flow);
      this.stats.flows++;
    }
    this.stats.toServer++;
    // Sends issued while the upstream socket is still binding are queued by node until it is bound.
    flow.upstream.send(msg, this.target.port, this.target.host);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const sockets = [this.front, ...[...this.flows.values()].map((f) => f.upstream)];
    this.flows.clear();
    await Promise.all(sockets.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  }
}
