/** The close codes a session can carry on the wire: integers 0..65535 (anything else is refused by the core). */
export function isCloseCode(code: unknown): code is number {
  return typeof code === "number" && Number.isInteger(code) && code >= 0 && code <= 0xffff;
}

/** A close reason as text: what Colyseus or a user passes may be undefined or not a string. */
export function closeReasonText(reason: unknown): string {
  return typeof reason === "string" ? reason : reason === undefined || reason === null ? "" : String(reason);
}
