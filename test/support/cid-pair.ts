/**
 * Two sans-IO Connections whose server issues spare CIDs into a mock session table (as FastnetServer
 * does), plus helpers to seal arbitrary frames under the client's keys (a hostile client holding the
 * session keys) and to read the frames of any packet.
 */
import { CID_LENGTH } from "../../src/protocol/version.js";
import type { CidIssuer } from "../../src/protocol/cid-set.js";
import { Connection } from "../../src/protocol/connection.js";
import { AckFrame, walkFrames, type FrameVisitor } from "../../src/protocol/frames.js";
import { PacketCipher, splitExportedSecrets } from "../../src/protocol/key-schedule.js";
import type { SessionOptions } from "../../src/protocol/options.js";
import { CID_OFFSET, PacketType, parseHeader, writeHeader, type ParsedHeader } from "../../src/protocol/packet-header.js";
import { statelessResetToken } from "../../src/protocol/stateless-reset.js";
import { collect, type OpenPair } from "./migration-core.js";
import { Prng, fastBackend } from "./sim-network.js";

export const hex = (b: Uint8Array): string => Buffer.from(b).toString("hex");

/** The mock session table: CIDs routed to the session, and what was issued and retired. */
export class MockTable {
  readonly routed = new Set<string>();
  readonly issued: Uint8Array[] = [];
  readonly retired: Uint8Array[] = [];
  /** Largest number of CIDs routed at once. */
  maxRouted = 0;
  constructor(
    private readonly rng: Prng,
    readonly resetKey: Uint8Array,
  ) {}

  add(cid: Uint8Array): void {
    this.routed.add(hex(cid));
    this.maxRouted = Math.max(this.maxRouted, this.routed.size);
  }

  readonly issuer: CidIssuer = {
    issue: () => {
      const cid = this.rng.bytes(CID_LENGTH);
      cid[0] = CID_LENGTH - 1;
      this.issued.push(cid);
      this.add(cid);
      return { cid, resetToken: this.token(cid) };
    },
    retire: (cid) => {
      this.routed.delete(hex(cid));
      this.retired.push(cid.slice());
    },
  };

  token(cid: Uint8Array): Uint8Array {
    return statelessResetToken(this.resetKey, cid);
  }
}

export interface CidPair extends OpenPair {
  table: MockTable;
  keyingMaterial: Uint8Array;
}

/** An open pair (bind answered, spares delivered unless `deliverAnswer` is false) with a spare-issuing server. */
export function cidPair(seed: number, options: Partial<SessionOptions> = {}, deliverAnswer = true): CidPair {
  const rng = new Prng(seed);
  const cid = rng.bytes(CID_LENGTH);
  cid[0] = CID_LENGTH - 1;
  const keyingMaterial = rng.bytes(64);
  const table = new MockTable(rng.fork(), rng.bytes(32));
  table.add(cid);
  const resetToken = table.token(cid);
  const now = 1_000_000;
  const aead = fastBackend();
  const params = { maxMessageSize: 512 * 1024, receiveBufferBytes: 1024 * 1024, idleTimeoutMs: 10_000 };
  const clientRng = rng.fork();
  const serverRng = rng.fork();
  const common = { cid, keyingMaterial, aead, now, peerParams: params, options, initialRttMs: 10 };
  const client = new Connection({ ...common, role: "client", random: (o) => void clientRng.fill(o), resetToken });
  const server = new Connection({ ...common, role: "server", random: (o) => void serverRng.fill(o), cidIssuer: table.issuer });
  const p: CidPair = { client, server, cid, resetToken, rng, log: { client: [], server: [] }, now, table, keyingMaterial };
  p.now += 5;
  server.handleDatagram(client.pollTransmit(now)!, p.now);
  for (let d = server.pollTransmit(p.now); d !== null; d = server.pollTransmit(p.now)) if (deliverAnswer) client.handleDatagram(d, p.now);
  collect(p);
  if (server.state !== "open") throw new Error("server did not open");
  return p;
}

/** The CID a datagram carries. */
export const cidOf = (d: Uint8Array): string => hex(d.subarray(CID_OFFSET, CID_OFFSET + CID_LENGTH));

/** Seals `payload` as a Data packet with packet number `pn` under the client's (or server's) send key. */
export function seal(p: CidPair, from: "client" | "server", cid: Uint8Array, pn: number, payload: Uint8Array): Uint8Array {
  const secrets = splitExportedSecrets(p.keyingMaterial);
  const cipher = new PacketCipher(fastBackend(), from === "client" ? secrets.clientToServer : secrets.serverToClient);
  const out = new Uint8Array(1 + CID_LENGTH + 4 + payload.length + 16);
  const h = writeHeader(out, PacketType.Data, 0, cid, pn, 4);
  cipher.seal(out, h, pn, out.subarray(0, h), payload);
  return out;
}

export type SeenFrame =
  | { t: "ncid"; seq: number; cid: string; token: string }
  | { t: "retire"; seq: number }
  | { t: "other"; type: string };

/** The frames of a packet `from` sent, decrypted with its send key (key phase 0, small packet numbers). */
export function framesOf(p: CidPair, from: "client" | "server", d: Uint8Array): SeenFrame[] {
  const h: ParsedHeader = { type: PacketType.Data, keyPhase: 0, pnLength: 1, truncatedPn: 0, headerLength: 0 };
  if (!parseHeader(d, h)) throw new Error("not a packet");
  const secrets = splitExportedSecrets(p.keyingMaterial);
  const cipher = new PacketCipher(fastBackend(), from === "client" ? secrets.clientToServer : secrets.serverToClient);
  // The tests send few packets per side: try the packet numbers that truncate to this one.
  let payload: Uint8Array | null = null;
  for (let k = 0; k < 4 && payload === null; k++) {
    const pn = h.truncatedPn + k * 2 ** (8 * h.pnLength);
    payload = cipher.open(pn, d.subarray(0, h.headerLength), d.subarray(h.headerLength));
  }
  if (payload === null) throw new Error("cannot open the packet");
  const frames: SeenFrame[] = [];
  const other = (type: string) => () => void frames.push({ t: "other", type });
  const visitor: FrameVisitor = {
    onPing: other("ping"),
    onAck: other("ack"),
    onStream: other("stream"),
    onDatagram: other("datagram"),
    onClose: other("close"),
    onPathChallenge: other("challenge"),
    onPathResponse: other("response"),
    onNewConnectionId: (seq, cid, token) => void frames.push({ t: "ncid", seq, cid: hex(cid), token: hex(token) }),
    onRetireConnectionId: (seq) => void frames.push({ t: "retire", seq }),
  };
  if (!walkFrames(payload, visitor, new AckFrame(), { ackEliciting: false })) throw new Error("malformed frames");
  return frames;
}
