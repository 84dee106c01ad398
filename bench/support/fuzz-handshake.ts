/**
 * The handshake target of bench/fuzz.ts: the byte stream of length-framed JSON messages inside TLS
 * (docs/protocol.md §2.3) fed to MessageReader in random chunks, and every decoded value to each parser
 * (parseClientHello, parseServerResponse/Accept/Reject, parseTransportParams).
 * Inputs start from valid ClientHello / ServerAccept / ServerReject messages, then get JSON-level
 * mutations (values of every type at their edges, missing and extra keys, "__proto__", deep nesting,
 * long strings), byte-level mutations, and wrong, huge or off-by-one length prefixes.
 * The only acceptable failure is FastnetError HANDSHAKE_FAILED. After every input: the reader never
 * holds a whole limit's worth, a failed reader stays failed, a parsed message has only known fields of
 * the right types, parsing what was parsed gives the same result, and Object.prototype is untouched.
 */
import { FastnetError } from "../../src/protocol/errors.js";
import {
  MAX_HANDSHAKE_MESSAGE_BYTES,
  MessageReader,
  RESET_TOKEN_LENGTH,
  encodeBase64,
  encodeHandshakeMessage,
  parseClientHello,
  parseServerAccept,
  parseServerReject,
  parseServerResponse,
  parseTransportParams,
} from "../../src/node/handshake-messages.js";
import { CID_LENGTH, PROTOCOL_VERSION } from "../../src/protocol/version.js";
import { concat, mutateBytes, SplicePool } from "./fuzz-mutate.js";
import { Rng } from "./fuzz-rng.js";
import { check, type FuzzEpisode, type FuzzTarget } from "./fuzz-target.js";

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

const DEEP_MARK = "@@deep@@";
const DEEP_RE = /"@@deep@@(\d+)"/g;
const OBJECT_PROTO_NAMES = Object.getOwnPropertyNames(Object.prototype).sort().join(",");

function params(rng: Rng): Json {
  return {
    maxMessageSize: rng.pick([1, 1024, 524288, Number.MAX_SAFE_INTEGER]),
    receiveBufferBytes: rng.pick([1, 8192, 1048576]),
    idleTimeoutMs: rng.pick([1, 10000, 2 ** 31]),
    ...(rng.chance(0.5) ? { immediateAck: rng.chance(0.8) } : {}),
  };
}

function validMessage(rng: Rng): Json {
  switch (rng.int(3)) {
    case 0: {
      const hello: { [k: string]: Json } = { v: PROTOCOL_VERSION, path: rng.pick(["/", "/room/abc?sessionId=x&reconnectionToken=y", "/p/r", "/%zz", "//", "?"]), params: params(rng) };
      if (rng.chance(0.6)) hello.headers = { authorization: "Bearer x", "x-forwarded-for": "1.2.3.4", "x-real-ip": "5.6.7.8" };
      return hello;
    }
    case 1: {
      const accept: { [k: string]: Json } = {
        v: PROTOCOL_VERSION,
        cid: encodeBase64(rng.bytes(CID_LENGTH)),
        udpPort: rng.pick([1, 2567, 65535]),
        resetToken: encodeBase64(rng.bytes(RESET_TOKEN_LENGTH)),
        params: params(rng),
      };
      if (rng.chance(0.5)) accept.udpHost = rng.pick(["127.0.0.1", "::1", "localhost", "example.invalid"]);
      return accept;
    }
    default: {
      const reject: { [k: string]: Json } = { v: PROTOCOL_VERSION, error: rng.pick(["", "room not found", "busy"]) };
      if (rng.chance(0.5)) reject.code = rng.pick([4212, -1, 0, 2 ** 31 - 1]);
      return reject;
    }
  }
}

function interesting(rng: Rng): Json {
  switch (rng.int(24)) {
    case 0: return null;
    case 1: return true;
    case 2: return false;
    case 3: return 0;
    case 4: return -1;
    case 5: return 1.5;
    case 6: return 2 ** 53;
    case 7: return 2 ** 53 + 2;
    case 8: return -(2 ** 31) - 1;
    case 9: return 2 ** 31;
    case 10: return 1e308;
    case 11: return "";
    case 12: return "\u0000";
    case 13: return "\ud800";
    case 14: return "x".repeat(rng.pick([255, 256, 4096, 17000]));
    case 15: return [];
    case 16: return {};
    case 17:
      // Deep nesting within the size limit (8000 levels and a hello still fit 16 KiB): a placeholder,
      // expanded in the JSON text, since JSON.stringify itself overflows the stack at a few thousand levels.
      return `${DEEP_MARK}${rng.pick([100, 1000, 5000, 8000, 8000])}`;
    case 18: return PROTOCOL_VERSION + 1;
    case 19: return String(PROTOCOL_VERSION);
    case 20: return encodeBase64(rng.bytes(rng.pick([CID_LENGTH - 1, CID_LENGTH + 1, RESET_TOKEN_LENGTH, 0])));
    case 21: return "AAAAAAAAAA=";
    case 22: return { polluted: 1 };
    default: return rng.int(70000);
  }
}

const KEYS = ["v", "path", "headers", "params", "cid", "udpPort", "udpHost", "resetToken", "error", "code", "__proto__", "constructor", "prototype", "toString", "maxMessageSize", "receiveBufferBytes", "idleTimeoutMs", "immediateAck", ""];

/** One JSON-level change somewhere in `v` (mutated in place where it is a container); returns the root. */
function mutateJson(rng: Rng, root: Json): Json {
  // Walk down to a random container.
  let node: Json = root;
  for (let depth = 0; depth < 4; depth++) {
    if (node === null || typeof node !== "object") break;
    const children: Json[] = Array.isArray(node) ? node : Object.values(node);
    const inner = children.filter((c) => c !== null && typeof c === "object");
    if (inner.length === 0 || rng.chance(0.5)) break;
    node = rng.pick(inner);
  }
  if (node === null || typeof node !== "object") return rng.chance(0.5) ? interesting(rng) : root;
  if (Array.isArray(node)) {
    if (node.length > 0 && rng.chance(0.5)) node[rng.int(node.length)] = interesting(rng);
    else node.push(interesting(rng));
    return root;
  }
  const keys = Object.keys(node);
  switch (rng.int(4)) {
    case 0:
      // The version is checked first by every parser: give it a larger share.
      if (keys.length > 0) node[keys.includes("v") && rng.chance(0.3) ? "v" : rng.pick(keys)] = interesting(rng);
      break;
    case 1:
      if (keys.length > 0) delete node[rng.pick(keys)];
      break;
    case 2:
      Object.defineProperty(node, rng.pick(KEYS), { value: interesting(rng), enumerable: true, writable: true, configurable: true });
      break;
    default:
      if (node === root) return rng.chance(0.5) ? [root] : interesting(rng);
      break;
  }
  return root;
}

const textEncoder = new TextEncoder();

/** JSON text of `v`, with each deep-nesting placeholder expanded to that many nested arrays. */
function stringify(v: Json): string {
  return JSON.stringify(v).replace(DEEP_RE, (_, n: string) => `${"[".repeat(Number(n))}1${"]".repeat(Number(n))}`);
}

/** Length prefix: the true length mostly, else off by one, at the limit, or huge. */
function prefix(rng: Rng, length: number): Uint8Array {
  const out = new Uint8Array(4);
  const r = rng.float();
  const v =
    r < 0.85 ? length
    : r < 0.9 ? length + 1
    : r < 0.93 ? Math.max(0, length - 1)
    : rng.pick([0, MAX_HANDSHAKE_MESSAGE_BYTES, MAX_HANDSHAKE_MESSAGE_BYTES + 1, 0x7fffffff, 0xffffffff]);
  new DataView(out.buffer).setUint32(0, v >>> 0);
  return out;
}

class HandshakeEpisode implements FuzzEpisode {
  private readonly pool = new SplicePool(16);
  private left: number;

  constructor(
    private readonly rng: Rng,
    budget: number,
  ) {
    this.left = budget;
  }

  /** Input: 4 bytes seeding the chunking, then the stream bytes. */
  generate(): Uint8Array | null {
    if (this.left-- <= 0) return null;
    const rng = this.rng;
    const parts: Uint8Array[] = [rng.bytes(4)];
    const messages = rng.chance(0.8) ? 1 : rng.range(2, 3);
    for (let i = 0; i < messages; i++) {
      let msg = validMessage(rng);
      const changes = rng.chance(0.15) ? 0 : rng.range(1, 3);
      for (let c = 0; c < changes; c++) msg = mutateJson(rng, msg);
      let body: Uint8Array = textEncoder.encode(stringify(msg));
      if (rng.chance(0.2)) body = mutateBytes(rng, body, this.pool.items, MAX_HANDSHAKE_MESSAGE_BYTES + 64);
      this.pool.add(body);
      parts.push(prefix(rng, body.length), body);
    }
    if (rng.chance(0.05)) parts.push(rng.bytes(rng.size(64)));
    return concat(parts);
  }

  execute(input: Uint8Array): void {
    const chunking = new Rng("chunks", Buffer.from(input.subarray(0, 4)).toString("hex"));
    const stream = input.subarray(4);
    const reader = new MessageReader();
    let at = 0;
    while (at < stream.length || at === 0) {
      const n = chunking.chance(0.3) ? stream.length - at : chunking.range(0, Math.max(1, (stream.length - at) >> 1));
      const chunk = stream.subarray(at, at + n);
      at += n;
      let values: unknown[];
      try {
        values = reader.push(chunk);
      } catch (err) {
        expectRefusal(err);
        // A failed reader stays failed: the stream cannot be resynchronised.
        let again = false;
        try {
          reader.push(new Uint8Array(1));
        } catch (err2) {
          expectRefusal(err2);
          again = true;
        }
        check(again, "MessageReader accepted input after failing");
        break;
      }
      check(reader.pendingBytes < 4 + MAX_HANDSHAKE_MESSAGE_BYTES, () => `MessageReader holds ${reader.pendingBytes} bytes`);
      for (const v of values) parseAll(v, input[0]! + at);
      if (at >= stream.length) break;
    }
    check(Object.getOwnPropertyNames(Object.prototype).sort().join(",") === OBJECT_PROTO_NAMES, "Object.prototype was modified");
  }
}

function expectRefusal(err: unknown): void {
  if (err instanceof FastnetError && err.code === "HANDSHAKE_FAILED") return;
  throw err;
}

/**
 * Runs the parsers on `v`: parseClientHello and parseServerResponse always, each of the others on one
 * value in three (picked by `pick`: a value that makes the shared version check slow would otherwise
 * cost four times over); checks what each accepts, and that it parses the same again.
 */
function parseAll(v: unknown, pick: number): void {
  const run = <T>(parse: (x: unknown) => T, verify: (r: T) => void): void => {
    let r: T;
    try {
      r = parse(v);
    } catch (err) {
      expectRefusal(err);
      return;
    }
    verify(r);
    // What a parser returns is a valid message: framing it and parsing again gives the same.
    const again = new MessageReader().push(encodeHandshakeMessage(r as never));
    check(again.length === 1 && JSON.stringify(parse(again[0])) === JSON.stringify(r), "parsing a parsed message changes it");
  };
  run(parseClientHello, (h) => {
    checkKeys(h, ["v", "path", "params", "headers"]);
    check(h.v === PROTOCOL_VERSION && typeof h.path === "string" && h.path.length > 0, "hello v/path");
    checkParams(h.params);
    if (h.headers !== undefined) {
      check(Object.getPrototypeOf(h.headers) === Object.prototype, "hello headers have another prototype");
      for (const val of Object.values(h.headers)) check(typeof val === "string", "a hello header is not a string");
    }
  });
  run(parseServerResponse, (r) => check(typeof r === "object" && r !== null, "server response"));
  if (pick % 3 !== 0) return;
  run(parseServerAccept, (a) => {
    checkKeys(a, ["v", "cid", "udpPort", "udpHost", "resetToken", "params"]);
    check(Buffer.from(a.cid, "base64").length === CID_LENGTH && Buffer.from(a.resetToken, "base64").length === RESET_TOKEN_LENGTH, "accept cid/resetToken length");
    check(Number.isInteger(a.udpPort) && a.udpPort >= 1 && a.udpPort <= 65535, "accept udpPort");
    checkParams(a.params);
  });
  run(parseServerReject, (r) => {
    checkKeys(r, ["v", "error", "code"]);
    check(typeof r.error === "string" && (r.code === undefined || Number.isInteger(r.code)), "reject fields");
  });
  run(parseTransportParams, checkParams);
}

function checkKeys(o: object, allowed: string[]): void {
  for (const k of Object.keys(o)) check(allowed.includes(k), `parsed message carries unknown field ${JSON.stringify(k)}`);
}

function checkParams(p: { maxMessageSize: number; receiveBufferBytes: number; idleTimeoutMs: number; immediateAck?: boolean }): void {
  checkKeys(p, ["maxMessageSize", "receiveBufferBytes", "idleTimeoutMs", "immediateAck"]);
  check(p.immediateAck === undefined || typeof p.immediateAck === "boolean", "transport param immediateAck");
  for (const v of [p.maxMessageSize, p.receiveBufferBytes, p.idleTimeoutMs]) check(Number.isSafeInteger(v) && v >= 1, `transport param ${v}`);
}

export const handshakeTarget: FuzzTarget = {
  name: "handshake",
  what: "MessageReader (length framing, random chunking) and every handshake message parser",
  episodeInputs: 1000,
  start: (rng) => new HandshakeEpisode(rng, 1000),
};
