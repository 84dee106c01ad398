/**
 * Issue 7, the Node driver against hostile input that holds valid keys or reaches the handshake: a
 * throwing listener, a hook that rejects after the client left, stray HTTP Upgrades. Real UDP and TLS
 * on loopback.
 */
import assert from "node:assert/strict";
import { once } from "node:events";
import { FastnetServer, connect, type FastnetClientSession, type FastnetServerOptions, type FastnetSession } from "../src/index.js";
import { captureConsoleError, type ConsoleCapture } from "./support/console-capture.js";
import { pollUntil, within } from "./support/wait.js";

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

    /** Open TCP connections of the server's HTTP server (upgraded handshakes included). */
    async function tcpConnections(): Promise<number> {
      return new Promise<number>((resolve, reject) => server.http.getConnections((err, n) => (err ? reject(err) : resolve(n))));
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
          const deadline = performance.now() + 5000;
          while ((await tcpConnections()) > 0) {
            if (performance.now() > deadline) assert.fail("the server never saw the connection go");
            await new Promise((r) => setTimeout(r, 5));
          }
          settle();
        });
        assert.deepEqual(seen, [], "no unhandled rejection");
        assert.equal(server.sessionCount, 0);
        const { client } = await open();
        assert.equal(client.readyState, 1, "the server still serves the next client");
      });
    }
  });
});
