/** Wire protocol version. Bound into the TLS exporter context, so peers of different versions derive different keys. */
export const PROTOCOL_VERSION = 1;

/**
 * TLS exporter label (RFC 5705 / RFC 8446 §7.5). Private labels must start with "EXPERIMENTAL";
 * the version in the label lets a future v2 derive unrelated keys even from the same TLS session.
 */
export const EXPORTER_LABEL = "EXPERIMENTAL fastnet v1";

/** Bytes exported from TLS: a 32-byte secret per direction. */
export const EXPORTER_LENGTH = 64;

/** Connection ID length in bytes (QUIC-LB layout: config octet, server id, random). */
export const CID_LENGTH = 8;

/** Upper bound of every datagram this protocol sends or accepts (RFC 9000 §14 minimum path MTU). */
export const MAX_DATAGRAM_SIZE = 1200;

/** Exporter context: version byte followed by the connection ID, so keys are bound to the CID. */
export function exporterContext(cid: Uint8Array): Uint8Array {
  const ctx = new Uint8Array(1 + cid.length);
  ctx[0] = PROTOCOL_VERSION;
  ctx.set(cid, 1);
  return ctx;
}
