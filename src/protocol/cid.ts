import { CID_LENGTH } from "./version.js";

/**
 * Connection IDs in the QUIC-LB layout (draft-ietf-quic-load-balancers): a first octet with three
 * config-rotation bits and five bits giving the length of the rest, then the server id, then random
 * bits. A CID-aware load balancer reads the server id to route a packet to its process whatever the
 * client's address; the random part keeps IDs unguessable.
 */

/** Largest server id that still leaves 4 random bytes (2^32 guesses per server id). */
export const MAX_SERVER_ID_LENGTH = CID_LENGTH - 1 - 4;

export function generateCid(random: (out: Uint8Array) => void, serverId: Uint8Array = new Uint8Array(0), configId = 0): Uint8Array {
  if (serverId.length > MAX_SERVER_ID_LENGTH) {
    throw new RangeError(`server id is ${serverId.length} bytes; at most ${MAX_SERVER_ID_LENGTH} fit in an ${CID_LENGTH}-byte CID`);
  }
  if (!Number.isInteger(configId) || configId < 0 || configId > 6) throw new RangeError("config id must be 0..6 (7 is reserved by QUIC-LB)");
  const cid = new Uint8Array(CID_LENGTH);
  random(cid);
  cid[0] = (configId << 5) | (CID_LENGTH - 1);
  cid.set(serverId, 1);
  return cid;
}

/** True when `cid` has the config octet we use and starts with `serverId`: it may be a CID we issued. */
export function cidCouldBeOurs(cid: Uint8Array, serverId: Uint8Array = new Uint8Array(0), configId = 0): boolean {
  if (cid.length < CID_LENGTH || cid[0] !== ((configId << 5) | (CID_LENGTH - 1))) return false;
  for (let i = 0; i < serverId.length; i++) if (cid[1 + i] !== serverId[i]) return false;
  return true;
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
