/**
 * The lossy path of bench/soak.ts: a loopback UDP relay between the soak's clients and its server.
 * Clients send to the relay (the server advertises it with `publicAddress`/`publicPort`); each client
 * socket gets its own upstream socket towards the server, as a NAT gives each flow its own mapping, so
 * a client that rebinds reaches the server from a new address (a migration). Every datagram, either
 * way, is dropped with probability `loss`, sent twice with probability `duplicate`, and held back a few
 * milliseconds (so it arrives after later ones) with probability `reorder`. Flows idle for FLOW_IDLE_MS
 * are forgotten and their upstream sockets closed; at most MAX_FLOWS exist at once.
 */
import dgram from "node:dgram";
import type { Rng } from "./fuzz-rng.js";

const HOST = "127.0.0.1";
const FLOW_IDLE_MS = 30_000;
const MAX_FLOWS = 512;
/** Datagrams held back for reordering at once, at most. */
const MAX_DELAYED = 256;
const REORDER_DELAY_MS = [2, 15] as const;

export interface RelayOptions {
  loss: number;
  duplicate: number;
  reorder: number;
}

interface Flow {
  upstream: dgram.Socket;
  client: { address: string; port: number };
  lastUsed: number;
}

export class SoakRelay {
  readonly stats = { toServer: 0, toClient: 0, dropped: 0, duplicated: 0, reordered: 0, flowsOpened: 0, flowsExpired: 0, flowsRefused: 0 };
  private readonly front = dgram.createSocket("udp4");
  private readonly flows = new Map<string, Flow>();
  /** Client sockets whose path is dead, both ways (a client that vanished); forgotten with their flow. */
  private readonly dead = new Set<string>();
  private serverPort = 0;
  private delayed = 0;
  private readonly timers = new Set<NodeJS.Timeout>();
  private sweeper: NodeJS.Timeout | null = null;
  private closed = false;

  constructor(
    private readonly opts: RelayOptions,
    private readonly rng: Rng,
  ) {}

  /** Binds the client-facing socket on loopback (OS-chosen port); returns the port. */
  async listen(): Promise<number> {
    await bind(this.front);
    this.front.on("message", (msg, rinfo) => this.fromClient(msg, rinfo));
    this.front.on("error", () => {});
    this.sweeper = setInterval(() => this.sweep(), 5_000);
    this.sweeper.unref();
    return this.front.address().port;
  }

  /** The server's UDP port, once it is known. */
  setServer(port: number): void {
    this.serverPort = port;
  }

  /** Cuts the path of the client socket at address:port for good, both ways. */
  cut(address: string, port: number): void {
    this.dead.add(`${address}:${port}`);
  }

  get flowCount(): number {
    return this.flows.size;
  }

  private fromClient(msg: Buffer, rinfo: dgram.RemoteInfo): void {
    if (this.closed || this.serverPort === 0) return;
    const key = `${rinfo.address}:${rinfo.port}`;
    if (this.dead.has(key)) {
      this.stats.dropped++;
      return;
    }
    let flow = this.flows.get(key);
    if (!flow) {
      if (this.flows.size >= MAX_FLOWS) {
        this.stats.flowsRefused++;
        return;
      }
      const upstream = dgram.createSocket("udp4");
      const f: Flow = { upstream, client: { address: rinfo.address, port: rinfo.port }, lastUsed: Date.now() };
      upstream.on("message", (m) => {
        if (this.dead.has(key)) {
          this.stats.dropped++;
          return;
        }
        f.lastUsed = Date.now();
        this.forward(m, (d) => this.front.send(d, f.client.port, f.client.address), "toClient");
      });
      upstream.on("error", () => {});
      upstream.bind(0, HOST);
      this.flows.set(key, f);
      this.stats.flowsOpened++;
      flow = f;
    }
    flow.lastUsed = Date.now();
    const up = flow.upstream;
    this.forward(msg, (d) => up.send(d, this.serverPort, HOST), "toServer");
  }

  /** Applies loss, duplication and reordering to one datagram. */
  private forward(msg: Buffer, send: (d: Buffer) => void, dir: "toServer" | "toClient"): void {
    const rng = this.rng;
    if (rng.chance(this.opts.loss)) {
      this.stats.dropped++;
      return;
    }
    this.stats[dir]++;
    const copies = rng.chance(this.opts.duplicate) ? 2 : 1;
    if (copies === 2) this.stats.duplicated++;
    for (let i = 0; i < copies; i++) {
      if (this.delayed < MAX_DELAYED && rng.chance(this.opts.reorder)) {
        this.stats.reordered++;
        this.delayed++;
        const t = setTimeout(() => {
          this.timers.delete(t);
          this.delayed--;
          if (!this.closed) send(msg);
        }, rng.range(...REORDER_DELAY_MS));
        this.timers.add(t);
      } else send(msg);
    }
  }

  private sweep(): void {
    const now = Date.now();
    for (const [key, f] of this.flows) {
      if (now - f.lastUsed < FLOW_IDLE_MS) continue;
      this.flows.delete(key);
      this.dead.delete(key);
      f.upstream.close();
      this.stats.flowsExpired++;
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.sweeper) clearInterval(this.sweeper);
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    for (const f of this.flows.values()) f.upstream.close();
    this.flows.clear();
    this.front.close();
  }
}

function bind(socket: dgram.Socket): Promise<void> {
  return new Promise((resolve, reject) => {
    socket.once("error", reject);
    socket.bind(0, HOST, () => {
      socket.off("error", reject);
      resolve();
    });
  });
}
