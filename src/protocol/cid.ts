import { hmac, type _HMAC } from "@noble/hashes/hmac.js";
import { sha256, type _SHA256 } from "@noble/hashes/sha2.js";
import { CID_LENGTH } from "./version.js";

/**
 * Self-authenticating connection IDs in the QUIC-LB layout (draft-ietf-quic-load-balancers):
 *
 *   byte 0            config octet: 3 config-rotation bits, then 5 bits = CID_LENGTH - 1 (11)
 *   bytes 1..1+L      server id, L = 0..3 bytes (what a CID-aware load balancer routes on)
 *   then              random nonce, 7 - L bytes (at least 4: 32 unpredictable bits)
 *   last 4 bytes      tag = HMAC-SHA256(cid_key, the 8 bytes before it), truncated to 4 bytes
 *
 * `cid_key` comes from the same long-lived secret as the stateless reset key (another label), so a
 * restarted server with the same secret recognizes the CIDs of its earlier incarnation. Only a CID
 * whose tag verifies can draw a stateless reset: random traffic needs 2^32 guesses per reply.
 */

/** Bytes of the keyed tag at the end of every CID. */
export const CID_TAG_LENGTH = 4;
/** Bytes the tag covers: config octet, server id and nonce. */
export const CID_TAGGED_LENGTH = CID_LENGTH - CID_TAG_LENGTH;
/** Largest server id that still leaves a 4-byte nonce (2^32 guesses per server id). */
export const MAX_SERVER_ID_LENGTH = 3;
/** Label of the CID key derivation: cid_key = HMAC-SHA256(key = label, data = secret). */
export const CID_KEY_LABEL = "fastnet cid v2";

const encoder = new TextEncoder();

/** The CID tag key for a long-lived server secret (the statelessResetKey or the TLS key). */
export function deriveCidKey(secret: Uint8Array): Uint8Array {
  return hmac(sha256, encoder.encode(CID_KEY_LABEL), secret);
}

/** First octet of the CIDs issued under QUIC-LB config `configId` (0..6; 7 is reserved). */
export function cidConfigOctet(configId = 0): number {
  if (!Number.isInteger(configId) || configId < 0 || configId > 6) throw new RangeError("config id must be 0..6 (7 is reserved by QUIC-LB)");
  return (configId << 5) | (CID_LENGTH - 1);
}

/**
 * Issues and checks the CIDs of one server (one key, one server id). `verify` runs for every datagram
 * with an unknown CID, so it reuses one HMAC state and scratch buffers: no buffer per call.
 */
export class CidAuthority {
  readonly serverId: Uint8Array;
  readonly configOctet: number;
  private readonly base: _HMAC<_SHA256>;
  private work: _HMAC<_SHA256> | undefined;
  private readonly input = new Uint8Array(CID_TAGGED_LENGTH);
  private readonly digest = new Uint8Array(32);

  constructor(cidKey: Uint8Array, serverId: Uint8Array = new Uint8Array(0), configId = 0) {
    if (serverId.length > MAX_SERVER_ID_LENGTH) {
      throw new RangeError(`server id is ${serverId.length} bytes; at most ${MAX_SERVER_ID_LENGTH} fit in a ${CID_LENGTH}-byte CID`);
    }
    this.serverId = serverId.slice();
    this.configOctet = cidConfigOctet(configId);
    this.base = hmac.create(sha256, cidKey);
  }

  /** A new CID: config octet, server id, random nonce from `random`, tag. */
  generate(random: (out: Uint8Array) => void): Uint8Array {
    const cid = new Uint8Array(CID_LENGTH);
    random(cid);
    cid[0] = this.configOctet;
    cid.set(this.serverId, 1);
    this.tag(cid, 0);
    cid.set(this.digest.subarray(0, CID_TAG_LENGTH), CID_TAGGED_LENGTH);
    return cid;
  }

  /**
   * True when the CID at `buf[offset..]` has our config octet and server id and its tag verifies:
   * this server (or an earlier one with the same key) issued it.
   */
  verify(buf: Uint8Array, offset: number): boolean {
    if (buf.length < offset + CID_LENGTH || buf[offset] !== this.configOctet) return false;
    const sid = this.serverId;
    for (let i = 0; i < sid.length; i++) if (buf[offset + 1 + i] !== sid[i]) return false;
    this.tag(buf, offset);
    let diff = 0;
    for (let i = 0; i < CID_TAG_LENGTH; i++) diff |= this.digest[i]! ^ buf[offset + CID_TAGGED_LENGTH + i]!;
    return diff === 0;
  }

  /** HMAC of the tagged part of the CID at `buf[offset..]` into `this.digest`. */
  private tag(buf: Uint8Array, offset: number): void {
    for (let i = 0; i < CID_TAGGED_LENGTH; i++) this.input[i] = buf[offset + i]!;
    const h = (this.work = this.base._cloneInto(this.work));
    h.update(this.input);
    h.digestInto(this.digest);
  }
}

/** Reads the server id of `length` bytes back from a CID (what a load balancer does). */
export function cidServerId(cid: Uint8Array, length: number): Uint8Array {
  return cid.slice(1, 1 + length);
}

/** Hex form, for logs and maps outside the hot path. */
export function cidToHex(cid: Uint8Array): string {
  let s = "";
  for (const b of cid) s += b.toString(16).padStart(2, "0");
  return s;
}
