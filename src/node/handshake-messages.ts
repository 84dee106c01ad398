import { CID_LENGTH, PROTOCOL_VERSION } from "../protocol/version.js";
import { FastnetError } from "../protocol/errors.js";

/**
 * Messages exchanged inside the TLS stream of the handshake: each is a 4-byte big-endian length
 * followed by that many bytes of UTF-8 JSON. The client sends one ClientHello, the server answers
 * with one ServerAccept or ServerReject.
 */

/** Largest JSON body of one handshake message; far above what a hello needs, small enough that a peer cannot make us buffer much. */
export const MAX_HANDSHAKE_MESSAGE_BYTES = 16 * 1024;

/** Length of the stateless reset token carried in ServerAccept. */
export const RESET_TOKEN_LENGTH = 16;

const HEADER_BYTES = 4;

import { MAX_ANNOUNCED_ACK_DELAY_MS, type TransportParams } from "../protocol/options.js";
export type { TransportParams };

/** First message of the client: what it wants to join and its limits. */
export interface ClientHello {
  v: typeof PROTOCOL_VERSION;
  /** Request path and query the UDP session stands for, e.g. the Colyseus room path. */
  path: string;
  headers?: Record<string, string>;
  params: TransportParams;
}

/** Server's answer when the session may proceed over UDP. */
export interface ServerAccept {
  v: typeof PROTOCOL_VERSION;
  /** Connection ID, base64. */
  cid: string;
  udpPort: number;
  udpHost?: string;
  /** Stateless reset token, base64 of 16 bytes. */
  resetToken: string;
  params: TransportParams;
}

/** Server's answer when it refuses the session. */
export interface ServerReject {
  v: typeof PROTOCOL_VERSION;
  error: string;
  code?: number;
}

export type HandshakeMessage = ClientHello | ServerAccept | ServerReject;

/** Frames one message; throws MESSAGE_TOO_LARGE when its JSON exceeds MAX_HANDSHAKE_MESSAGE_BYTES. */
export function encodeHandshakeMessage(msg: HandshakeMessage): Buffer {
  const body = Buffer.from(JSON.stringify(msg), "utf8");
  if (body.length > MAX_HANDSHAKE_MESSAGE_BYTES) {
    throw new FastnetError(
      "MESSAGE_TOO_LARGE",
      `handshake message of ${body.length} bytes exceeds ${MAX_HANDSHAKE_MESSAGE_BYTES}`,
    );
  }
  const out = Buffer.allocUnsafe(HEADER_BYTES + body.length);
  out.writeUInt32BE(body.length, 0);
  body.copy(out, HEADER_BYTES);
  return out;
}

/**
 * Reassembles framed messages from stream chunks of any size. `push` returns the JSON values of
 * every message completed by the chunk. It throws HANDSHAKE_FAILED on an oversized length or
 * malformed JSON, after which the reader stays failed: the stream cannot be resynchronised.
 */
export class MessageReader {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private failure: FastnetError | undefined;

  /** Bytes held that do not yet form a whole message. */
  get pendingBytes(): number {
    return this.buffered;
  }

  push(chunk: Uint8Array): unknown[] {
    if (this.failure) throw this.failure;
    if (chunk.length > 0) {
      this.chunks.push(Buffer.from(chunk)); // a copy: the caller may reuse its buffer
      this.buffered += chunk.length;
    }
    const out: unknown[] = [];
    for (;;) {
      if (this.buffered < HEADER_BYTES) return out;
      const buf = this.flatten();
      const length = buf.readUInt32BE(0);
      // Checked as soon as the header is complete, so an attacker can never make us hold more than one limit's worth.
      if (length > MAX_HANDSHAKE_MESSAGE_BYTES) {
        return this.fail(`handshake message length ${length} exceeds ${MAX_HANDSHAKE_MESSAGE_BYTES}`);
      }
      if (this.buffered < HEADER_BYTES + length) return out;
      const body = buf.subarray(HEADER_BYTES, HEADER_BYTES + length);
      const rest = buf.subarray(HEADER_BYTES + length);
      this.chunks = rest.length > 0 ? [rest] : [];
      this.buffered = rest.length;
      let value: unknown;
      try {
        value = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(body));
      } catch (err) {
        return this.fail(`handshake message is not UTF-8 JSON: ${(err as Error).message}`);
      }
      out.push(value);
    }
  }

  private flatten(): Buffer {
    if (this.chunks.length > 1) this.chunks = [Buffer.concat(this.chunks)];
    return this.chunks[0]!;
  }

  private fail(message: string): never {
    this.chunks = [];
    this.buffered = 0;
    this.failure = new FastnetError("HANDSHAKE_FAILED", message);
    throw this.failure;
  }
}

// --- validation: each parser returns a fresh object holding only the known fields, so unknown fields
// (allowed, for later minor additions) never travel further than here.

function invalid(what: string, detail: string): never {
  throw new FastnetError("HANDSHAKE_FAILED", `invalid ${what}: ${detail}`);
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function expectRecord(what: string, v: unknown): Record<string, unknown> {
  if (!isRecord(v)) invalid(what, `expected an object, got ${describe(v)}`);
  return v;
}

function describe(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "an array";
  return typeof v;
}

/** A number or a (cut) string as JSON, anything else by its kind. */
function quoteScalar(v: unknown): string {
  if (typeof v === "number") return String(v);
  if (typeof v === "string") return JSON.stringify(v.slice(0, 32));
  return describe(v);
}

function expectVersion(what: string, o: Record<string, unknown>): typeof PROTOCOL_VERSION {
  // Only a number is quoted: a hostile hello's `v` may be nested thousands deep (JSON.stringify would overflow the stack).
  if (o.v !== PROTOCOL_VERSION) invalid(what, `unsupported version ${quoteScalar(o.v)}, expected ${PROTOCOL_VERSION}`);
  return PROTOCOL_VERSION;
}

function expectString(what: string, o: Record<string, unknown>, key: string, allowEmpty = false): string {
  const v = o[key];
  if (typeof v !== "string") invalid(what, `${key} must be a string, got ${describe(v)}`);
  if (!allowEmpty && v.length === 0) invalid(what, `${key} must not be empty`);
  return v;
}

function expectInteger(what: string, o: Record<string, unknown>, key: string, min: number, max: number): number {
  const v = o[key];
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < min || v > max) {
    invalid(what, `${key} must be an integer in ${min}..${max}, got ${typeof v === "number" ? v : describe(v)}`);
  }
  return v;
}

/**
 * Validates TransportParams: positive safe integers, `immediateAck` a boolean and `maxAckDelayMs` an
 * integer in 0..16383 when present.
 */
export function parseTransportParams(v: unknown, what = "transport params"): TransportParams {
  const o = expectRecord(what, v);
  const params: TransportParams = {
    maxMessageSize: expectInteger(what, o, "maxMessageSize", 1, Number.MAX_SAFE_INTEGER),
    receiveBufferBytes: expectInteger(what, o, "receiveBufferBytes", 1, Number.MAX_SAFE_INTEGER),
    idleTimeoutMs: expectInteger(what, o, "idleTimeoutMs", 1, Number.MAX_SAFE_INTEGER),
  };
  // Optional (docs/protocol.md §2.3): a peer that predates it sends nothing, and then never gets the frame.
  if (o.immediateAck !== undefined) {
    if (typeof o.immediateAck !== "boolean") invalid(what, `immediateAck must be a boolean, got ${describe(o.immediateAck)}`);
    params.immediateAck = o.immediateAck;
  }
  if (o.maxAckDelayMs !== undefined) params.maxAckDelayMs = expectInteger(what, o, "maxAckDelayMs", 0, MAX_ANNOUNCED_ACK_DELAY_MS);
  return params;
}

/** Validates a decoded ClientHello; throws HANDSHAKE_FAILED naming the offending field. */
export function parseClientHello(v: unknown): ClientHello {
  const what = "client hello";
  const o = expectRecord(what, v);
  const hello: ClientHello = {
    v: expectVersion(what, o),
    path: expectString(what, o, "path"),
    params: parseTransportParams(o.params, `${what} params`),
  };
  if (o.headers !== undefined) {
    if (!isRecord(o.headers)) invalid(what, `headers must be an object, got ${describe(o.headers)}`);
    const headers: Record<string, string> = {};
    for (const [k, val] of Object.entries(o.headers)) {
      if (typeof val !== "string") invalid(what, `header ${JSON.stringify(k)} must be a string, got ${describe(val)}`);
      // defineProperty so that a "__proto__" key stays a plain entry instead of replacing the prototype
      Object.defineProperty(headers, k, { value: val, enumerable: true, writable: true, configurable: true });
    }
    hello.headers = headers;
  }
  return hello;
}

/** Validates a decoded ServerAccept, including that cid (CID_LENGTH bytes) and resetToken are canonical base64 of the right length. */
export function parseServerAccept(v: unknown): ServerAccept {
  const what = "server accept";
  const o = expectRecord(what, v);
  const accept: ServerAccept = {
    v: expectVersion(what, o),
    cid: expectString(what, o, "cid"),
    udpPort: expectInteger(what, o, "udpPort", 1, 65535),
    resetToken: expectString(what, o, "resetToken"),
    params: parseTransportParams(o.params, `${what} params`),
  };
  decodeBase64(accept.cid, CID_LENGTH, `${what} cid`);
  decodeBase64(accept.resetToken, RESET_TOKEN_LENGTH, `${what} resetToken`);
  if (o.udpHost !== undefined) accept.udpHost = expectString(what, o, "udpHost");
  return accept;
}

/** Validates a decoded ServerReject. */
export function parseServerReject(v: unknown): ServerReject {
  const what = "server reject";
  const o = expectRecord(what, v);
  const reject: ServerReject = { v: expectVersion(what, o), error: expectString(what, o, "error", true) };
  if (o.code !== undefined) reject.code = expectInteger(what, o, "code", -(2 ** 31), 2 ** 31 - 1);
  return reject;
}

/** Validates the server's answer: a ServerReject when it carries `error`, else a ServerAccept. */
export function parseServerResponse(v: unknown): ServerAccept | ServerReject {
  const o = expectRecord("server response", v);
  return "error" in o ? parseServerReject(o) : parseServerAccept(o);
}

/** Standard base64 of the bytes. */
export function encodeBase64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString("base64");
}

/**
 * Decodes canonical standard base64 of exactly `length` bytes. Node's decoder skips invalid characters
 * silently, so the text is checked by re-encoding.
 */
export function decodeBase64(text: string, length: number, what: string): Uint8Array {
  const bytes = Buffer.from(text, "base64");
  if (bytes.toString("base64") !== text) invalid(what, "not canonical base64");
  if (bytes.length !== length) invalid(what, `expected ${length} bytes, got ${bytes.length}`);
  return new Uint8Array(bytes);
}
