/**
 * Issue 7, the Node driver against hostile input that holds valid keys or reaches the handshake: a
 * throwing listener, a hook that rejects after the client left, stray HTTP Upgrades. Real UDP and TLS
 * on loopback.
 */
import assert from "node:assert/strict";
import { once } from "node:events";
import net from "node:net";
import { FastnetServer, connect, type FastnetClientSession, type FastnetServerOptions, type FastnetSession } from "../src/index.js";
import { captureConsoleError, type ConsoleCapture } from "./support/console-capture.js";
import { pollUntil, pollUntilAsync, within } from "./support/wait.js";

const text = (s: string): Uint8Array => new TextEncoder().encode(s);
const str = (b: Uint8Array): string => new TextDecoder().decode(b);
const waitFor = (cond: () => boolean, ms: number, what: string): Promise<void> => pollUntil(cond, ms, what, undefined, 5);

describe("hostile input against the Node driver", function () {
  this.timeout(30_000);
  let server: FastnetServer;
  const clients: FastnetClientSession[] = [];
  let capture: ConsoleCapture | undefined;

  async function start(options: FastnetServerOptions = {}): Promise<void> {
    server = new FastnetServer(options);
    await server.listen(0, "127.0.0.1");
  }

  async function open(): Promise<{ client: FastnetClientSession; peer: FastnetSession }> {
    const peerP = once(server, "session") as Promise<[FastnetSession]>;
    const client = await connect(`http://127.0.0.1:${server.port}`, { fingerprint: server.fingerprint! });
    clients.push(client);
    const [peer] = await within(peerP, 5000, "server session");
    return { client, peer };
  }

  /** Waits (bounded) until the server's HTTP server holds at most `n` TCP connections (upgraded ones included). */
  async function tcpConnectionsDrop(n: number, ms = 5000): Promise<void> {
    const count = (): Promise<number> =>
      new Promise<number>((resolve, reject) => server.http.getConnections((err, c) => (err ? reject(err) : resolve(c))));
    let c = -1;
    await pollUntilAsync(async () => (c = await count()) <= n, ms, `at most ${n} TCP connections`, 5).catch(() => {
      assert.fail(`the server still holds ${c} TCP connections after ${ms} ms`);
    });
  }

  afterEach(async () => {
    capture?.restore();
    capture = undefined;
    for (const c of clients.splice(0)) if (c.readyState < 3) c.abort(1000, "test teardown");
    await server?.close();
  });

  describe("a listener that throws", () => {
    it("server: the other listeners still get every message, the error goes to 'listenerError', replies and ACKs go out", async () => {
      await start();
      const { client, peer } = await open();
      const errors: Array<[unknown, string]> = [];
      peer.on("listenerError", (err, event) => void errors.push([err, event]));
      peer.on("message", (m) => {
        if (str(m) === "boom") throw new Error("listener bug");
      });
      const seen: string[] = [];
      peer.on("message", (m) => {
        seen.push(str(m));
        peer.send(text(`re:${str(m)}`));
      });
      const replies: string[] = [];
      client.on("message", (m) => void replies.push(str(m)));
      client.send(text("boom"));
      client.send(text("after"));
      await waitFor(() => replies.length === 2, 5000, "both replies");
      assert.deepEqual(seen, ["boom", "after"], "the second listener saw both messages, in order");
      assert.deepEqual(replies, ["re:boom", "re:after"]);
      assert.equal(errors.length, 1);
      assert.equal((errors[0]![0] as Error).message, "listener bug");
      assert.equal(errors[0]![1], "message");
      await waitFor(() => client.getStats().bytesInFlight === 0, 5000, "the client's messages acknowledged");
      assert.equal(peer.readyState, 1);
    });

    it("client: an exception in a 'message' listener is reported with console.error and does not escape the socket handler", async () => {
      await start();
      const { client, peer } = await open();
      capture = captureConsoleError();
      const got: string[] = [];
      client.on("message", (m) => {
        got.push(str(m));
        if (got.length === 1) throw new Error("user handler bug");
      });
      peer.send(text("one"));
      peer.send(text("two"));
      await waitFor(() => got.length === 2, 5000, "both messages at the client");
      peer.send(text("three"));
      await waitFor(() => got.length === 3, 5000, "a later message at the client");
      assert.deepEqual(got, ["one", "two", "three"]);
      assert.equal(capture.lines.length, 1, capture.lines.join("\n"));
      assert.match(capture.lines[0]!, /'message' listener of a session threw[\s\S]*user handler bug/);
      assert.equal(client.readyState, 1);
    });

    it("a lone once('message') listener gets one message; listeners added and removed later get theirs, in order", async () => {
      await start();
      const { client, peer } = await open();
      const first: string[] = [];
      const rest: string[] = [];
      const also: string[] = [];
      peer.once("message", (m) => {
        first.push(str(m));
        peer.on("message", (m2) => void rest.push(str(m2))); // joins for the next message, not this one
      });
      client.send(text("a"));
      client.send(text("b"));
      await waitFor(() => rest.length === 1, 5000, "the second message");
      const extra = (m: Uint8Array): void => void also.push(str(m));
      peer.on("message", extra); // two listeners now
      client.send(text("c"));
      await waitFor(() => rest.length === 2, 5000, "the third message");
      peer.off("message", extra); // one again
      client.send(text("d"));
      await waitFor(() => rest.length === 3, 5000, "the fourth message");
      assert.deepEqual(first, ["a"]);
      assert.deepEqual(rest, ["b", "c", "d"]);
      assert.deepEqual(also, ["c"]);
    });
  });

  describe("a verifyHello hook that settles after the client left", () => {
    /** Unhandled rejections while `run` goes on (mocha re-emits them on process; this records them). */
    async function unhandledDuring(run: () => Promise<void>): Promise<unknown[]> {
      const seen: unknown[] = [];
      const listener = (reason: unknown): void => void seen.push(reason);
      process.on("unhandledRejection", listener);
      try {
        await run();
        // Unhandled rejections are reported once the microtask queue drains: let two turns pass.
        for (let i = 0; i < 2; i++) await new Promise<void>((r) => setImmediate(r));
      } finally {
        process.off("unhandledRejection", listener);
      }
      return seen;
    }

    for (const outcome of ["rejects", "resolves"] as const) {
      it(`${outcome}: no unhandled rejection, no session, and the server keeps serving`, async () => {
        let settle!: () => void;
        let entered!: () => void;
        const hookEntered = new Promise<void>((r) => (entered = r));
        let calls = 0;
        await start({
          verifyHello: () => {
            if (++calls > 1) return; // later clients are welcome at once
            return new Promise<void>((resolve, reject) => {
              settle = outcome === "rejects" ? () => reject(new Error("not welcome")) : resolve;
              entered();
            });
          },
        });
        const seen = await unhandledDuring(async () => {
          // The client gives up (its handshake times out) while the hook is pending; its connection goes.
          const gaveUp = connect(`http://127.0.0.1:${server.port}`, { fingerprint: server.fingerprint!, handshakeTimeoutMs: 1000 }).then(
            () => assert.fail("the first connect should not succeed"),
            (err: Error) => err,
          );
          await within(hookEntered, 5000, "the hook to be called");
          const err = await within(gaveUp, 5000, "the client to give up");
          assert.match(err.message, /timed out/);
          await tcpConnectionsDrop(0);
          settle();
        });
        assert.deepEqual(seen, [], "no unhandled rejection");
        assert.equal(server.sessionCount, 0);
        const { client } = await open();
        assert.equal(client.readyState, 1, "the server still serves the next client");
      });
    }
  });

  describe("stray HTTP requests get an answer at once", () => {
    /** Sends `request` on a raw socket; resolves with all it received once the server closed it (bounded). */
    function exchange(port: number, request: string, ms = 3000): Promise<string> {
      return new Promise<string>((resolve, reject) => {
        const s = net.connect(port, "127.0.0.1");
        let got = "";
        const timer = setTimeout(() => {
          s.destroy();
          reject(new Error(`no close within ${ms} ms; got ${JSON.stringify(got.slice(0, 120))}`));
        }, ms);
        s.on("data", (d: Buffer) => (got += d.toString("latin1")));
        s.on("error", () => {});
        s.on("close", () => {
          clearTimeout(timer);
          resolve(got);
        });
        s.write(request);
      });
    }
    const upgrade = (path: string, token: string): string => `GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: ${token}\r\n\r\n`;

    it("50 Upgrades to another path: each gets a 404 naming the cause and is closed", async () => {
      await start();
      const answers = await Promise.all(Array.from({ length: 50 }, () => exchange(server.port, upgrade("/somewhere/else", "custom/1"))));
      for (const a of answers) {
        assert.match(a, /^HTTP\/1\.1 404 Not Found\r\n/);
        assert.match(a, /nothing here takes an Upgrade to "custom\/1": fastnet handshakes use "Upgrade: fastnet\/2" at \/\.fastnet/);
      }
      await tcpConnectionsDrop(0);
    });

    it("an unknown Upgrade token on the handshake path gets a 426 naming the token expected", async () => {
      await start();
      const a = await exchange(server.port, upgrade("/.fastnet", "fastnet/0"));
      assert.match(a, /^HTTP\/1\.1 426 Upgrade Required\r\n/);
      assert.match(a, /\r\nUpgrade: fastnet\/2\r\n/);
      assert.match(a, /\/\.fastnet takes "Upgrade: fastnet\/2", not "fastnet\/0"/);
    });

    it("a request to the handshake path without Connection: Upgrade gets a 426 saying what is missing", async () => {
      await start();
      const a = await exchange(server.port, "GET /.fastnet HTTP/1.1\r\nHost: x\r\nUpgrade: fastnet/2\r\n\r\n");
      assert.match(a, /^HTTP\/1\.1 426 Upgrade Required\r\n/);
      assert.match(a, /"Connection: Upgrade" and "Upgrade: fastnet\/2"/);
    });

    it("a WebSocket upgrade is closed with 1008 and a reason naming fastnet", async () => {
      await start();
      const a = await exchange(
        server.port,
        "GET /room HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
      );
      assert.match(a, /^HTTP\/1\.1 101 Switching Protocols\r\n/);
      assert.match(a, /\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK\+xOo=\r\n/, "the RFC 6455 example key's answer");
      const frame = Buffer.from(a.slice(a.indexOf("\r\n\r\n") + 4), "latin1");
      assert.equal(frame[0], 0x88, "a close frame");
      assert.equal(frame.readUInt16BE(2), 1008);
      assert.equal(frame.subarray(4, 2 + frame[1]!).toString(), "this server speaks fastnet, not WebSocket");
    });

    it("with another 'upgrade' listener, stray upgrades are left to it", async () => {
      await start();
      const seen: string[] = [];
      server.http.on("upgrade", (req: { url?: string }, socket: net.Socket) => {
        if (req.url === "/.fastnet") return;
        seen.push(req.url ?? "");
        socket.end("HTTP/1.1 418 I'm a teapot\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
      });
      const a = await exchange(server.port, upgrade("/tea", "websocket"));
      assert.match(a, /^HTTP\/1\.1 418 /);
      assert.deepEqual(seen, ["/tea"]);
      const { client } = await open();
      assert.equal(client.readyState, 1, "fastnet handshakes still work beside it");
    });
  });
});
