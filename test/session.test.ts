import assert from "node:assert/strict";
import dgram from "node:dgram";
import { once } from "node:events";
import { FastnetServer, connect, generateDevCertificate, FastnetError, type FastnetSession, type FastnetClientSession } from "../src/index.js";
import { DEFAULT_MIGRATION_OPTIONS } from "../src/protocol/migration.js";
import { CID_LENGTH } from "../src/protocol/version.js";
import { within } from "./support/wait.js";

/** Deterministic message body: index in the first 4 bytes, then a pattern derived from it. */
function body(i: number, size: number): Uint8Array {
  const b = new Uint8Array(Math.max(size, 4));
  new DataView(b.buffer).setUint32(0, i);
  for (let k = 4; k < b.length; k++) b[k] = (i * 31 + k) & 0xff;
  return b;
}

function checkBody(b: Uint8Array, expectIndex: number): void {
  const i = new DataView(b.buffer, b.byteOffset).getUint32(0);
  assert.equal(i, expectIndex, "messages arrive in order");
  for (let k = 4; k < b.length; k++) if (b[k] !== ((i * 31 + k) & 0xff)) assert.fail(`message ${i} corrupted at byte ${k}`);
}

describe("UDP sessions over real loopback sockets", function () {
  this.timeout(60_000);
  let server: FastnetServer;
  const clients: FastnetClientSession[] = [];

  beforeEach(async () => {
    server = new FastnetServer({});
    await server.listen(0, "127.0.0.1");
  });

  afterEach(async () => {
    for (const c of clients.splice(0)) if (c.readyState < 2) c.close();
    await server.close();
  });

  async function open(): Promise<{ client: FastnetClientSession; peer: FastnetSession }> {
    const peerP = once(server, "session") as Promise<[FastnetSession]>;
    const client = await connect(`http://127.0.0.1:${server.port}`, { fingerprint: server.fingerprint! });
    clients.push(client);
    const [peer] = await within(peerP, 5000, "server session");
    return { client, peer };
  }

  it("uses TLS 1.3, the same UDP port number as TCP, and a connection ID with no address in it", async () => {
    const { client } = await open();
    assert.equal(client.tlsProtocol, "TLSv1.3");
    assert.equal(server.udpPort, server.port);
    assert.equal(client.connection.cid.length, CID_LENGTH);
    assert.equal(client.readyState, 1);
  });

  it("carries 10,000 reliable messages of mixed sizes each way plus datagrams, none lost or reordered", async () => {
    const { client, peer } = await open();
    const N = 10_000;
    const sizes = [1, 4, 31, 200, 1100, 1200, 2500, 9000, 40_000];
    const sizeOf = (i: number): number => (i % 997 === 0 ? 150_000 : sizes[i % sizes.length]!);
    let serverGot = 0;
    let clientGot = 0;
    let datagramsAtServer = 0;
    const seenDatagrams = new Set<number>();
    const serverDone = new Promise<void>((resolve, reject) => {
      peer.on("message", (m) => {
        try {
          checkBody(m, serverGot);
          assert.equal(m.length, Math.max(sizeOf(serverGot), 4));
        } catch (err) {
          reject(err);
          return;
        }
        if (++serverGot === N) resolve();
      });
    });
    peer.on("datagram", (d) => {
      const i = new DataView(d.buffer, d.byteOffset).getUint32(0);
      assert.ok(!seenDatagrams.has(i), `datagram ${i} delivered twice`);
      seenDatagrams.add(i);
      datagramsAtServer++;
    });
    const clientDone = new Promise<void>((resolve, reject) => {
      client.on("message", (m) => {
        try {
          checkBody(m, clientGot);
        } catch (err) {
          reject(err);
          return;
        }
        if (++clientGot === N) resolve();
      });
    });
    // Send in windows so the send queue limit (512 KiB) is respected, as an application would.
    const pump = async (s: FastnetSession): Promise<void> => {
      for (let i = 0; i < N; ) {
        try {
          s.send(body(i, sizeOf(i)));
          i++;
          if (s === client && i % 10 === 0) s.sendUnreliable(body(i, 100));
        } catch (err) {
          assert.ok(err instanceof FastnetError && err.code === "SEND_QUEUE_FULL", String(err));
          await new Promise((r) => setImmediate(r));
        }
      }
    };
    await within(Promise.all([pump(client), pump(peer), serverDone, clientDone]), 50_000, "10,000 messages each way");
    assert.equal(serverGot, N);
    assert.equal(clientGot, N);
    assert.ok(datagramsAtServer > 0, "unreliable datagrams arrived");
    const stats = client.getStats();
    assert.equal(stats.messagesReceived, N);
    assert.equal(stats.dropped.decrypt + stats.dropped.replay + stats.dropped.malformed, 0);
  });

  it("delivers the close code and reason to the peer, from either side", async () => {
    const a = await open();
    const closed = once(a.peer, "close");
    a.client.close(4000, "consented leave ✓");
    const [code, reason, remote] = await within(closed, 5000, "server sees close");
    assert.deepEqual([code, reason, remote], [4000, "consented leave ✓", true]);

    const b = await open();
    const closed2 = once(b.client, "close");
    b.peer.close(4001, "server shutting down");
    const [code2, reason2] = await within(closed2, 5000, "client sees close");
    assert.deepEqual([code2, reason2], [4001, "server shutting down"]);
    assert.throws(() => b.client.send(new Uint8Array(1)), (e: unknown) => e instanceof FastnetError && e.code === "NOT_OPEN");
  });

  it("tells every client the code when the server closes", async () => {
    const a = await open();
    const b = await open();
    const pa = once(a.client, "close");
    const pb = once(b.client, "close");
    await server.close();
    const [[ca, ra], [cb]] = await within(Promise.all([pa, pb]), 5000, "clients see server close");
    assert.equal(ca, 1001);
    assert.equal(ra, "server closing");
    assert.equal(cb, 1001);
    server = new FastnetServer({});
    await server.listen(0, "127.0.0.1");
  });

  it("refuses a wrong pinned fingerprint and an unverified certificate with a clear error", async () => {
    const wrong = new Uint8Array(32).fill(7);
    await assert.rejects(
      connect(`http://127.0.0.1:${server.port}`, { fingerprint: wrong }),
      (e: unknown) => e instanceof FastnetError && e.code === "CERTIFICATE_REJECTED" && /fingerprint/.test(e.message),
    );
    await assert.rejects(
      connect(`http://127.0.0.1:${server.port}`),
      (e: unknown) => e instanceof FastnetError && e.code === "CERTIFICATE_REJECTED" && /self.signed/i.test(e.message),
    );
    assert.equal(server.sessionCount, 0);
  });

  it("verifies a user certificate against a given CA", async () => {
    const dev = await generateDevCertificate();
    const other = await generateDevCertificate();
    const tlsServer = new FastnetServer({ tls: { cert: dev.cert, key: dev.key } });
    await tlsServer.listen(0, "127.0.0.1");
    try {
      assert.equal(tlsServer.fingerprint, null, "no fingerprint is published for a user certificate");
      const s = await connect(`http://127.0.0.1:${tlsServer.port}`, { tls: { ca: dev.cert } });
      assert.equal(s.readyState, 1);
      s.close();
      await assert.rejects(
        connect(`http://127.0.0.1:${tlsServer.port}`, { tls: { ca: other.cert } }),
        (e: unknown) => e instanceof FastnetError && e.code === "CERTIFICATE_REJECTED",
      );
    } finally {
      await tlsServer.close();
    }
  });

  it("fails fast with a clear error when the UDP port is unreachable", async () => {
    const blackhole = dgram.createSocket("udp4");
    await new Promise<void>((r) => blackhole.bind(0, "127.0.0.1", r));
    const deadPort = blackhole.address().port;
    await new Promise<void>((r) => blackhole.close(r)); // now nothing listens there: ICMP port unreachable
    // The server advertises a port nobody listens on (as a wrong publicPort mapping would).
    const tcpOnly = new FastnetServer({ publicPort: deadPort });
    await tcpOnly.listen(0, "127.0.0.1");
    try {
      const t0 = performance.now();
      await assert.rejects(
        connect(`http://127.0.0.1:${tcpOnly.port}`, { fingerprint: tcpOnly.fingerprint!, bindTimeoutMs: 3000 }),
        (e: unknown) => e instanceof FastnetError && e.code === "SERVER_UNREACHABLE" && /UDP/.test(e.message),
      );
      assert.ok(performance.now() - t0 < 3000, "failed before the bind timeout");
    } finally {
      await tcpOnly.close();
    }
  });

  it("drops garbage and unknown connection IDs silently, counted, while a session keeps working", async () => {
    const { client, peer } = await open();
    const raw = dgram.createSocket("udp4");
    await new Promise<void>((r) => raw.bind(0, "127.0.0.1", r));
    const replies: Buffer[] = [];
    raw.on("message", (m) => replies.push(m));
    const send = (b: Uint8Array): Promise<void> => new Promise((r) => raw.send(b, server.udpPort, "127.0.0.1", () => r()));
    await send(new Uint8Array(3)); // too short
    await send(new Uint8Array(1300)); // too long
    const unknown = new Uint8Array(100);
    unknown[0] = 0x40;
    unknown.fill(0xab, 1, 1 + CID_LENGTH);
    await send(unknown);
    const forged = new Uint8Array(200);
    forged[0] = 0x43; // data packet, 4-byte packet number
    forged.set(client.connection.cid, 1); // right CID, no key
    forged.set([0, 0, 0x10, 0], 1 + CID_LENGTH); // a packet number above anything seen, so only the AEAD can refuse it
    await send(forged);
    // A round trip on the real session proves the garbage went through the socket first.
    const echoed = new Promise<Uint8Array>((r) => client.once("message", r));
    peer.once("message", (m) => peer.send(m));
    client.send(new Uint8Array([1, 2, 3]));
    assert.deepEqual([...(await within(echoed, 5000, "echo"))], [1, 2, 3]);
    assert.equal(server.stats.malformed, 2);
    assert.equal(server.stats.unknownCid, 1);
    assert.equal(peer.getStats().dropped.decrypt, 1);
    assert.equal(replies.length, 0, "nothing answers bad input");
    raw.close();
  });

  it("delivers a message the server sends as the session opens to a listener attached after connect resolves", async () => {
    server.once("session", (s) => s.send(Uint8Array.of(42, 43))); // rides in the answer to the bind
    const client = await connect(`http://127.0.0.1:${server.port}`, { fingerprint: server.fingerprint! });
    clients.push(client);
    const [m] = (await within(once(client, "message"), 5000, "welcome message")) as [Uint8Array];
    assert.deepEqual([...m], [42, 43]);
  });

  it("serves IPv4 and IPv6 clients when listening without a host (dual-stack UDP)", async function () {
    const any = new FastnetServer({});
    await any.listen(0);
    any.on("session", (s) => s.on("message", (m) => s.send(m)));
    try {
      for (const host of ["127.0.0.1", "[::1]"]) {
        const c = await connect(`http://${host}:${any.port}`, { fingerprint: any.fingerprint! });
        const echoed = new Promise<Uint8Array>((r) => c.once("message", r));
        c.send(Uint8Array.of(7));
        assert.deepEqual([...(await within(echoed, 5000, `echo over ${host}`))], [7]);
        c.close();
      }
    } finally {
      await any.close();
    }
  });

  it("refuses handshakes beyond maxSessions with SERVER_BUSY, at once (no retry)", async () => {
    const small = new FastnetServer({ maxSessions: 1 });
    await small.listen(0, "127.0.0.1");
    try {
      const first = await connect(`http://127.0.0.1:${small.port}`, { fingerprint: small.fingerprint! });
      await assert.rejects(
        connect(`http://127.0.0.1:${small.port}`, { fingerprint: small.fingerprint! }),
        (e: unknown) => e instanceof FastnetError && e.code === "SERVER_BUSY" && /server full/.test(e.message),
      );
      assert.equal(small.stats.sessionsRefused, 1);
      first.close();
    } finally {
      await small.close();
    }
  });
});

describe("server defaults", function () {
  it("applies the default migration limits when none are given", () => {
    assert.deepEqual(new FastnetServer({}).migration.options, { ...DEFAULT_MIGRATION_OPTIONS });
  });
});

describe("handshake through an https endpoint", function () {
  this.timeout(30_000);
  it("runs the upgrade over TLS (matchmaking on an https server) and fastnet's own TLS 1.3 inside it", async () => {
    const outer = await generateDevCertificate();
    const https = await import("node:https");
    const httpsServer = https.createServer({ cert: outer.cert, key: outer.key });
    const server = new FastnetServer({ server: httpsServer as unknown as import("node:http").Server });
    httpsServer.listen(0, "127.0.0.1");
    await once(httpsServer, "listening");
    await server.listen(0, "127.0.0.1");
    server.on("session", (s) => s.on("message", (m) => s.send(m)));
    try {
      const c = await connect(`https://127.0.0.1:${server.port}`, { fingerprint: server.fingerprint!, tls: { ca: outer.cert } });
      const echoed = new Promise<Uint8Array>((r) => c.once("message", r));
      c.send(Uint8Array.of(9));
      assert.deepEqual([...(await within(echoed, 5000, "echo"))], [9]);
      assert.equal(c.tlsProtocol, "TLSv1.3");
      c.close();
      await assert.rejects(
        connect(`https://127.0.0.1:${server.port}`, { fingerprint: server.fingerprint! }),
        (e: unknown) => e instanceof FastnetError && /self.signed|certificate/i.test(e.message),
        "the outer https certificate is verified too",
      );
    } finally {
      await server.close();
      httpsServer.close();
    }
  });
});
