/**
 * The clients of bench/soak.ts: each one a real FastnetClientSession (src/node/client.ts) that sends
 * numbered reliable messages and unreliable datagrams to the soak server, which echoes both, and checks
 * every echo: reliable ones must come back exactly once, in order, byte for byte.
 *
 * A reliable message is: 4-byte big-endian sequence number (0, 1, 2, ... per session), 2-byte client
 * id, then bytes (seq * 7 + i) & 0xff, so the content of an echo is checked without keeping copies.
 * Sizes: mostly under 512 bytes, some of a few KiB, a few up to 64 KiB (many packets each).
 */
import { FastnetError } from "../../src/protocol/errors.js";
import { connect, type FastnetClientSession } from "../../src/node/client.js";
import type { Rng } from "./fuzz-rng.js";
import { withTimeout } from "./rtt-clients.js";

const HEADER = 6;
const CONNECT_TIMEOUT_MS = 15_000;
const CLOSE_TIMEOUT_MS = 5_000;

export interface SoakClientCounts {
  /** Reliable messages handed to send() (queued). */
  sent: number;
  /** Reliable echoes received in order and intact. */
  echoed: number;
  /** Echoes out of order, duplicated, or with wrong content. */
  orderErrors: number;
  /** send() refused with SEND_QUEUE_FULL (nothing was queued; not a loss). */
  blocked: number;
  datagramsSent: number;
  datagramsEchoed: number;
}

export class SoakClient {
  readonly counts: SoakClientCounts = { sent: 0, echoed: 0, orderErrors: 0, blocked: 0, datagramsSent: 0, datagramsEchoed: 0 };
  session: FastnetClientSession | null = null;
  /** Set when the session closed without being asked to, or a send failed other than by a full queue. */
  failure: string | null = null;
  private closing = false;
  private waiters = new Set<() => void>();

  constructor(
    readonly id: number,
    private readonly rng: Rng,
  ) {}

  /** Reliable messages sent and not echoed yet. */
  get outstanding(): number {
    return this.counts.sent - this.counts.echoed;
  }

  get localPort(): number {
    try {
      return this.session?.socket?.address().port ?? 0;
    } catch {
      return 0; // not bound (any more)
    }
  }

  get localAddress(): string {
    try {
      return this.session?.socket?.address().address ?? "";
    } catch {
      return "";
    }
  }

  async connect(url: string, fingerprint: string, localAddress: string, extra: { autoRebindAfterKeepAlives?: number } = {}): Promise<void> {
    const s = await withTimeout(connect(url, { fingerprint, path: `/soak/${this.id}`, localAddress, ...extra }), CONNECT_TIMEOUT_MS, `client ${this.id}: connect`);
    this.session = s;
    s.on("message", (m) => this.onEcho(m));
    s.on("datagram", () => this.counts.datagramsEchoed++);
    s.on("close", (code, reason) => {
      if (!this.closing) this.failure ??= `client ${this.id}: session closed unexpectedly (${code} ${reason})`;
      for (const w of this.waiters) w();
    });
  }

  /** Sends one reliable message of a random size; false when the send queue is full (nothing sent). */
  sendMessage(): boolean {
    const s = this.session;
    if (!s || this.failure || this.closing) return false;
    const r = this.rng.float();
    const size = HEADER + (r < 0.89 ? this.rng.int(512) : r < 0.99 ? this.rng.range(512, 4096) : this.rng.range(4096, 64 * 1024));
    const seq = this.counts.sent;
    const m = Buffer.allocUnsafe(size);
    m.writeUInt32BE(seq, 0);
    m.writeUInt16BE(this.id & 0xffff, 4);
    for (let i = HEADER; i < size; i++) m[i] = (seq * 7 + i) & 0xff;
    try {
      s.send(m);
    } catch (err) {
      if (err instanceof FastnetError && err.code === "SEND_QUEUE_FULL") {
        this.counts.blocked++;
        return false;
      }
      this.failure ??= `client ${this.id}: send failed: ${(err as Error).message}`;
      return false;
    }
    this.counts.sent++;
    return true;
  }

  sendDatagram(): void {
    const s = this.session;
    if (!s || this.failure || this.closing) return;
    const d = this.rng.bytes(this.rng.range(8, 900));
    if (s.sendUnreliable(d)) this.counts.datagramsSent++;
  }

  private onEcho(m: Uint8Array): void {
    const b = Buffer.from(m.buffer, m.byteOffset, m.length);
    const seq = b.length >= HEADER ? b.readUInt32BE(0) : -1;
    let ok = seq === this.counts.echoed && b.readUInt16BE(4) === (this.id & 0xffff);
    for (let i = HEADER; ok && i < b.length; i++) if (b[i] !== ((seq * 7 + i) & 0xff)) ok = false;
    if (!ok) {
      this.counts.orderErrors++;
      return;
    }
    this.counts.echoed++;
    if (this.outstanding === 0) for (const w of this.waiters) w();
  }

  /** Resolves once every sent message was echoed (or the session ended), or after `ms`. */
  drained(ms: number): Promise<void> {
    if (this.outstanding === 0 || this.failure) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        if (this.outstanding > 0 && !this.failure && this.session?.readyState === 1) return;
        clearTimeout(timer);
        this.waiters.delete(done);
        resolve();
      };
      const timer = setTimeout(() => {
        this.waiters.delete(done);
        resolve();
      }, ms);
      this.waiters.add(done);
    });
  }

  /** Moves to a new local socket (a migration); rejects as FastnetClientSession.rebind does. */
  rebind(localAddress: string): Promise<void> {
    if (!this.session) return Promise.reject(new Error("not connected"));
    return this.session.rebind({ localAddress });
  }

  /** Closes the session (code 1000) and waits, bounded, for it to end. */
  async close(): Promise<void> {
    const s = this.session;
    this.closing = true;
    if (!s || s.readyState === 3) return;
    const closed = new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, CLOSE_TIMEOUT_MS);
      s.once("close", () => {
        clearTimeout(timer);
        resolve();
      });
    });
    s.close(1000, "soak: leaving");
    await closed;
  }

  /** Stops using the session without telling the server (its path is cut by the relay): the session times out. */
  vanish(): void {
    this.closing = true;
  }
}
