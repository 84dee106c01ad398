/**
 * The hostile player of bench/soak.ts: the test suite's HostileClient (test/support/hostile-client.ts,
 * real TLS keys, packets it builds and seals itself) cycling through the misbehaviours of issue 7 item 5
 * against the soak server for the whole run, one fresh session per turn:
 *   never-ack        reliable messages the server echoes, and never an ACK (the stall timeout ends it)
 *   ack-never-sent   ACKs of packet numbers the server never used (a protocol violation: 1002)
 *   many-acks        a PATH_CHALLENGE and 100 ACK frames per packet, never acknowledging the responses
 *   challenge-flood  packets full of PATH_CHALLENGEs
 *   fragments        1-byte STREAM pieces with 1-byte holes across the receive window
 *   malformed        frames that do not parse, lengths past the packet, huge varints, unknown types,
 *                    and bad datagrams (runts, reserved bits, failed AEAD, replays)
 *   migration-storm  PINGs from many new sockets on other loopback addresses, never validating them
 * Each turn lasts at most TURN_MS or until the server closes the session, paced at PACKETS_PER_TICK
 * packets every 10 ms; then the player closes the session (CLOSE frame) or, every other turn, vanishes. The session path starts with /soak/hostile so the server leaves it out of its
 * order checks. (Claiming another player's sessionId is a Colyseus-level attack: the soak's server is
 * the engine alone, so it is not part of this cycle.)
 */
import { setTimeout as sleep } from "node:timers/promises";
import { HostileClient, PayloadBuilder, streamFrameSize, type SocketLedger } from "../../test/support/hostile-client.js";
import type { Rng } from "./fuzz-rng.js";

const TURN_MS = 15_000;
const PACKETS_PER_TICK = 5;
const TICK_MS = 10;
const OPEN_TIMEOUT_MS = 5_000;
/** Sockets the migration storm keeps open at once (older ones are closed). */
const STORM_SOCKETS = 8;
const STORM_ADDRESSES = ["127.0.0.5", "127.0.0.6", "127.0.0.7"] as const;

export const BEHAVIOURS = ["never-ack", "ack-never-sent", "many-acks", "challenge-flood", "fragments", "malformed", "migration-storm"] as const;
export type Behaviour = (typeof BEHAVIOURS)[number];

export interface HostileCounts {
  turns: Record<string, number>;
  /** How the server ended hostile sessions: "code reason" -> count ("open" when it did not within the turn). */
  endings: Record<string, number>;
  packets: number;
  openFailures: number;
}

const FF8 = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];

export class SoakHostile {
  readonly counts: HostileCounts = { turns: {}, endings: {}, packets: 0, openFailures: 0 };
  private current: HostileClient | null = null;
  private stopped = false;
  private paused = false;
  private onIdle: (() => void) | null = null;
  private idle = true;

  constructor(
    private readonly url: string,
    private readonly fingerprint: Uint8Array,
    private readonly rng: Rng,
  ) {}

  /** Runs turns, one behaviour after another, until `stop()`; none while paused. */
  async run(): Promise<void> {
    for (let turn = 0; !this.stopped; turn++) {
      if (this.paused) {
        this.idle = true;
        this.onIdle?.();
        while (this.paused && !this.stopped) await sleep(50);
        if (this.stopped) break;
      }
      this.idle = false;
      const behaviour = BEHAVIOURS[turn % BEHAVIOURS.length]!;
      let h: HostileClient;
      try {
        h = await HostileClient.open({ url: this.url, fingerprint: this.fingerprint, path: `/soak/hostile/${behaviour}`, localAddress: "127.0.0.8" });
        this.current = h;
        await h.bind(OPEN_TIMEOUT_MS);
      } catch {
        // The Bind or its answer was lost on the lossy path (it is sent once): try the next turn.
        this.counts.openFailures++;
        this.current?.close();
        this.current = null;
        await sleep(500);
        continue;
      }
      this.counts.turns[behaviour] = (this.counts.turns[behaviour] ?? 0) + 1;
      const until = performance.now() + TURN_MS;
      const going = (): boolean => !this.stopped && !this.paused && h.closedBy === null && performance.now() < until;
      await this.play(behaviour, h, going);
      const ending = h.closedBy ? `${h.closedBy.code} ${h.closedBy.reason}` : "open at the end of the turn";
      this.counts.endings[ending] = (this.counts.endings[ending] ?? 0) + 1;
      // Every other turn, and before a pause (the soak then measures the heap), the player says goodbye
      // with a CLOSE frame, twice for the lossy path; otherwise it just vanishes and the server times it out.
      if (h.closedBy === null && (this.paused || turn % 2 === 0)) {
        for (let i = 0; i < 2; i++) h.send(new PayloadBuilder().raw(0x05).varint(1000).varint(0));
      }
      h.close();
      this.current = null;
    }
  }

  stop(): void {
    this.stopped = true;
    this.current?.close();
  }

  /** Ends the current turn early and starts no other until `resume()`; resolves once no turn runs. */
  pause(): Promise<void> {
    this.paused = true;
    if (this.idle || this.stopped) return Promise.resolve();
    return new Promise((resolve) => {
      this.onIdle = () => {
        this.onIdle = null;
        resolve();
      };
    });
  }

  resume(): void {
    this.paused = false;
  }

  /** Sends `next()` PACKETS_PER_TICK times every TICK_MS while `going()`. */
  private async paced(going: () => boolean, next: (i: number) => void): Promise<void> {
    for (let i = 0; going(); ) {
      for (let k = 0; k < PACKETS_PER_TICK && going(); k++, i++) {
        next(i);
        this.counts.packets++;
      }
      await sleep(TICK_MS);
    }
  }

  private async play(b: Behaviour, h: HostileClient, going: () => boolean): Promise<void> {
    const rng = this.rng;
    switch (b) {
      case "never-ack": {
        // Reliable messages (echoed by the server) and PINGs; never an ACK frame.
        let offset = 0;
        let seq = 0;
        return this.paced(going, (i) => {
          if (i % 2 === 1) return h.send(new PayloadBuilder().ping());
          const body = new Uint8Array(rng.range(100, 1000));
          new DataView(body.buffer).setUint32(0, seq++);
          const m = new PayloadBuilder().varint(body.length).bytes();
          const data = new Uint8Array(m.length + body.length);
          data.set(m);
          data.set(body, m.length);
          h.send(new PayloadBuilder().stream(offset, data));
          offset += data.length;
        });
      }
      case "ack-never-sent":
        return this.paced(going, () => h.send(new PayloadBuilder().ping().ackRange(0, h.largestServerPn + 1 + rng.int(1_000_000))));
      case "many-acks":
        return this.paced(going, (i) => {
          const p = new PayloadBuilder().pathChallenge(counter(i));
          for (let k = 0; k < 100 && p.room > 8; k++) p.ackRange(0, 0);
          h.send(p);
        });
      case "challenge-flood": {
        let n = 0;
        return this.paced(going, () => {
          const p = new PayloadBuilder();
          while (p.room >= 9) p.pathChallenge(counter(n++));
          h.send(p);
        });
      }
      case "fragments": {
        let offset = 1;
        const one = Uint8Array.of(0x2a);
        return this.paced(
          () => going() && offset < h.serverWindow,
          () => {
            const p = new PayloadBuilder();
            while (offset < h.serverWindow && p.room >= streamFrameSize(offset, 1)) {
              p.stream(offset, one);
              offset += 2;
            }
            h.send(p);
          },
        );
      }
      case "malformed":
        return this.paced(going, (i) => this.malformed(h, i));
      case "migration-storm": {
        const storm: SocketLedger[] = [];
        for (let round = 0; going(); round++) {
          if (storm.length < STORM_SOCKETS || round % 10 === 0) {
            const s = await h.addSocket(STORM_ADDRESSES[round % STORM_ADDRESSES.length]!);
            storm.push(s);
            if (storm.length > STORM_SOCKETS) {
              const old = storm.shift()!;
              try {
                old.socket.close();
              } catch {
                // already closed
              }
            }
          }
          for (const s of storm) {
            const p = new PayloadBuilder().ping();
            if (!s.received.isEmpty()) p.ack(s.received.starts, s.received.ends);
            h.send(p, s);
            this.counts.packets++;
          }
          await sleep(20);
        }
        return;
      }
    }
  }

  /** One bad packet or datagram, of kind i modulo the kinds. */
  private malformed(h: HostileClient, i: number): void {
    const p = new PayloadBuilder();
    switch (i % 14) {
      case 0: return h.send(p.raw(0x03).varint(0).varint(5000).raw(1, 2, 3)); // STREAM past the packet
      case 1: return h.send(p.raw(0x04).varint(5000).raw(1)); // DATAGRAM past the packet
      case 2: return h.send(p.raw(0x05).varint(1000).varint(1 << 20).raw(0x41)); // CLOSE reason of 1 MB
      case 3: return h.send(p.ping().raw(0x0a + ((i >> 4) % 0xf6))); // an unknown frame type
      case 4: return h.send(p.raw(0x02, ...FF8, 0, 0, 0)); // ACK of 2^62 - 1
      case 5: return h.send(p.raw(0x02).varint(5).varint(0).varint(2 ** 30).varint(0)); // 2^30 ACK ranges
      case 6: return h.send(p.raw(0x03, ...FF8).varint(1).raw(0)); // STREAM at 2^62 - 1
      case 7: return h.send(p.ping().raw(0x03, 0xc0)); // a varint cut short
      case 8: return h.send(p.raw(0x06, 1, 2, 3)); // PATH_CHALLENGE cut short
      case 9: return h.sendRaw(h.seal(new PayloadBuilder().ping().padding(1300).bytes())); // over 1200 bytes
      case 10: {
        const d = h.seal(new PayloadBuilder().ping().bytes());
        d[d.length - 1]! ^= 1; // fails the AEAD
        return h.sendRaw(d);
      }
      case 11: {
        const d = h.seal(new PayloadBuilder().ping().bytes());
        d[0]! |= 0x04; // a reserved bit
        return h.sendRaw(d);
      }
      case 12: {
        const d = h.seal(new PayloadBuilder().ping().bytes());
        h.sendRaw(d);
        return h.sendRaw(d); // a replay
      }
      default:
        return h.sendRaw(Uint8Array.of(0x40, 1, 2, 3, 4)); // a runt
    }
  }
}

/** Distinct 8-byte challenge data from a counter. */
function counter(n: number): Uint8Array {
  const d = new Uint8Array(8);
  new DataView(d.buffer).setFloat64(0, n);
  return d;
}
