/**
 * The receive-path targets of bench/fuzz.ts: one open Connection (role server or client) fed packets
 * that a fuzzing peer seals with the REAL keys of the session, so mutated frames get past the AEAD and
 * reach the frame parser and the state machine. The peer starts from a genuine handshake-less pair
 * (keying material, CID) opened by a real Bind exchange, then forges every packet itself:
 *   - frames from fuzz-frames.ts (plausible sequences of every type, then frame-level and byte-level
 *     mutations), sealed under the current, next or previous key phase, with packet numbers in order,
 *     replayed, jumping, or with a wrong length;
 *   - a share of raw mutations of sealed datagrams (header, CID, tag) and exact replays, for the drop paths;
 *   - client target: now and then a datagram ending in the stateless reset token.
 * Between inputs the target's own API is used as an application or driver would (send, sendUnreliable,
 * key update, path validation, CID switches, close, and close codes it must refuse) and the clock
 * advances, firing timers the way the Node driver does. The
 * target's packets are opened with its keys, so PATH_RESPONSEs can echo real challenges and ACKs can
 * cover packets it really sent. After every input: events and datagrams are checked, pollTimeout must
 * not be NaN nor stay due after its timers ran (a driver would spin), counters stay finite and >= 0,
 * and heldBytes stays within maxHeldBytes(options), the engine's documented per-session bound.
 */
import { FastnetError } from "../../src/protocol/errors.js";
import { selectAeadBackend } from "../../src/node/aead-select.js";
import type { AeadBackend } from "../../src/protocol/aead.js";
import { AEAD_TAG_LENGTH } from "../../src/protocol/aead.js";
import type { CidIssuer, IssuedCid } from "../../src/protocol/cid-set.js";
import { Connection, maxHeldBytes, type ConnectionEvent } from "../../src/protocol/connection.js";
import { AckFrame, RESET_TOKEN_LENGTH, walkFrames, type FrameVisitor } from "../../src/protocol/frames.js";
import { PacketCipher, splitExportedSecrets } from "../../src/protocol/key-schedule.js";
import type { SessionOptions } from "../../src/protocol/options.js";
import { MAX_PAYLOAD_LENGTH, PacketType, parseHeader, writeHeader, type ParsedHeader } from "../../src/protocol/packet-header.js";
import { decodePacketNumber, packetNumberLength } from "../../src/protocol/packet-number.js";
import { CID_LENGTH, EXPORTER_LENGTH, MAX_DATAGRAM_SIZE } from "../../src/protocol/version.js";
import { DeliveredRanges, encodeFrames, FuzzStream, mutateFrames, randomFrames, type Frame, type PeerView } from "./fuzz-frames.js";
import { concat, mutateBytes, SplicePool } from "./fuzz-mutate.js";
import { Rng } from "./fuzz-rng.js";
import { check, count, nonNegativeCounters, type FuzzEpisode, type FuzzTarget } from "./fuzz-target.js";

/** Virtual clock origin (not zero, on purpose). */
const T0 = 1_000_000;
/** Datagrams one step may produce before it counts as runaway output. */
const MAX_TRANSMITS_PER_STEP = 10_000;
/** Events one input may produce: a full 1 MiB window of 1-byte messages is about 512k. */
const MAX_EVENTS_PER_STEP = 2_000_000;
/** Timer rounds at one instant before a still-due pollTimeout counts as a spin. */
const MAX_TIMER_ROUNDS = 64;
/** Timer firings while the clock advances over one gap. */
const MAX_TIMER_FIRINGS_PER_ADVANCE = 10_000;
/** Bytes of reliable stream the fuzzing peer makes up per episode. */
const STREAM_CAP = 256 * 1024;
/** CIDs a server target may issue per episode (it keeps at most 3 routable; retiring makes room). */
const MAX_ISSUED = 64;

let backend: AeadBackend | null = null;
const aead = (): AeadBackend => (backend ??= selectAeadBackend("auto"));

/** Option sets an episode picks from: the defaults, and small limits that the fuzzer can hit. */
const OPTION_PRESETS: Partial<SessionOptions>[] = [
  {},
  {
    receiveBufferBytes: 8 * 1024,
    maxMessageSize: 4 * 1024,
    sendQueueBytes: 16 * 1024,
    keepAliveMs: 200,
    idleTimeoutMs: 2_000,
    initialWindowPackets: 2,
    ackElicitingThreshold: 1,
    keyUpdateIntervalPackets: 64,
    closePackets: 1,
  },
  { receiveBufferBytes: 64 * 1024, maxMessageSize: 16 * 1024, maxAckDelayMs: 1, initialRttMs: 5, keyUpdateIntervalPackets: 256 },
];

/** One direction's packet protection through key generations: gen 0 from the secret, each next one derived. */
class KeyChain {
  private readonly gens: PacketCipher[];
  constructor(secretCipher: PacketCipher) {
    this.gens = [secretCipher];
  }
  at(gen: number): PacketCipher {
    while (this.gens.length <= gen) this.gens.push(this.gens[this.gens.length - 1]!.next());
    return this.gens[gen]!;
  }
}

/**
 * Server side of the CIDs (cid-set.ts CidIssuer): issues fresh random CIDs, at most MAX_ISSUED per
 * episode, and remembers them, so the fuzzing client can address packets to any of them.
 */
class FuzzCidIssuer implements CidIssuer {
  readonly issued: Uint8Array[] = [];
  retired = 0;
  constructor(private readonly rng: Rng) {}
  issue(): IssuedCid | null {
    if (this.issued.length >= MAX_ISSUED) return null;
    const cid = this.rng.bytes(CID_LENGTH);
    this.issued.push(cid);
    return { cid, resetToken: this.rng.bytes(RESET_TOKEN_LENGTH) };
  }
  retire(): void {
    this.retired++;
  }
}

/** Learns what the target sends: challenge data to echo, CIDs it issued, and the packet numbers it used. */
class TargetObserver {
  private readonly header: ParsedHeader = { type: PacketType.Data, keyPhase: 0, pnLength: 1, truncatedPn: 0, headerLength: 0 };
  private readonly ack = new AckFrame();
  private readonly flags = { ackEliciting: false };
  private gen = 0;
  private largest = -1;
  private readonly visitor: FrameVisitor;

  constructor(
    private readonly keys: KeyChain,
    view: PeerView,
  ) {
    const ignore = (): void => {};
    this.visitor = {
      onPing: ignore,
      onAck: ignore,
      onStream: ignore,
      onDatagram: ignore,
      onClose: ignore,
      // Challenges are what the fuzzing peer may echo; keep the last few.
      onPathChallenge: (data) => {
        view.challenges.push(data.slice());
        if (view.challenges.length > 8) view.challenges.shift();
      },
      onPathResponse: ignore,
      // Sequence numbers the fuzzing client may retire.
      onNewConnectionId: (seq) => {
        if (!view.cidSeqs.includes(seq)) view.cidSeqs.push(seq);
        if (view.cidSeqs.length > 16) view.cidSeqs.shift();
      },
    };
  }

  observe(d: Uint8Array): void {
    const h = this.header;
    if (!parseHeader(d, h)) return;
    const pn = decodePacketNumber(this.largest, h.truncatedPn, h.pnLength * 8);
    let gen = this.gen;
    if (h.keyPhase !== (gen & 1)) gen++;
    const payload = this.keys.at(gen).open(pn, d.subarray(0, h.headerLength), d.subarray(h.headerLength));
    if (payload === null) return;
    if (pn > this.largest) this.largest = pn;
    if (gen > this.gen) this.gen = gen;
    walkFrames(payload, this.visitor, this.ack, this.flags);
  }
}

/** The receive-path episode: a target Connection and the fuzzing peer that forges its input. */
class ReceiveEpisode implements FuzzEpisode {
  private now = T0;
  private readonly target: Connection;
  private readonly sendKeys: KeyChain;
  private gen = 0;
  private pn: number;
  /** Largest packet number of ours the target accepted (what it decodes against). */
  private accepted: number;
  private readonly view: PeerView;
  private readonly observer: TargetObserver;
  private readonly framePool: Frame[][] = [];
  private readonly bytePool = new SplicePool(16);
  private readonly sentPool = new SplicePool(16);
  private readonly resetToken: Uint8Array;
  /** Server target: where its spare CIDs come from. */
  private readonly issuer: FuzzCidIssuer | null;
  /** Client target: CIDs the fuzzing server announced in NEW_CONNECTION_ID frames (it may address packets to them). */
  private readonly announced: Uint8Array[] = [];
  /** The last packet sealed from unmutated frames, and the stream ranges it carries. */
  private lastSealed: { packet: Uint8Array; streams: number[] } | null = null;
  private readonly binding: boolean;
  private left: number;
  private lastState: string;
  private readonly evCheck: (ev: ConnectionEvent) => void;
  /** The documented bound of the target's heldBytes for its options (maxHeldBytes in connection.ts). */
  private readonly heldBound: number;

  /** How the last close event ended the session, for the tally. */
  private ending = "still open at the end of the episode";

  constructor(
    private readonly rng: Rng,
    private readonly role: "server" | "client",
    budget: number,
    private readonly tally: Record<string, number>,
  ) {
    this.left = budget;
    const km = rng.bytes(EXPORTER_LENGTH);
    const cid = rng.bytes(CID_LENGTH);
    const options = rng.pick(OPTION_PRESETS);
    const alloc = rng.chance(0.5) ? (n: number) => Buffer.allocUnsafe(n) : undefined;
    this.issuer = role === "server" ? new FuzzCidIssuer(new Rng("cids", rng.u32())) : null;
    const randomOf = (r: Rng) => (out: Uint8Array) => void r.fill(out);
    const clientRng = new Rng("client", rng.u32());
    const serverRng = new Rng("server", rng.u32());
    this.resetToken = rng.bytes(RESET_TOKEN_LENGTH);
    const mk = (r: "client" | "server"): Connection =>
      new Connection({
        role: r,
        cid,
        keyingMaterial: km,
        aead: aead(),
        now: this.now,
        random: randomOf(r === "client" ? clientRng : serverRng),
        options,
        initialRttMs: rng.chance(0.5) ? rng.range(1, 400) : undefined,
        ...(alloc ? { alloc } : {}),
        ...(r === "client" ? { resetToken: this.resetToken } : {}),
        ...(r === "server" && this.issuer ? { cidIssuer: this.issuer } : {}),
      });
    const client = mk("client");
    const server = mk("server");
    // The server starts binding in some episodes: the fuzzing client then forges the Bind itself.
    this.binding = role === "server" && rng.chance(0.1);
    if (!this.binding) {
      server.handleDatagram(client.pollTransmit(this.now)!, this.now);
      for (let d = server.pollTransmit(this.now); d; d = server.pollTransmit(this.now)) client.handleDatagram(d, this.now);
      while (client.pollEvent()) {}
      while (server.pollEvent()) {}
      check(client.state === "open" && server.state === "open", "pair did not open");
    }
    this.target = role === "server" ? server : client;
    const peer = role === "server" ? client : server;
    const secrets = splitExportedSecrets(km);
    const peerSecret = role === "server" ? secrets.clientToServer : secrets.serverToClient;
    const targetSecret = role === "server" ? secrets.serverToClient : secrets.clientToServer;
    this.sendKeys = new KeyChain(new PacketCipher(aead(), peerSecret));
    this.pn = peer.nextPacketNumber;
    this.accepted = this.pn - 1;
    this.view = {
      targetRole: role,
      targetSent: this.target.nextPacketNumber,
      stream: new FuzzStream(new Rng("stream", rng.u32()), STREAM_CAP, this.target.options.maxMessageSize),
      delivered: new DeliveredRanges(),
      window: this.target.options.receiveBufferBytes,
      challenges: [],
      cidSeqs: [],
      nextCidSeq: 1,
      packetCidSeq: -1,
      calm: rng.chance(0.7),
    };
    this.observer = new TargetObserver(new KeyChain(new PacketCipher(aead(), targetSecret)), this.view);
    this.lastState = this.target.state;
    const o = this.target.options;
    this.heldBound = maxHeldBytes(o);
    const maxMessage = this.target.options.maxMessageSize;
    this.evCheck = (ev) => {
      switch (ev.type) {
        case "message":
          check(ev.data instanceof Uint8Array && ev.data.length <= maxMessage, () => `message of ${ev.data.length} bytes exceeds maxMessageSize ${maxMessage}`);
          break;
        case "datagram":
          check(ev.data instanceof Uint8Array && ev.data.length <= MAX_PAYLOAD_LENGTH, `datagram event too large`);
          break;
        case "close":
          // Close codes are 16-bit (docs/protocol.md §4): a peer's larger code is reported as 1002.
          check(Number.isInteger(ev.code) && ev.code >= 0 && ev.code <= 0xffff && typeof ev.reason === "string", () => `close event with code ${ev.code}`);
          // The reason up to its first number or a peer's free text: few distinct endings.
          this.ending = ev.remote ? `${ev.code} by the peer` : `${ev.code} ${ev.reason.replace(/[\d"(].*$/s, "").slice(0, 60).trim()}`;
          break;
        case "open":
        case "pathValidated":
        case "pathFailed":
          break;
        default:
          check(false, `unknown event ${(ev as { type: string }).type}`);
      }
    };
  }

  generate(): Uint8Array | null {
    if (this.left-- <= 0 || this.target.state === "closed") {
      count(this.tally, `ended ${this.target.state === "closed" ? this.ending : "still open at the end of the episode"}`);
      return null;
    }
    this.view.targetSent = this.target.nextPacketNumber;
    const rng = this.rng;
    const r = rng.float();
    if (r < 0.03 && this.sentPool.items.length > 0) return rng.pick(this.sentPool.items); // exact replay
    if (r < 0.04 && this.role === "client") {
      // Ends in the stateless reset token: the client must take it as a reset (at most once).
      const len = rng.range(21, 60);
      const d = rng.bytes(len);
      d[0] = 0x40 | (d[0]! & 0x3f);
      d.set(this.resetToken, len - RESET_TOKEN_LENGTH);
      return d;
    }
    const sealed = this.seal();
    this.sentPool.add(sealed);
    if (r < 0.18) return mutateBytes(rng, sealed, this.sentPool.items, MAX_DATAGRAM_SIZE + 32, 3);
    return sealed;
  }

  /** A forged packet: frames, mutated or not, sealed with the real keys. */
  private seal(): Uint8Array {
    const rng = this.rng;
    const dcid = this.destinationCid();
    const bind = this.binding && this.target.state === "binding" ? rng.chance(0.9) : rng.chance(0.01);
    let frames: Frame[] = bind && rng.chance(0.5) ? [{ k: "ping" }] : randomFrames(rng, this.view, MAX_PAYLOAD_LENGTH - 8);
    if (rng.chance(this.view.calm ? 0.1 : 0.35)) frames = mutateFrames(rng, frames, this.framePool);
    this.framePool.push(frames);
    if (this.framePool.length > 16) this.framePool.shift();
    let plain = encodeFrames(frames, rng);
    const clean = !rng.chance(this.view.calm ? 0.05 : 0.15);
    if (!clean) plain = mutateBytes(rng, plain, this.bytePool.items, MAX_PAYLOAD_LENGTH + 16);
    this.bytePool.add(plain);

    // Packet number: in order mostly; sometimes replayed or jumping ahead (up to 2^30, which 4 bytes still
    // reach), and now and then far off (beyond what the target can decode: a drop, and the numbers
    // after it do not follow it, or every later packet would be undecodable too).
    let pn = this.pn;
    const pr = rng.float();
    if (pr < 0.04 && this.pn > 0) pn = rng.int(this.pn);
    else if (pr < 0.08) pn = this.pn + rng.range(1, 3000);
    else if (pr < 0.083) pn = this.pn + rng.range(1 << 20, 1 << 30);
    else if (pr < 0.085) pn = Math.min(Number.MAX_SAFE_INTEGER, this.accepted + rng.range(2 ** 31, 2 ** 40));
    if (pn >= this.pn && pr < 0.083) this.pn = pn + 1;
    else if (pn === this.pn) this.pn++;
    let pnLength: number = Math.max(packetNumberLength(pn, this.accepted), rng.chance(0.5) ? 4 : 1);
    if (rng.chance(0.05)) pnLength = rng.range(1, 4);

    // Key phase: the current one mostly; a key update now and then; sometimes a stale or skipped generation.
    let gen = this.gen;
    const gr = rng.float();
    if (gr < 0.005) gen = ++this.gen;
    else if (gr < 0.02 && this.gen > 0) gen = this.gen - 1;
    else if (gr < 0.025) gen = this.gen + 2;

    const type = bind ? PacketType.Bind : PacketType.Data;
    const headerLength = 1 + CID_LENGTH + pnLength;
    for (const f of frames) if (f.k === "newCid" && this.announced.length < 32) this.announced.push(f.cid);
    if (bind && headerLength + plain.length + AEAD_TAG_LENGTH < MAX_DATAGRAM_SIZE && rng.chance(0.95)) {
      plain = concat([plain, new Uint8Array(MAX_DATAGRAM_SIZE - headerLength - AEAD_TAG_LENGTH - plain.length)]);
    }
    if (headerLength + plain.length + AEAD_TAG_LENGTH > MAX_DATAGRAM_SIZE + 64) plain = plain.subarray(0, MAX_DATAGRAM_SIZE + 64 - headerLength - AEAD_TAG_LENGTH);
    const out = new Uint8Array(headerLength + plain.length + AEAD_TAG_LENGTH);
    writeHeader(out, type, (gen & 1) as 0 | 1, dcid, pn, pnLength);
    if (rng.chance(0.01)) out[1 + rng.int(CID_LENGTH)]! ^= 1 << rng.int(8);
    this.sendKeys.at(gen).seal(out, headerLength, pn, out.subarray(0, headerLength), plain);
    if (clean) {
      const streams: number[] = [];
      for (const f of frames) if (f.k === "stream" && f.len === null && typeof f.offset === "number") streams.push(f.offset, f.offset + f.data.length);
      this.lastSealed = { packet: out, streams };
    } else this.lastSealed = null;
    return out;
  }

  /**
   * The CID a forged packet carries: mostly the one the target sends with; sometimes another it knows
   * (server: one it issued, perhaps retired since; client: one the fuzzing server announced).
   */
  private destinationCid(): Uint8Array {
    const rng = this.rng;
    const others = this.issuer ? this.issuer.issued : this.announced;
    if (rng.chance(0.85) || others.length === 0) {
      this.view.packetCidSeq = this.target.cidSequence;
      return this.target.cid;
    }
    const i = rng.int(others.length);
    // The issuer's CIDs have sequence numbers 1, 2, ... in order (0 is the handshake's).
    this.view.packetCidSeq = this.issuer ? i + 1 : -1;
    return others[i]!;
  }

  execute(input: Uint8Array): void {
    const rng = this.rng;
    const t = this.target;
    this.appAction();
    const fromCurrentPath = this.role === "client" || rng.chance(0.95);
    const d = t.dropped;
    const before = [d.malformed, d.unknownCid, d.replay, d.decrypt, d.closed];
    const verdict = t.handleDatagram(input, this.now, fromCurrentPath);
    check(verdict === 0 || verdict === 1 || verdict === 2, `handleDatagram returned ${String(verdict)}`);
    if (verdict !== 0) count(this.tally, "accepted");
    else {
      const after = [d.malformed, d.unknownCid, d.replay, d.decrypt, d.closed];
      const cause = ["malformed", "unknown CID", "replay", "decrypt", "closed"][after.findIndex((v, i) => v !== before[i])];
      count(this.tally, `dropped ${cause ?? "uncounted"}`);
    }
    if (verdict !== 0) {
      // Authenticated: the target decodes later packet numbers against this one.
      const h: ParsedHeader = { type: PacketType.Data, keyPhase: 0, pnLength: 1, truncatedPn: 0, headerLength: 0 };
      if (parseHeader(input, h)) this.accepted = Math.max(this.accepted, decodePacketNumber(this.accepted, h.truncatedPn, h.pnLength * 8));
      const sealed = this.lastSealed;
      if (sealed && sealed.packet === input) for (let i = 0; i < sealed.streams.length; i += 2) this.view.delivered.add(sealed.streams[i]!, sealed.streams[i + 1]!);
    }
    this.step();
    this.advance();
  }

  /** What an application does between datagrams. Only valid calls: API misuse is not the target here. */
  private appAction(): void {
    const rng = this.rng;
    const t = this.target;
    if (t.state !== "open") return;
    const r = rng.float();
    try {
      if (r < 0.1) t.send(rng.bytes(rng.size(Math.min(t.maxMessageSize, 4000))));
      else if (r < 0.15) t.sendUnreliable(rng.bytes(rng.size(t.maxDatagramPayload)));
      else if (r < 0.155) t.initiateKeyUpdate();
      else if (r < 0.16 && this.role === "server") t.startPathValidation(this.now, rng.range(1, MAX_DATAGRAM_SIZE), rng.chance(0.5));
      else if (r < 0.162 && this.role === "server") t.revertPath();
      else if (r < 0.165 && this.role === "client") t.probePath();
      else if (r < 0.1665 && this.role === "client") t.switchCid();
      else if (r < 0.1665 && this.role === "server") this.rng.pick([() => t.rememberValidatedCid(), () => t.restoreValidatedCid(), () => t.keepPreviousCid()])();
      else if (r < 0.167) t.close(rng.pick([1000, 4000, 4001]), "fuzz");
      else if (r < 0.1675) t.abort(rng.pick([1006, 4002]), "fuzz abort");
      else if (r < 0.171) this.badClose();
    } catch (err) {
      // The documented refusals of send(); anything else is a crash.
      if (!(err instanceof FastnetError) || (err.code !== "SEND_QUEUE_FULL" && err.code !== "NOT_OPEN" && err.code !== "MESSAGE_TOO_LARGE")) throw err;
    }
  }

  /** close/abort with a code outside 0..65535 must throw INVALID_CLOSE_CODE and change nothing. */
  private badClose(): void {
    const t = this.target;
    const code = this.rng.pick([-1, 65536, 4000.5, NaN, Infinity, 2 ** 53, -0.5]);
    const before = t.state;
    const closingBefore = t.closing;
    let refused = false;
    try {
      if (this.rng.chance(0.5)) t.close(code, "bad");
      else t.abort(code, "bad");
    } catch (err) {
      if (!(err instanceof FastnetError) || (err.code as string) !== "INVALID_CLOSE_CODE") throw err;
      refused = true;
    }
    check(refused, () => `close code ${code} was accepted`);
    check(t.state === before && t.closing === closingBefore, () => `a refused close code ${code} changed the state (${before} -> ${t.state})`);
  }

  /** Drains events and datagrams as the Node driver does after an input, then runs due timers. */
  private step(): void {
    const t = this.target;
    this.flush();
    for (let round = 0; ; round++) {
      const at = t.pollTimeout();
      check(at === null || (typeof at === "number" && !Number.isNaN(at)), `pollTimeout returned ${String(at)}`);
      if (at === null || at > this.now) break;
      check(round < MAX_TIMER_ROUNDS, () => `pollTimeout stays due (${at} <= now ${this.now}) after ${MAX_TIMER_ROUNDS} timer rounds: a driver would spin (state ${t.state})`);
      t.handleTimeout(this.now);
      this.flush();
    }
    check(t.state !== "closed" || t.pollTimeout() === null, "closed connection still has a deadline");
    check(!(this.lastState === "closed" && t.state !== "closed"), `state went from closed to ${t.state}`);
    this.lastState = t.state;
    if ((this.left & 15) === 0) {
      const stats = t.getStats();
      const bad = nonNegativeCounters(stats);
      check(bad === null, () => `stats counter ${bad}`);
      const held = (stats as { heldBytes?: number }).heldBytes;
      if (held !== undefined) check(held <= this.heldBound, () => `heldBytes ${held} above ${this.heldBound}`);
    }
  }

  private flush(): void {
    const t = this.target;
    let events = 0;
    for (let ev = t.pollEvent(); ev; ev = t.pollEvent()) {
      this.evCheck(ev);
      check(++events <= MAX_EVENTS_PER_STEP, `more than ${MAX_EVENTS_PER_STEP} events from one input`);
    }
    let n = 0;
    for (let d = t.pollTransmit(this.now); d; d = t.pollTransmit(this.now)) {
      check(d.length > 0 && d.length <= MAX_DATAGRAM_SIZE, () => `datagram of ${d.length} bytes`);
      check(++n <= MAX_TRANSMITS_PER_STEP, `more than ${MAX_TRANSMITS_PER_STEP} datagrams from one step`);
      this.observer.observe(d);
    }
    for (let ev = t.pollEvent(); ev; ev = t.pollEvent()) this.evCheck(ev);
  }

  /** Moves the clock forward by a random gap, firing the timers that fall inside it in order. */
  private advance(): void {
    const rng = this.rng;
    const r = rng.float();
    const dt = r < 0.3 ? 0 : r < 0.7 ? rng.float() * 5 : r < 0.99 ? rng.float() * 100 : rng.float() * 3000;
    const until = this.now + dt;
    const t = this.target;
    for (let i = 0; ; i++) {
      const at = t.pollTimeout();
      if (at === null || at > until) break;
      check(i < MAX_TIMER_FIRINGS_PER_ADVANCE, `more than ${MAX_TIMER_FIRINGS_PER_ADVANCE} timer firings within ${dt.toFixed(1)} ms`);
      this.now = Math.max(this.now, at);
      t.handleTimeout(this.now);
      this.step();
    }
    this.now = until;
  }
}

function receiveTarget(role: "server" | "client"): FuzzTarget {
  const tally: Record<string, number> = {};
  return {
    name: role,
    what: `${role} receive path: an open Connection (role ${role}) fed packets sealed with its real keys`,
    episodeInputs: 400,
    start: (rng) => new ReceiveEpisode(rng, role, 400, tally),
    tally,
  };
}

export const serverTarget = receiveTarget("server");
export const clientTarget = receiveTarget("client");
