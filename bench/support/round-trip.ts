/**
 * The measuring loop of the round-trip benchmarks (bench/rtt.ts, bench/room.ts): ONE message in flight,
 * each round trip timed with process.hrtime.bigint() from just before the send to the start of the reply
 * callback, the first 4 bytes of the payload carrying a sequence number the reply is checked against.
 */
import type { ServerChild } from "./children.js";

/** One (transport, payload) case: its buffer, its sequence number and its samples (ns per round trip). */
export interface RoundTripCase {
  buf: Uint8Array;
  seq: number;
  samples: Float64Array;
  filled: number;
}

/** A transport's client, as the loop drives it. */
export interface RoundTripClient {
  send(payload: Uint8Array): void;
  onFail: ((err: Error) => void) | null;
  failed: Error | null;
}

/** How one benchmark's replies arrive and are checked. */
export interface RoundTripLink<R> {
  name: string;
  client: RoundTripClient;
  server: ServerChild;
  /** Installs the reply callback (null removes it). */
  onReply(fn: ((reply: R) => void) | null): void;
  /** null when `reply` answers the message with sequence number `seq`, else what is wrong with it. */
  check(reply: R, seq: number, len: number): string | null;
  /** The failure when no reply came for a while, e.g. "no echo for 2000 ms". */
  stalled: string;
  /** How often the watchdog looks for progress; a stall is declared after `stallMs`. */
  watchdogMs: number;
  stallMs: number;
}

/**
 * Runs `count` round trips on a case, one in flight. Stores each in `c.samples` when `record`. Rejects if
 * the client fails, the server child exits, a reply is wrong, or no reply comes for `stallMs`.
 */
export function runRoundTrips<R>(link: RoundTripLink<R>, c: RoundTripCase, count: number, record: boolean): Promise<void> {
  const { client, server, name } = link;
  const buf = c.buf;
  const len = buf.length;
  const samples = c.samples;
  return new Promise<void>((resolve, reject) => {
    let done = 0;
    let seen = -1;
    let stalledTicks = 0;
    let t0 = 0n;
    let finished = false;
    const finish = (err: Error | null): void => {
      if (finished) return;
      finished = true;
      clearInterval(watchdog);
      link.onReply(null);
      client.onFail = null;
      server.onUnexpectedExit = null;
      if (err) reject(err);
      else resolve();
    };
    // Per-sample timeout without a timer per sample: the in-flight round trip is the one that has not
    // completed since the last tick, so no progress for stallMs means that sample timed out.
    const watchdog = setInterval(() => {
      if (done !== seen) {
        seen = done;
        stalledTicks = 0;
      } else if (++stalledTicks * link.watchdogMs >= link.stallMs) {
        finish(new Error(`${name} ${len} B: ${link.stalled} (${done}/${count} round trips of the block done)`));
      }
    }, link.watchdogMs);
    const fire = (): void => {
      const s = ++c.seq;
      buf[0] = s & 0xff;
      buf[1] = (s >>> 8) & 0xff;
      buf[2] = (s >>> 16) & 0xff;
      buf[3] = (s >>> 24) & 0xff;
      t0 = process.hrtime.bigint();
      try {
        client.send(buf);
      } catch (err) {
        finish(new Error(`${name} ${len} B: send failed: ${(err as Error).message}`));
      }
    };
    client.onFail = (err) => finish(err);
    server.onUnexpectedExit = (why) => finish(new Error(`${name}: server child ${why}\n${server.output()}`));
    if (client.failed) return finish(client.failed);
    if (server.unexpectedExit) return finish(new Error(`${name}: server child ${server.unexpectedExit}`));
    link.onReply((reply) => {
      const t1 = process.hrtime.bigint();
      const wrong = link.check(reply, c.seq, len);
      if (wrong !== null) {
        finish(new Error(`${name} ${len} B: ${wrong}`));
        return;
      }
      if (record) samples[c.filled++] = Number(t1 - t0);
      if (++done === count) finish(null);
      else fire();
    });
    fire();
  });
}
