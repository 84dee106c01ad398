import { createHash } from "node:crypto";
import type http from "node:http";
import type { Duplex } from "node:stream";

/**
 * Answers for HTTP requests that reach the handshake server but are no fastnet handshake, so that no
 * socket waits forever for an answer that never comes: a stray Upgrade gets an HTTP error at once
 * (a WebSocket client a WebSocket close naming the cause), and a plain request to the handshake path
 * a 426.
 */

/** How long a refused connection may stay open for its answer to drain if the peer does not close it. */
export const REFUSAL_LINGER_MS = 1000;

/** WebSocket close code "policy violation" (RFC 6455 §7.4.1): the endpoint will not serve this client. */
const WS_POLICY_VIOLATION = 1008;
/** A close frame's reason: at most 123 bytes of UTF-8 (125 minus the code). */
const WS_MAX_REASON_BYTES = 123;
const WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/** What the refusals say and where the real handshake is. */
export interface StrayContext {
  /** The handshake path, e.g. "/.fastnet". */
  path: string;
  /** The Upgrade token of a handshake, e.g. "fastnet/1". */
  token: string;
  /** What a WebSocket client is told (its close reason). */
  webSocketRefusal: string;
}

/**
 * Refuses an Upgrade that is not a fastnet handshake. A well-formed WebSocket upgrade is accepted and
 * closed at once with 1008 and `webSocketRefusal`: a WebSocket API shows its user the close reason but
 * never an HTTP error body, so this is the only way for a browser or `@colyseus/sdk` client to learn
 * why. Anything else gets an HTTP error (426 on the handshake path, else 404) whose body names the
 * cause. Either way the socket is ended, and destroyed after REFUSAL_LINGER_MS at the latest.
 */
export function refuseUpgrade(req: http.IncomingMessage, socket: Duplex, ctx: StrayContext): void {
  const token = (req.headers.upgrade ?? "").trim();
  const onPath = pathOf(req.url) === ctx.path;
  const key = req.headers["sec-websocket-key"];
  if (token.toLowerCase() === "websocket" && typeof key === "string" && isWebSocketKey(key) && req.headers["sec-websocket-version"] === "13") {
    const offered = req.headers["sec-websocket-protocol"]?.split(",")[0]?.trim();
    const accept = createHash("sha1").update(key + WS_GUID).digest("base64");
    const head =
      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
      `Sec-WebSocket-Accept: ${accept}\r\n` +
      // A client that asked for subprotocols may insist on one being chosen; any will do for a close.
      (offered ? `Sec-WebSocket-Protocol: ${offered}\r\n` : "") +
      "\r\n";
    endSoon(socket, Buffer.concat([Buffer.from(head, "latin1"), closeFrame(WS_POLICY_VIOLATION, ctx.webSocketRefusal)]));
    return;
  }
  const why =
    token.toLowerCase() === "websocket"
      ? `${ctx.webSocketRefusal} (and this WebSocket upgrade is malformed)`
      : onPath
        ? `${ctx.path} takes "Upgrade: ${ctx.token}", not ${JSON.stringify(token)}`
        : `nothing here takes an Upgrade to ${JSON.stringify(token)}: fastnet handshakes use "Upgrade: ${ctx.token}" at ${ctx.path}`;
  const status = token.toLowerCase() === "websocket" && !onPath ? 400 : onPath ? 426 : 404;
  endSoon(socket, httpError(status, why, onPath ? ctx.token : undefined));
}

/**
 * Answers a plain request (no `Connection: Upgrade`) on the handshake path with 426 naming what is
 * missing, and any other with 404. Only call it when nothing else listens for requests.
 */
export function answerStrayRequest(req: http.IncomingMessage, res: http.ServerResponse, ctx: StrayContext): void {
  const onPath = pathOf(req.url) === ctx.path;
  const body = onPath
    ? `${ctx.path} takes fastnet handshakes: an HTTP/1.1 GET with "Connection: Upgrade" and "Upgrade: ${ctx.token}"\n`
    : `not found: this server takes fastnet handshakes at ${ctx.path}\n`;
  req.resume();
  res.writeHead(onPath ? 426 : 404, {
    "Content-Type": "text/plain; charset=utf-8",
    "Content-Length": Buffer.byteLength(body),
    Connection: "close",
    ...(onPath ? { Upgrade: ctx.token } : {}),
  });
  res.end(body);
}

function pathOf(url: string | undefined): string {
  const u = url ?? "";
  const q = u.indexOf("?");
  return q < 0 ? u : u.slice(0, q);
}

/** RFC 6455 §4.1: the key is base64 of 16 bytes. */
function isWebSocketKey(key: string): boolean {
  return /^[A-Za-z0-9+/]{22}==$/.test(key.trim());
}

function httpError(status: 400 | 404 | 426, why: string, upgrade?: string): Buffer {
  const text = { 400: "Bad Request", 404: "Not Found", 426: "Upgrade Required" }[status];
  const body = Buffer.from(`${why}\n`, "utf8");
  const head =
    `HTTP/1.1 ${status} ${text}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${body.length}\r\nConnection: close\r\n` +
    (upgrade ? `Upgrade: ${upgrade}\r\n` : "") +
    "\r\n";
  return Buffer.concat([Buffer.from(head, "latin1"), body]);
}

/** An unmasked server close frame with `code` and as much of `reason` as fits. */
function closeFrame(code: number, reason: string): Buffer {
  const text = closeReasonBytes(reason);
  const frame = Buffer.allocUnsafe(4 + text.length);
  frame[0] = 0x88; // FIN, opcode close
  frame[1] = 2 + text.length;
  frame.writeUInt16BE(code, 2);
  text.copy(frame, 4);
  return frame;
}

/** `reason` as UTF-8, cut on a character boundary to what a WebSocket close frame carries (123 bytes). */
export function closeReasonBytes(reason: string): Buffer {
  const text = Buffer.from(reason, "utf8");
  if (text.length <= WS_MAX_REASON_BYTES) return text;
  let end = WS_MAX_REASON_BYTES;
  while (end > 0 && (text[end]! & 0xc0) === 0x80) end--;
  return text.subarray(0, end);
}

/** Writes `data`, ends the socket, drains whatever the peer sends, and destroys it once closed or after the linger. */
function endSoon(socket: Duplex, data: Buffer): void {
  const timer = setTimeout(() => socket.destroy(), REFUSAL_LINGER_MS);
  timer.unref?.();
  socket.once("close", () => clearTimeout(timer));
  socket.once("end", () => socket.destroy());
  socket.on("error", () => socket.destroy());
  socket.resume(); // an unread request body would turn the close into a reset that can eat the answer
  socket.end(data);
}
