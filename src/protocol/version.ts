/** Wire protocol version. Bound into the TLS exporter context, so peers of different versions derive different keys. */
export const PROTOCOL_VERSION = 2;

/**
 * TLS exporter label (RFC 5705 / RFC 8446 §7.5). Private labels must start with "EXPERIMENTAL";
 * the version in the label makes each wire version derive unrelated keys even from the same TLS session.
 */
export const EXPORTER_LABEL = "EXPERIMENTAL fastnet v2";

/** Bytes exported from TLS: a 32-byte secret per direction. */
export const EXPORTER_LENGTH = 64;

/**
 * Connection ID length in bytes: QUIC-LB config octet, 0-3 bytes of server id, random nonce, and a
 * 4-byte keyed tag over the bytes before it (see cid.ts). Code uses this constant, never a literal.
 */
export const CID_LENGTH = 12;

/** Upper bound of every datagram this protocol sends or accepts (RFC 9000 §14 minimum path MTU). */
export const MAX_DATAGRAM_SIZE = 1200;

/** Exporter context: version byte followed by the connection ID, so keys are bound to the CID. */
export function exporterContext(cid: Uint8Array): Uint8Array {
  const ctx = new Uint8Array(1 + cid.length);
  ctx[0] = PROTOCOL_VERSION;
  ctx.set(cid, 1);
  return ctx;
}
