/** Error codes of the public API: stable strings a caller can switch on. */
export type FastnetErrorCode =
  | "MESSAGE_TOO_LARGE"
  | "SEND_QUEUE_FULL"
  | "NOT_OPEN"
  | "HANDSHAKE_FAILED"
  | "HANDSHAKE_TIMEOUT"
  | "CERTIFICATE_REJECTED"
  | "BIND_TIMEOUT"
  | "BACKEND_UNAVAILABLE"
  | "INVALID_OPTION"
  /** `close`/`abort` with a code that is not an integer in 0..65535. */
  | "INVALID_CLOSE_CODE"
  | "SERVER_BUSY"
  /** The network reported the server's UDP port closed and no authenticated packet followed (a killed server). */
  | "SERVER_UNREACHABLE"
  /** Server: the UDP port is held by another process. */
  | "UDP_PORT_IN_USE";

/** The one error type thrown or rejected by this package; `code` says which limit or failure it was. */
export class FastnetError extends Error {
  readonly code: FastnetErrorCode;
  constructor(code: FastnetErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "FastnetError";
    this.code = code;
  }
}
