import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import http from "node:http";
import net, { type AddressInfo } from "node:net";
import { Duplex } from "node:stream";
import tls from "node:tls";
import fc from "fast-check";
import { WebSocket, WebSocketServer } from "ws";
import { generateDevCertificate, type DevCertificate } from "../src/node/dev-certificate.js";
import { performHandshake, type ClientHandshake, type HandshakeOptions } from "../src/node/handshake-client.js";
import {
  MAX_HANDSHAKE_MESSAGE_BYTES,
  MessageReader,
  encodeHandshakeMessage,
  parseClientHello,
  parseServerAccept,
  parseServerReject,
  parseServerResponse,
  type ClientHello,
  type TransportParams,
} from "../src/node/handshake-messages.js";
import {
  HandshakeServer,
  type HandshakeServerOptions,
  type PendingHandshake,
} from "../src/node/handshake-server.js";
import { FastnetError, type FastnetErrorCode } from "../src/protocol/errors.js";
import { DEFAULT_SESSION_OPTIONS, transportParams } from "../src/protocol/options.js";
import { CID_LENGTH, EXPORTER_LENGTH } from "../src/protocol/version.js";

const PARAMS: TransportParams = { maxMessageSize: 512 * 1024, receiveBufferBytes: 1 << 20, idleTimeoutMs: 10_000 };
const UPGRADE_REQUEST = "GET /.fastnet HTTP/1.1\r\nHost: test\r\nConnection: Upgrade\r\nUpgrade: fastnet/2\r\n\r\n";

/** Asserts that `p` rejects with a FastnetError of `code` whose message matches every pattern. */
async function rejectsWith(p: Promise<unknown>, code: FastnetErrorCode, ...patterns: (RegExp | string)[]) {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof FastnetError, `expected a FastnetError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    for (const p of patterns) {
      if (typeof p === "string") assert.ok(err.message.includes(p), `${JSON.stringify(err.message)} lacks ${p}`);
      else assert.match(err.message, p);
    }
    return true;
  });
}

describe("handshake messages", () => {
  const hello: ClientHello = { v: 2, path: "/room/abc?x=1", headers: { authorization: "Bearer t" }, params: PARAMS };

  it("reassembles messages split at every byte boundary, in two and in three pieces", () => {
    const a = encodeHandshakeMessage(hello);
    const b = encodeHandshakeMessage({ v: 2, error: "nope", code: 7 });
    const stream = Buffer.concat([a, b]);
    const expected = [JSON.parse(JSON.stringify(hello)), { v: 2, error: "nope", code: 7 }];
    for (let i = 0; i <= stream.length; i++) {
      const r = new MessageReader();
      assert.deepEqual([...r.push(stream.subarray(0, i)), ...r.push(stream.subarray(i))], expected, `split at ${i}`);
      assert.equal(r.pendingBytes, 0);
    }
    for (let i = 0; i < stream.length; i += 3) {
      for (let j = i; j <= stream.length; j += 5) {
        const r = new MessageReader();
        const got = [...r.push(stream.subarray(0, i)), ...r.push(stream.subarray(i, j)), ...r.push(stream.subarray(j))];
        assert.deepEqual(got, expected, `split at ${i}, ${j}`);
      }
    }
    const r = new MessageReader();
    const got: unknown[] = [];
    for (const byte of stream) got.push(...r.push(Uint8Array.of(byte)));
    assert.deepEqual(got, expected);
  });

  it("reassembles arbitrary hellos under arbitrary chunking (property)", () => {
    const params = fc.record({
      maxMessageSize: fc.integer({ min: 1, max: 2 ** 40 }),
      receiveBufferBytes: fc.integer({ min: 1, max: 2 ** 40 }),
      idleTimeoutMs: fc.integer({ min: 1, max: 2 ** 31 }),
    });
    const helloArb = fc.record(
      {
        v: fc.constant(2 as const),
        path: fc.string({ minLength: 1, maxLength: 200, unit: "binary" }),
        headers: fc.dictionary(fc.string({ maxLength: 20 }), fc.string({ maxLength: 50 }), { maxKeys: 8 }),
        params,
      },
      { requiredKeys: ["v", "path", "params"] },
    );
    fc.assert(
      fc.property(fc.array(helloArb, { minLength: 1, maxLength: 4 }), fc.array(fc.nat(), { maxLength: 10 }), (hellos, cuts) => {
        const stream = Buffer.concat(hellos.map((h) => encodeHandshakeMessage(h)));
        const points = [...new Set(cuts.map((c) => c % (stream.length + 1)))].sort((x, y) => x - y);
        const r = new MessageReader();
        const got: unknown[] = [];
        let from = 0;
        for (const p of [...points, stream.length]) {
          got.push(...r.push(stream.subarray(from, p)));
          from = p;
        }
        assert.deepEqual(got.map(parseClientHello), hellos.map((h) => parseClientHello(JSON.parse(JSON.stringify(h)))));
        assert.equal(r.pendingBytes, 0);
      }),
      { numRuns: 100 },
    );
  });

  it("accepts a body of exactly the limit and refuses one byte more as soon as the length arrives", () => {
    const exact = Buffer.alloc(4 + MAX_HANDSHAKE_MESSAGE_BYTES, 0x20); // JSON whitespace…
    exact.writeUInt32BE(MAX_HANDSHAKE_MESSAGE_BYTES, 0);
    exact.write("0", 4); // …around the number 0
    assert.deepEqual(new MessageReader().push(exact), [0]);

    const r = new MessageReader();
    const header = Buffer.alloc(4);
    header.writeUInt32BE(MAX_HANDSHAKE_MESSAGE_BYTES + 1, 0);
    assert.deepEqual(r.push(header.subarray(0, 3)), []);
    assert.throws(() => r.push(header.subarray(3)), (e: unknown) => e instanceof FastnetError && e.code === "HANDSHAKE_FAILED");
    assert.throws(() => r.push(Buffer.alloc(1)), /exceeds 16384/, "stays failed");
    assert.equal(r.pendingBytes, 0);
  });

  it("refuses bodies that are not UTF-8 JSON", () => {
    for (const body of [Buffer.from("{nope"), Buffer.from([0x22, 0xff, 0xfe, 0x22]), Buffer.alloc(0)]) {
      const framed = Buffer.concat([Buffer.from([0, 0, 0, body.length]), body]);
      assert.throws(() => new MessageReader().push(framed), /not UTF-8 JSON/);
    }
  });

  it("refuses to encode a message over the limit", () => {
    const big = { ...hello, path: "/" + "x".repeat(MAX_HANDSHAKE_MESSAGE_BYTES) };
    assert.throws(() => encodeHandshakeMessage(big), (e: unknown) => e instanceof FastnetError && e.code === "MESSAGE_TOO_LARGE");
  });

  it("refuses a hello whose version is nested thousands deep with a named error, not a stack overflow", () => {
    const hostile = JSON.parse(JSON.stringify({ ...hello, v: 0 }).replace('"v":0', `"v":${"[".repeat(8000)}1${"]".repeat(8000)}`));
    assert.ok(Array.isArray(hostile.v));
    assert.throws(() => parseClientHello(hostile), (e: unknown) => e instanceof FastnetError && e.code === "HANDSHAKE_FAILED" && /unsupported version an array/.test(e.message));
  });

  it("validates hellos strictly, naming the field, and drops unknown fields", () => {
    assert.deepEqual(parseClientHello({ ...hello, extra: true }), hello);
    assert.deepEqual(parseClientHello({ v: 2, path: "/", params: { ...PARAMS, more: 1 } }), { v: 2, path: "/", params: PARAMS });
    const proto = parseClientHello(JSON.parse('{"v":2,"path":"/","params":' + JSON.stringify(PARAMS) + ',"headers":{"__proto__":"x"}}'));
    assert.equal(Object.getPrototypeOf(proto.headers), Object.prototype);
    assert.equal(Object.getOwnPropertyDescriptor(proto.headers, "__proto__")?.value, "x");
    const bad: [unknown, RegExp][] = [
      [null, /expected an object, got null/],
      [[1], /got an array/],
      ["hello", /got string/],
      [{ ...hello, v: 1 }, /unsupported version 1/],
      [{ ...hello, v: "2" }, /unsupported version "2"/],
      [{ ...hello, path: 3 }, /path must be a string, got number/],
      [{ ...hello, path: "" }, /path must not be empty/],
      [{ ...hello, headers: [] }, /headers must be an object/],
      [{ ...hello, headers: { a: 1 } }, /header "a" must be a string/],
      [{ ...hello, params: undefined }, /params: expected an object/],
      [{ ...hello, params: { ...PARAMS, maxMessageSize: 0 } }, /maxMessageSize must be an integer/],
      [{ ...hello, params: { ...PARAMS, idleTimeoutMs: 1.5 } }, /idleTimeoutMs/],
      [{ ...hello, params: { ...PARAMS, receiveBufferBytes: "1" } }, /receiveBufferBytes must be an integer .* got string/],
      [{ ...hello, params: { ...PARAMS, immediateAck: 1 } }, /immediateAck must be a boolean, got number/],
      [{ ...hello, params: { ...PARAMS, immediateAck: "true" } }, /immediateAck must be a boolean, got string/],
      [{ ...hello, params: { ...PARAMS, maxAckDelayMs: -1 } }, /maxAckDelayMs must be an integer in 0\.\.16383, got -1/],
      [{ ...hello, params: { ...PARAMS, maxAckDelayMs: 16384 } }, /maxAckDelayMs must be an integer in 0\.\.16383, got 16384/],
      [{ ...hello, params: { ...PARAMS, maxAckDelayMs: 2.5 } }, /maxAckDelayMs/],
      [{ ...hello, params: { ...PARAMS, maxAckDelayMs: "25" } }, /maxAckDelayMs must be an integer .* got string/],
    ];
    for (const [v, re] of bad) {
      assert.throws(() => parseClientHello(v), (e: unknown) => e instanceof FastnetError && e.code === "HANDSHAKE_FAILED" && re.test(e.message), JSON.stringify(v));
    }
  });

  it("carries the optional immediateAck announcement in hello and accept params; absent stays absent", () => {
    for (const immediateAck of [true, false]) {
      const params = { ...PARAMS, immediateAck };
      assert.deepEqual(parseClientHello({ ...hello, params }).params, params);
      const accept = { v: 2, cid: randomBytes(CID_LENGTH).toString("base64"), udpPort: 4000, resetToken: randomBytes(16).toString("base64"), params };
      assert.deepEqual(parseServerAccept(accept).params, params);
    }
    // A peer that predates the feature sends no field: nothing is invented for it (it must never get the frame).
    assert.equal("immediateAck" in parseClientHello(hello).params, false);
    assert.equal(transportParams(DEFAULT_SESSION_OPTIONS).immediateAck, true, "this implementation announces it");
  });

  it("carries maxAckDelayMs in whole milliseconds, never less than the real delay; absent stays absent", () => {
    for (const maxAckDelayMs of [0, 1, 25, 16383]) {
      const params = { ...PARAMS, maxAckDelayMs };
      assert.deepEqual(parseClientHello({ ...hello, params }).params, params);
    }
    const { maxAckDelayMs: _omit, ...older } = PARAMS;
    assert.equal("maxAckDelayMs" in parseClientHello({ ...hello, params: older }).params, false);
    assert.equal(transportParams(DEFAULT_SESSION_OPTIONS).maxAckDelayMs, 5, "the default announced: 5 ms");
    assert.equal(transportParams({ ...DEFAULT_SESSION_OPTIONS, maxAckDelayMs: 2.2 }).maxAckDelayMs, 3, "rounded up");
    assert.equal(transportParams({ ...DEFAULT_SESSION_OPTIONS, maxAckDelayMs: 60_000 }).maxAckDelayMs, 16383, "capped at the wire's limit");
  });

  it("validates accepts and rejects strictly", () => {
    const cid = randomBytes(CID_LENGTH).toString("base64");
    const resetToken = randomBytes(16).toString("base64");
    const accept = { v: 2, cid, udpPort: 4000, resetToken, params: PARAMS };
    assert.deepEqual(parseServerResponse(accept), accept);
    assert.deepEqual(parseServerResponse({ ...accept, udpHost: "::1" }), { ...accept, udpHost: "::1" });
    assert.deepEqual(parseServerResponse({ v: 2, error: "full", code: 4000 }), { v: 2, error: "full", code: 4000 });
    assert.deepEqual(parseServerResponse({ v: 2, error: "" }), { v: 2, error: "" });
    const bad: [unknown, RegExp][] = [
      [{ ...accept, cid: randomBytes(CID_LENGTH + 1).toString("base64") }, /cid: expected 12 bytes, got 13/],
      [{ ...accept, cid: cid.slice(0, -1) + "!" }, /not canonical base64/],
      [{ ...accept, resetToken: randomBytes(15).toString("base64") }, /resetToken: expected 16 bytes/],
      [{ ...accept, udpPort: 0 }, /udpPort/],
      [{ ...accept, udpPort: 65536 }, /udpPort/],
      [{ ...accept, udpHost: 5 }, /udpHost must be a string/],
      [{ ...accept, params: { ...PARAMS, immediateAck: null } }, /immediateAck must be a boolean, got null/],
      [{ ...accept, cid: undefined }, /cid must be a string, got undefined/],
      [{ v: 2, error: 5 }, /error must be a string/],
      [{ v: 2, error: "x", code: "5" }, /code must be an integer/],
      [{ v: 0, error: "x" }, /unsupported version 0/],
      [42, /expected an object/],
    ];
    for (const [v, re] of bad) {
      assert.throws(() => parseServerResponse(v), (e: unknown) => e instanceof FastnetError && e.code === "HANDSHAKE_FAILED" && re.test(e.message), JSON.stringify(v));
    }
    assert.throws(() => parseServerAccept({ v: 2, error: "x" }), /cid must be a string/);
  });
});

describe("handshake over HTTP upgrade", function () {
  this.timeout(5000);
  let dev: DevCertificate;
  let other: DevCertificate;
  const cleanups: (() => unknown)[] = [];

  before(async () => {
    [dev, other] = await Promise.all([generateDevCertificate(), generateDevCertificate()]);
  });

  afterEach(async () => {
    while (cleanups.length) await cleanups.pop()!();
  });

  interface Harness {
    server: http.Server;
    hs: HandshakeServer;
    url: string;
    port: number;
  }

  async function start(opts: Partial<HandshakeServerOptions> = {}): Promise<Harness> {
    const server = http.createServer((_req, res) => res.writeHead(404).end());
    const hs = new HandshakeServer({
      server,
      cert: dev.cert,
      key: dev.key,
      timeoutMs: 4000,
      maxPending: 64,
      maxPendingPerAddress: 64,
      ...opts,
    });
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    cleanups.push(async () => {
      hs.close();
      server.closeAllConnections();
      server.close();
      await once(server, "close");
    });
    const port = (server.address() as AddressInfo).port;
    return { server, hs, url: `http://127.0.0.1:${port}`, port };
  }

  function connect(url: string, extra: Partial<HandshakeOptions> = {}): Promise<ClientHandshake> {
    const p = performHandshake({
      url,
      hello: { path: "/match/room1?token=abc", headers: { "x-client": "test" }, params: PARAMS },
      fingerprint: dev.fingerprint,
      timeoutMs: 3000,
      ...extra,
    });
    // Register the close before the caller awaits, so a failed assertion cannot leak the connection.
    p.then((c) => cleanups.push(() => c.close()), () => undefined);
    return p;
  }

  function acceptAll(hs: HandshakeServer, finish = true): { keys: Uint8Array[]; pendings: PendingHandshake[] } {
    const out = { keys: [] as Uint8Array[], pendings: [] as PendingHandshake[] };
    hs.on("handshake", (p) => {
      out.pendings.push(p);
      out.keys.push(p.accept({ cid: randomBytes(CID_LENGTH), udpPort: 4567, resetToken: randomBytes(16), params: PARAMS }));
      if (finish) p.finish();
    });
    return out;
  }

  /** A raw TCP connection that the test closes in cleanup. */
  async function rawConnect(port: number, host = "127.0.0.1"): Promise<net.Socket> {
    const s = net.connect(port, host);
    cleanups.push(() => s.destroy());
    await once(s, "connect");
    return s;
  }

  it("with a pinned dev certificate: both sides export the same 64 bytes over TLS 1.3", async () => {
    const { hs, url } = await start();
    const cid = randomBytes(CID_LENGTH);
    const resetToken = randomBytes(16);
    let serverKeys: Uint8Array | undefined;
    let seen: PendingHandshake | undefined;
    hs.on("handshake", (p) => {
      seen = p;
      serverKeys = p.accept({ cid, udpPort: 4567, resetToken, params: { ...PARAMS, idleTimeoutMs: 5000 } });
    });
    const client = await connect(url);
    assert.ok(seen && serverKeys);
    assert.deepEqual(seen.hello, { v: 2, path: "/match/room1?token=abc", headers: { "x-client": "test" }, params: PARAMS });
    assert.equal(seen.remoteAddress, "127.0.0.1");
    assert.ok(seen.remotePort > 0);
    assert.equal(seen.protocol, "TLSv1.3");
    assert.equal(client.protocol, "TLSv1.3");
    assert.equal(client.keyingMaterial.length, EXPORTER_LENGTH);
    assert.deepEqual(client.keyingMaterial, serverKeys);
    assert.ok(client.keyingMaterial.some((b) => b !== 0));
    assert.deepEqual(client.accept, {
      cid: new Uint8Array(cid),
      udpPort: 4567,
      udpHost: "127.0.0.1",
      resetToken: new Uint8Array(resetToken),
      params: { ...PARAMS, idleTimeoutMs: 5000 },
    });
    assert.ok(client.rttMs >= 0 && client.rttMs < 3000);
    assert.equal(hs.pendingCount, 1, "the handshake holds its slot until finish()");
    seen.finish();
    assert.equal(hs.pendingCount, 0);
    await client.closed; // the server's graceful close reaches the client
    assert.deepEqual(hs.stats, { accepted: 1, rejected: 0, busy: 0, timedOut: 0, failed: 0 });
  });

  it("binds the keys to the CID and to the TLS session", async () => {
    const { hs, url } = await start();
    const cids = [Buffer.alloc(CID_LENGTH, 1), Buffer.alloc(CID_LENGTH, 2), Buffer.alloc(CID_LENGTH, 1)];
    const serverKeys: Uint8Array[] = [];
    hs.on("handshake", (p) => {
      serverKeys.push(p.accept({ cid: cids[serverKeys.length]!, udpPort: 1, resetToken: randomBytes(16), params: PARAMS, udpHost: "198.51.100.7" }));
      p.finish();
    });
    const clients = [];
    for (let i = 0; i < cids.length; i++) clients.push(await connect(url));
    clients.forEach((c, i) => assert.deepEqual(c.keyingMaterial, serverKeys[i]));
    assert.notDeepEqual(clients[0]!.keyingMaterial, clients[1]!.keyingMaterial, "different CID, different keys");
    assert.notDeepEqual(clients[0]!.keyingMaterial, clients[2]!.keyingMaterial, "same CID, new TLS session, new keys");
    assert.equal(clients[0]!.accept.udpHost, "198.51.100.7");
    await Promise.all(clients.map((c) => c.closed));
  });

  it("verifies the dev certificate as its own CA without a pin, by IP and by name", async () => {
    const { hs, url } = await start();
    acceptAll(hs);
    const byIp = await connect(url, { fingerprint: undefined, ca: dev.cert });
    assert.equal(byIp.protocol, "TLSv1.3");
    const byName = await connect(url, { fingerprint: undefined, ca: dev.cert, servername: "localhost" });
    assert.equal(byName.keyingMaterial.length, EXPORTER_LENGTH);
    await rejectsWith(
      connect(url, { fingerprint: undefined, ca: dev.cert, servername: "wrong.example" }),
      "CERTIFICATE_REJECTED",
      "wrong.example",
      "ERR_TLS_CERT_ALTNAME_INVALID",
    );
    assert.equal(hs.stats.accepted, 2);
  });

  it("works over IPv6 with the ::1 IP SAN, and counts each address separately", async () => {
    const { server, hs } = await start({ maxPendingPerAddress: 1, maxQueued: 0 });
    // The same HTTP server also serves connections accepted on ::1.
    const v6 = net.createServer((s) => server.emit("connection", s));
    v6.listen(0, "::1");
    await once(v6, "listening");
    cleanups.push(async () => {
      v6.close();
      await once(v6, "close");
    });
    const v4url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const v6url = `http://[::1]:${(v6.address() as AddressInfo).port}`;
    const { pendings } = acceptAll(hs, false);

    const first = await connect(v4url);
    await rejectsWith(connect(v4url), "SERVER_BUSY", "503");
    const overV6 = await connect(v6url, { fingerprint: undefined, ca: dev.cert });
    assert.equal(overV6.accept.udpHost, "::1");
    assert.equal(pendings[1]!.remoteAddress, "::1");
    await rejectsWith(connect(v6url), "SERVER_BUSY");
    assert.equal(hs.stats.busy, 2);

    pendings[0]!.finish();
    await first.closed;
    const again = await connect(v4url);
    assert.deepEqual(again.keyingMaterial.length, EXPORTER_LENGTH);
    for (const p of pendings.slice(1)) p.finish();
    await Promise.all([overV6.closed, again.closed]);
  });

  it("rejects a self-signed certificate without ca or pin, naming the cause", async () => {
    const { hs, url } = await start();
    let handshakes = 0;
    hs.on("handshake", () => handshakes++);
    await rejectsWith(
      connect(url, { fingerprint: undefined }),
      "CERTIFICATE_REJECTED",
      "certificate rejected by CA verification: self-signed certificate (DEPTH_ZERO_SELF_SIGNED_CERT)",
    );
    assert.equal(handshakes, 0);
  });

  it("rejects a wrong pin before sending the hello, naming both fingerprints", async () => {
    const { hs, url } = await start();
    const { pendings } = acceptAll(hs);
    await rejectsWith(
      connect(url, { fingerprint: other.fingerprint }),
      "CERTIFICATE_REJECTED",
      `certificate fingerprint mismatch: pinned ${other.fingerprintHex} but server presented ${dev.fingerprintHex}`,
    );
    // The server only ever sees the hello of the next, correctly pinned client.
    await connect(url);
    assert.equal(pendings.length, 1);
    assert.equal(hs.stats.accepted, 1);
  });

  it("rejects a certificate that does not chain to the given ca", async () => {
    const { url } = await start();
    await rejectsWith(connect(url, { fingerprint: undefined, ca: other.cert }), "CERTIFICATE_REJECTED", "certificate rejected by CA verification");
  });

  it("accepts any certificate when the caller explicitly sets rejectUnauthorized: false", async () => {
    const { hs, url } = await start();
    acceptAll(hs);
    const c = await connect(url, { fingerprint: undefined, rejectUnauthorized: false });
    assert.equal(c.protocol, "TLSv1.3");
  });

  it("reports a server reject with its text and code", async () => {
    const { hs, url } = await start();
    hs.on("handshake", (p) => p.reject("room not found", 4212));
    await rejectsWith(connect(url), "HANDSHAKE_FAILED", "server rejected the handshake: room not found (code 4212)");
    assert.equal(hs.stats.rejected, 1);
    assert.equal(hs.pendingCount, 0);
  });

  it("times out on the client when the server never answers, and the server sees the close", async () => {
    const { hs, url } = await start();
    const pending = once(hs, "handshake") as Promise<[PendingHandshake]>;
    const started = performance.now();
    await rejectsWith(connect(url, { timeoutMs: 300 }), "HANDSHAKE_TIMEOUT", url, "300 ms");
    assert.ok(performance.now() - started >= 290);
    const [p] = await pending;
    await once(p, "close");
    assert.equal(hs.pendingCount, 0);
    assert.throws(() => p.accept({ cid: randomBytes(CID_LENGTH), udpPort: 1, resetToken: randomBytes(16), params: PARAMS }), /connection is closed/);
  });

  it("times out on the server when a handshake never finishes; the client's closed resolves", async () => {
    const { hs, url } = await start({ timeoutMs: 250 });
    const { pendings } = acceptAll(hs, false);
    const client = await connect(url);
    const events: string[] = [];
    pendings[0]!.on("timeout", () => events.push("timeout"));
    pendings[0]!.on("close", () => events.push("close"));
    await client.closed; // the server emitted both events before destroying the connection
    assert.deepEqual(events, ["timeout", "close"]);
    assert.equal(hs.stats.timedOut, 1);
    assert.equal(hs.pendingCount, 0);
  });

  it("answers 503 past maxPending and serves again once earlier handshakes finish", async () => {
    const { hs, url } = await start({ maxPending: 2, maxQueued: 0 });
    const { pendings } = acceptAll(hs, false);
    const a = await connect(url);
    const b = await connect(url);
    await rejectsWith(connect(url), "SERVER_BUSY", "busy (HTTP 503)");
    await rejectsWith(connect(url), "SERVER_BUSY");
    assert.equal(hs.stats.busy, 2);
    assert.equal(hs.pendingCount, 2);
    pendings[0]!.finish();
    pendings[1]!.finish();
    await Promise.all([a.closed, b.closed]);
    const c = await connect(url);
    assert.equal(c.keyingMaterial.length, EXPORTER_LENGTH);
    pendings[2]!.finish();
    await c.closed;
    assert.deepEqual(hs.stats, { accepted: 3, rejected: 0, busy: 2, timedOut: 0, failed: 0 });
  });

  it("leaves other upgrades (another protocol or another path) to other listeners", async () => {
    const { server, hs, port, url } = await start();
    acceptAll(hs);
    const seen: string[] = [];
    server.on("upgrade", (req: http.IncomingMessage, socket: Duplex) => {
      if (req.headers.upgrade === "fastnet/2" && req.url === "/.fastnet") return;
      seen.push(`${req.headers.upgrade} ${req.url}`);
      socket.end(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: ${req.headers.upgrade}\r\nConnection: Upgrade\r\n\r\nhello from the other listener`);
    });
    for (const [upgrade, path] of [["websocket", "/.fastnet"], ["fastnet/2", "/elsewhere"]] as const) {
      const req = http.request({ host: "127.0.0.1", port, path, headers: { Connection: "Upgrade", Upgrade: upgrade } }).end();
      const [res, socket, head] = (await once(req, "upgrade")) as [http.IncomingMessage, net.Socket, Buffer];
      assert.equal(res.headers.upgrade, upgrade);
      const chunks: Buffer[] = [head];
      socket.on("data", (d: Buffer) => chunks.push(d));
      await once(socket, "end");
      socket.destroy();
      assert.equal(Buffer.concat(chunks).toString(), "hello from the other listener");
    }
    assert.deepEqual(seen, ["websocket /.fastnet", "fastnet/2 /elsewhere"]);
    assert.equal(hs.pendingCount, 0);
    assert.deepEqual(hs.stats, { accepted: 0, rejected: 0, busy: 0, timedOut: 0, failed: 0 });
    // The fastnet upgrade itself still works alongside.
    const c = await connect(url);
    assert.equal(c.protocol, "TLSv1.3");
    assert.equal(seen.length, 2);
  });

  it("prefixes a path in the URL to the handshake path, and honours a custom server path", async () => {
    const { hs, url } = await start({ path: "/base/.fastnet" });
    acceptAll(hs);
    const c = await connect(`${url}/base/`);
    assert.equal(c.protocol, "TLSv1.3");
    const d = await connect(url, { path: "/base/.fastnet" });
    assert.equal(d.keyingMaterial.length, EXPORTER_LENGTH);
  });

  it("shares the HTTP server with a ws WebSocketServer that ignores fastnet upgrades via wsClientError", async () => {
    const { server, hs, port, url } = await start();
    acceptAll(hs);
    const wss = new WebSocketServer({ server });
    // Without this listener ws answers every non-websocket upgrade with a 400 and ends the socket.
    wss.on("wsClientError", (_err, socket, req) => {
      if (req.headers.upgrade?.toLowerCase() !== "fastnet/2") socket.destroy();
    });
    wss.on("connection", (ws) => ws.send("ws ok"));
    cleanups.push(() => new Promise((r) => wss.close(r)));
    const c = await connect(url);
    assert.equal(c.keyingMaterial.length, EXPORTER_LENGTH);
    const ws = new WebSocket(`ws://127.0.0.1:${port}/`);
    cleanups.push(() => ws.terminate());
    const [msg] = (await once(ws, "message")) as [Buffer];
    assert.equal(msg.toString(), "ws ok");
  });

  it("reports a non-101 HTTP answer", async () => {
    const { server, url } = await start();
    server.on("upgrade", (req: http.IncomingMessage, socket: Duplex) => {
      if (req.url !== "/.fastnet") socket.end("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    });
    await rejectsWith(connect(url, { path: "/nowhere" }), "HANDSHAKE_FAILED", "expected HTTP 101", "got 404");
  });

  it("survives garbage after the 101 (in the request's packet and later), counting failures", async () => {
    const { hs, port, url } = await start();
    acceptAll(hs);
    // Garbage in the same write as the request arrives in `head` and goes to TLS.
    const s1 = await rawConnect(port);
    s1.write(UPGRADE_REQUEST + "\x16\x03\x01\x00\x05garbage garbage garbage");
    s1.resume();
    await once(s1, "close");
    assert.equal(hs.stats.failed, 1);
    // Garbage after reading the 101.
    const s2 = await rawConnect(port);
    s2.write(UPGRADE_REQUEST);
    const [first] = (await once(s2, "data")) as [Buffer];
    assert.match(first.toString(), /^HTTP\/1\.1 101 Switching Protocols\r\nUpgrade: fastnet\/2\r\nConnection: Upgrade\r\n\r\n$/);
    s2.write(Buffer.alloc(2000, 0x41)); // not a TLS record type: fails at once
    await once(s2, "close");
    assert.equal(hs.stats.failed, 2);
    assert.equal(hs.pendingCount, 0);
    const c = await connect(url);
    assert.equal(c.protocol, "TLSv1.3");
  });

  /**
   * A client that upgrades by hand and then runs TLS over the raw socket, so tests can send any bytes inside TLS.
   * With `eager`, the TLS ClientHello goes out in the same write as the HTTP request (it then arrives in `head`).
   */
  async function manualTls(
    port: number,
    eager = false,
    tlsOptions: tls.ConnectionOptions = {},
  ): Promise<{ t: tls.TLSSocket; raw: net.Socket }> {
    const raw = await rawConnect(port);
    let responseSeen = false;
    let pendingHttp = Buffer.alloc(0);
    let sentRequest = false;
    const stripped = new Duplex({
      read() {
        raw.resume();
      },
      write(chunk: Buffer, _enc, cb) {
        const data = sentRequest ? chunk : Buffer.concat([Buffer.from(UPGRADE_REQUEST), chunk]);
        sentRequest = true;
        raw.write(data, cb);
      },
      final(cb) {
        raw.end(cb);
      },
      destroy(err, cb) {
        raw.destroy();
        cb(err);
      },
    });
    raw.on("data", (d: Buffer) => {
      if (responseSeen) return void stripped.push(d);
      pendingHttp = Buffer.concat([pendingHttp, d]);
      const end = pendingHttp.indexOf("\r\n\r\n");
      if (end < 0) return;
      assert.match(pendingHttp.subarray(0, end).toString(), /^HTTP\/1\.1 101 /);
      responseSeen = true;
      if (pendingHttp.length > end + 4) stripped.push(pendingHttp.subarray(end + 4));
    });
    raw.on("end", () => stripped.push(null));
    if (!eager) {
      raw.write(UPGRADE_REQUEST);
      sentRequest = true;
    }
    const t = tls.connect({ socket: stripped, ca: dev.cert, host: "127.0.0.1", minVersion: "TLSv1.3", ...tlsOptions });
    cleanups.push(() => t.destroy());
    await once(t, "secureConnect"); // rejects if t emits 'error' first
    return { t, raw };
  }

  it("keeps TLS bytes that arrive in the upgrade request's packet (head)", async () => {
    const { hs, port } = await start();
    const cid = randomBytes(CID_LENGTH);
    let serverKeys: Uint8Array | undefined;
    hs.on("handshake", (p) => {
      serverKeys = p.accept({ cid, udpPort: 9, resetToken: randomBytes(16), params: PARAMS });
    });
    const { t } = await manualTls(port, true);
    t.write(encodeHandshakeMessage({ v: 2, path: "/eager", params: PARAMS }));
    const reader = new MessageReader();
    const [chunk] = (await once(t, "data")) as [Buffer];
    const [answer] = reader.push(chunk);
    assert.equal(parseServerAccept(answer).cid, cid.toString("base64"));
    assert.deepEqual(new Uint8Array(t.exportKeyingMaterial(64, "EXPERIMENTAL fastnet v2", Buffer.concat([Buffer.of(2), cid]))), serverKeys);
  });

  /** Everything the server sends on `t` until it closes, read as handshake messages. */
  async function answersUntilClose(t: tls.TLSSocket, raw: net.Socket): Promise<unknown[]> {
    const reader = new MessageReader();
    const got: unknown[] = [];
    t.on("data", (chunk: Buffer) => got.push(...reader.push(chunk)));
    await once(raw, "close");
    return got;
  }

  it("answers an oversized, malformed or other-version hello with a ServerReject naming the cause, and serves the next client", async () => {
    const { hs, port, url } = await start();
    acceptAll(hs);
    const refused = async (bytes: Buffer, cause: RegExp, failed: number): Promise<void> => {
      const c = await manualTls(port);
      const answers = answersUntilClose(c.t, c.raw);
      c.t.write(bytes);
      const got = await answers; // the server hung up after its answer
      assert.equal(got.length, 1, "exactly one answer");
      const reject = parseServerReject(got[0]);
      assert.equal(reject.code, 1002);
      assert.match(reject.error, cause);
      assert.equal(hs.stats.failed, failed);
    };
    await refused(Buffer.from([0x00, 0x01, 0x00, 0x00]), /length 65536 exceeds 16384/, 1); // 65536 bytes announced
    await refused(
      encodeHandshakeMessage({ v: 2, path: 5, params: PARAMS } as unknown as ClientHello),
      /invalid client hello: path must be a string, got number/,
      2,
    );
    const hello = encodeHandshakeMessage({ v: 2, path: "/", params: PARAMS });
    await refused(Buffer.concat([hello, hello]), /more than one message/, 3);
    await refused(
      encodeHandshakeMessage({ v: 1, path: "/", params: PARAMS } as unknown as ClientHello),
      /unsupported version 1, expected 2/,
      4,
    );
    await refused(
      encodeHandshakeMessage({ v: 2, path: "/", params: { ...PARAMS, idleTimeoutMs: 0 } }),
      /idleTimeoutMs must be an integer in 1\.\./,
      5,
    );
    assert.equal(hs.stats.rejected, 0, "refused hellos are failures, not application rejects");

    const silent = await manualTls(port);
    silent.t.end(); // TLS up, then the client leaves without a hello
    silent.t.resume();
    await once(silent.raw, "close"); // the server hung up
    assert.equal(hs.stats.failed, 6);

    assert.equal(hs.pendingCount, 0);
    const c = await connect(url);
    assert.equal(c.protocol, "TLSv1.3");
    assert.equal(hs.stats.accepted, 1);
  });

  it("refuses a client that offers only TLS 1.2", async () => {
    const { hs, port } = await start();
    await assert.rejects(manualTls(port, false, { minVersion: "TLSv1.2", maxVersion: "TLSv1.2" }), /protocol version/);
    assert.equal(hs.stats.failed, 1);
  });

  it("does not let a throwing 'handshake' listener take the server down", async () => {
    const { hs, url } = await start();
    let calls = 0;
    hs.on("handshake", (p) => {
      if (++calls === 1) throw new Error("listener bug");
      p.accept({ cid: randomBytes(CID_LENGTH), udpPort: 5, resetToken: randomBytes(16), params: PARAMS });
      p.finish();
    });
    await rejectsWith(connect(url), "HANDSHAKE_FAILED", "closed the TLS connection before answering");
    const c = await connect(url);
    await c.closed;
  });

  it("refuses bad accept() arguments and a second answer", async () => {
    const { hs, url } = await start();
    const errors: string[] = [];
    hs.on("handshake", (p) => {
      const good = { cid: randomBytes(CID_LENGTH), udpPort: 5, resetToken: randomBytes(16), params: PARAMS };
      for (const bad of [{ cid: randomBytes(4) }, { resetToken: randomBytes(8) }, { udpPort: 70000 }, { params: { ...PARAMS, maxMessageSize: -1 } }]) {
        try {
          p.accept({ ...good, ...bad });
        } catch (err) {
          errors.push(`${(err as FastnetError).code}`);
        }
      }
      p.accept(good);
      assert.throws(() => p.reject("late"), /already answered/);
      p.finish();
      p.finish(); // idempotent
    });
    const c = await connect(url);
    await c.closed;
    assert.deepEqual(errors, ["INVALID_OPTION", "INVALID_OPTION", "INVALID_OPTION", "INVALID_OPTION"]);
  });

  it("close() ends pending handshakes and stops watching upgrades", async () => {
    const { server, hs, url } = await start();
    const closed: string[] = [];
    hs.on("handshake", (p) => {
      p.on("close", () => closed.push(p.hello.path));
      hs.close();
    });
    await rejectsWith(connect(url), "HANDSHAKE_FAILED", "closed the TLS connection before answering");
    assert.deepEqual(closed, ["/match/room1?token=abc"]);
    assert.equal(server.listenerCount("upgrade"), 0);
    assert.equal(hs.pendingCount, 0);
    assert.equal(hs.stats.failed, 0, "a deliberate close is no failure");
  });

  it("fails with ECONNREFUSED when nothing listens", async () => {
    const probe = net.createServer().listen(0, "127.0.0.1");
    await once(probe, "listening");
    const port = (probe.address() as AddressInfo).port;
    probe.close();
    await once(probe, "close");
    await rejectsWith(
      performHandshake({ url: `http://127.0.0.1:${port}`, hello: { path: "/", params: PARAMS }, timeoutMs: 2000 }),
      "HANDSHAKE_FAILED",
      `127.0.0.1:${port}`,
      "ECONNREFUSED",
    );
  });

  it("refuses bad options before any I/O", async () => {
    const base = { hello: { path: "/", params: PARAMS }, timeoutMs: 1000 };
    await rejectsWith(performHandshake({ ...base, url: "not a url" }), "INVALID_OPTION");
    await rejectsWith(performHandshake({ ...base, url: "ftp://127.0.0.1:1" }), "INVALID_OPTION", "http://");
    await rejectsWith(performHandshake({ ...base, url: "http://127.0.0.1:1", fingerprint: new Uint8Array(3) }), "INVALID_OPTION");
    await rejectsWith(performHandshake({ ...base, url: "http://127.0.0.1:1", timeoutMs: 0 }), "INVALID_OPTION");
    await rejectsWith(performHandshake({ ...base, url: "http://127.0.0.1:1", hello: { path: "", params: PARAMS } }), "INVALID_OPTION", "path must not be empty");
    const noParams = { path: "/" } as unknown as HandshakeOptions["hello"];
    await rejectsWith(performHandshake({ ...base, url: "http://127.0.0.1:1", hello: noParams }), "INVALID_OPTION", "params");
    const huge = { path: "/" + "x".repeat(MAX_HANDSHAKE_MESSAGE_BYTES), params: PARAMS };
    await rejectsWith(performHandshake({ ...base, url: "http://127.0.0.1:1", hello: huge }), "MESSAGE_TOO_LARGE");
  });
});
