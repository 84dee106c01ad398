/**
 * WebSocket's "no status received" (RFC 6455 §7.4.1): what a side reports, and what fastnet carries on
 * the wire, when the closing application gave no code. The Colyseus SDK closes this way for an
 * unconsented leave (`room.leave(false)`); both the SDK and the room read it as a drop (onDrop and
 * reconnection), not as a leave.
 */
export const NO_STATUS_RECEIVED = 1005;

/** The close codes a session can carry on the wire: integers 0..65535 (anything else is refused by the core). */
export function isCloseCode(code: unknown): code is number {
  return typeof code === "number" && Number.isInteger(code) && code >= 0 && code <= 0xffff;
}

/** A close reason as text: what Colyseus or a user passes may be undefined or not a string. */
export function closeReasonText(reason: unknown): string {
  return typeof reason === "string" ? reason : reason === undefined || reason === null ? "" : String(reason);
}
