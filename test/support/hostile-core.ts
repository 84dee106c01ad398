/**
 * A hostile client for the sans-IO core: it holds the real session keys of a server-side `Connection`
 * and seals whatever frames a test writes, with packet numbers it chooses. It also opens what the
 * server sends, so a test can see the server's frames (its PATH_CHALLENGEs, its packet numbers).
 * No simulator: the test decides every datagram and the time.
 */
import { AEAD_TAG_LENGTH } from "../../src/protocol/aead.js";
import { Connection, type ConnectionConfig, type ConnectionEvent } from "../../src/protocol/connection.js";
import { AckFrame, FrameType, PATH_DATA_LENGTH, walkFrames } from "../../src/protocol/frames.js";
import { PacketCipher, splitExportedSecrets } from "../../src/protocol/key-schedule.js";
import type { SessionOptions } from "../../src/protocol/options.js";
import { PacketType, parseHeader, writeHeader, type ParsedHeader } from "../../src/protocol/packet-header.js";
import { decodePacketNumber } from "../../src/protocol/packet-number.js";
import { writeVarint } from "../../src/protocol/varint.js";
import { CID_LENGTH, MAX_DATAGRAM_SIZE } from "../../src/protocol/version.js";
import { Prng, fastBackend } from "./sim-network.js";

/** What one of the server's packets held, as far as the tests care. */
export interface OpenedPacket {
  pn: number;
  payload: Uint8Array;
  /** Data of each PATH_CHALLENGE frame in it. */
  challenges: Uint8Array[];
  /** Bytes of the datagram. */
  size: number;
}

export class HostileClient {
  readonly server: Connection;
  readonly cid: Uint8Array;
  readonly keyingMaterial: Uint8Array;
  /** Next packet number `send` uses. */
  pn = 0;
  now: number;
  /** Events the server produced (moved here by `poll`). */
  readonly events: ConnectionEvent[] = [];
  /** Every datagram the server sent, opened. */
  readonly received: OpenedPacket[] = [];
  /** Client-to-server ciphers by key generation. */
  private readonly sealers: PacketCipher[];
  private readonly open: PacketCipher;
  private largestFromServer = -1;
  private readonly header: ParsedHeader = { type: PacketType.Data, keyPhase: 0, pnLength: 1, truncatedPn: 0, headerLength: 0 };

  constructor(seed: number, options: Partial<SessionOptions> = {}, config: Partial<ConnectionConfig> = {}) {
    const rng = new Prng(seed);
    this.cid = rng.bytes(CID_LENGTH);
    this.keyingMaterial = rng.bytes(64);
    this.now = 1_000_000;
    const serverRng = rng.fork();
    this.server = new Connection({
      role: "server",
      cid: this.cid,
      keyingMaterial: this.keyingMaterial,
      aead: fastBackend(),
      now: this.now,
      random: (o) => void serverRng.fill(o),
      options,
      initialRttMs: 10,
      ...config,
    });
    const secrets = splitExportedSecrets(this.keyingMaterial);
    this.sealers = [new PacketCipher(fastBackend(), secrets.clientToServer)];
    this.open = new PacketCipher(fastBackend(), secrets.serverToClient);
  }

  /**
   * Seals `frames` under packet number `pn` (4-byte encoding) with the key of `generation` (key
   * updates; the phase bit is its low bit). Pads a Bind to the full size.
   */
  packet(frames: Uint8Array, pn: number, type: PacketType = PacketType.Data, generation = 0): Uint8Array {
    const headerLength = 1 + CID_LENGTH + 4;
    let payload = frames;
    if (type === PacketType.Bind) {
      payload = new Uint8Array(MAX_DATAGRAM_SIZE - headerLength - AEAD_TAG_LENGTH); // PADDING is 0x00
      payload.set(frames);
    }
    const out = new Uint8Array(headerLength + payload.length + AEAD_TAG_LENGTH);
    writeHeader(out, type, (generation & 1) as 0 | 1, this.cid, pn, 4);
    while (this.sealers.length <= generation) this.sealers.push(this.sealers[this.sealers.length - 1]!.next());
    this.sealers[generation]!.seal(out, headerLength, pn, out.subarray(0, headerLength), payload);
    return out;
  }

  /** Sends `frames` in the next packet; returns the server's verdict (it then transmits nothing yet). */
  send(frames: Uint8Array, type: PacketType = PacketType.Data): number {
    return this.server.handleDatagram(this.packet(frames, this.pn++, type), this.now);
  }

  /**
   * Opens the server with a padded Bind holding a PING, as an honest client would, and polls its
   * answer. With `answer` (default) it then answers the server's PATH_CHALLENGE, proving its address.
   */
  bind(answer = true): void {
    this.send(Uint8Array.of(FrameType.Ping), PacketType.Bind);
    const reply = this.poll();
    if (this.server.state !== "open") throw new Error("the server did not open");
    if (answer) {
      this.answer(reply);
      this.poll();
    }
  }

  /** Answers every PATH_CHALLENGE in `packets` (one PATH_RESPONSE frame each, in one packet). */
  answer(packets: OpenedPacket[]): number {
    const responses = packets.flatMap((p) => p.challenges.map((c) => pathFrame(FrameType.PathResponse, c)));
    return responses.length > 0 ? this.send(frames(...responses)) : -1;
  }

  /** Moves the server's transmissions and events into `received` / `events`; returns the new packets. */
  poll(): OpenedPacket[] {
    const fresh: OpenedPacket[] = [];
    for (let d = this.server.pollTransmit(this.now); d !== null; d = this.server.pollTransmit(this.now)) {
      const opened = this.openPacket(d);
      if (opened) fresh.push(opened);
    }
    this.received.push(...fresh);
    for (let e = this.server.pollEvent(); e; e = this.server.pollEvent()) this.events.push(e);
    return fresh;
  }

  /** Runs the server's timers at `t`, then polls. */
  tick(t: number): OpenedPacket[] {
    this.now = Math.max(this.now, t);
    this.server.handleTimeout(this.now);
    return this.poll();
  }

  /** The server's close event, if any. */
  closeEvent(): Extract<ConnectionEvent, { type: "close" }> | undefined {
    return this.events.find((e): e is Extract<ConnectionEvent, { type: "close" }> => e.type === "close");
  }

  /** Largest packet number the server sent (and we opened). */
  get largestServerPn(): number {
    return this.largestFromServer;
  }

  private openPacket(d: Uint8Array): OpenedPacket | null {
    const h = this.header;
    if (!parseHeader(d, h)) return null;
    const pn = decodePacketNumber(this.largestFromServer, h.truncatedPn, h.pnLength * 8);
    const payload = this.open.open(pn, d.subarray(0, h.headerLength), d.subarray(h.headerLength));
    if (!payload) return null;
    if (pn > this.largestFromServer) this.largestFromServer = pn;
    const copy = payload.slice();
    return { pn, payload: copy, challenges: findChallenges(copy), size: d.length };
  }
}

/** Data of the PATH_CHALLENGE frames in a payload. */
function findChallenges(p: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  const ignore = (): void => {};
  walkFrames(
    p,
    {
      onPing: ignore,
      onAck: ignore,
      onStream: ignore,
      onDatagram: ignore,
      onClose: ignore,
      onPathChallenge: (d) => void out.push(d.slice()),
      onPathResponse: ignore,
    },
    new AckFrame(),
    { ackEliciting: false },
  );
  return out;
}

// ------------------------------------------------------------------------------------------------ frames

/** Concatenates frames into one payload. */
export function frames(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** An ACK frame for [smallest, largest] (one range) with zero delay. */
export function ackFrame(largest: number, smallest = largest): Uint8Array {
  const buf = new Uint8Array(32);
  let o = 0;
  buf[o++] = FrameType.Ack;
  o = writeVarint(buf, o, largest);
  o = writeVarint(buf, o, 0);
  o = writeVarint(buf, o, 0);
  o = writeVarint(buf, o, largest - smallest);
  return buf.slice(0, o);
}

/** A STREAM frame carrying `data` at `offset`. */
export function streamFrame(offset: number, data: Uint8Array): Uint8Array {
  const buf = new Uint8Array(1 + 8 + 8 + data.length);
  let o = 0;
  buf[o++] = FrameType.Stream;
  o = writeVarint(buf, o, offset);
  o = writeVarint(buf, o, data.length);
  buf.set(data, o);
  return buf.slice(0, o + data.length);
}

export function pathFrame(type: 0x06 | 0x07, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(1 + PATH_DATA_LENGTH);
  out[0] = type;
  out.set(data.subarray(0, PATH_DATA_LENGTH), 1);
  return out;
}

export const PING = Uint8Array.of(FrameType.Ping);

/** The stream bytes of one message: varint length, then `body`. */
export function message(body: Uint8Array): Uint8Array {
  const buf = new Uint8Array(8 + body.length);
  const o = writeVarint(buf, 0, body.length);
  buf.set(body, o);
  return buf.slice(0, o + body.length);
}
