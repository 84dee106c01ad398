import assert from "node:assert/strict";
import { once } from "node:events";
import { performance } from "node:perf_hooks";
import { FastnetServer, connect, type FastnetClientSession, type FastnetSession } from "../src/index.js";
import { pollUntil, within } from "./support/wait.js";

/**
 * How long a close takes to reach the peer when the closing side has just sent a message (the usual
 * case: the SDK's last message, then a leave). The close waits for that message to be acknowledged;
 * the IMMEDIATE_ACK frame sent with the drain (docs/protocol.md §4, §5) makes the peer acknowledge at
 * once, so the CLOSE follows about one loopback round trip later instead of after the peer's 25 ms
 * ACK delay. Real sockets on loopback, one session per measurement.
 */
describe("close latency on loopback (close right after a send -> the peer's close event)", function () {
  this.timeout(60_000);
  const RUNS = 9;
  let server: FastnetServer;
  const clients: FastnetClientSession[] = [];

  beforeEach(async () => {
    server = new FastnetServer({});
    await server.listen(0, "127.0.0.1");
  });

  afterEach(async () => {
    for (const c of clients.splice(0)) if (c.readyState < 2) c.abort(1000);
    await server.close();
  });

  async function open(): Promise<{ client: FastnetClientSession; peer: FastnetSession }> {
    const peerP = once(server, "session") as Promise<[FastnetSession]>;
    const client = await connect(`http://127.0.0.1:${server.port}`, { fingerprint: server.fingerprint! });
    clients.push(client);
    const [peer] = await within(peerP, 5000, "server session");
    return { client, peer };
  }

  /** Sorted times of close() on one side -> 'close' on the other, each right after an unacknowledged message. */
  async function measure(closerSide: "client" | "server"): Promise<number[]> {
    const times: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      const { client, peer } = await open();
      const [closer, other] = closerSide === "client" ? [client, peer] : [peer, client];
      // One message first, delivered and acknowledged, so that both sides have RTT samples and the
      // peer owes no ACK (a second unacknowledged packet would be acknowledged at once anyway); then
      // the message the close waits for.
      const first = once(other, "message");
      closer.send(Uint8Array.of(1));
      await within(first, 5000, "first message");
      await pollUntil(() => closer.connection.queuedBytes === 0, 5000, "first message acknowledged", undefined, 1);
      const last = once(other, "message") as Promise<[Uint8Array]>;
      const closed = once(other, "close") as Promise<[number, string, boolean]>;
      closer.send(Uint8Array.of(2, 3, 4));
      const t0 = performance.now();
      closer.close(4000, "bye");
      const [[message], [code, reason]] = await within(Promise.all([last, closed]), 5000, "message and close at the peer");
      times.push(performance.now() - t0);
      assert.deepEqual([...message], [2, 3, 4], "the message sent before the close arrived");
      assert.deepEqual([code, reason], [4000, "bye"]);
    }
    return times.sort((a, b) => a - b);
  }

  for (const side of ["client", "server"] as const) {
    it(`${side} close -> peer's close event: median of ${RUNS} well under the 25 ms ACK delay`, async () => {
      const times = await measure(side);
      const median = times[Math.floor(RUNS / 2)]!;
      if (process.env.FASTNET_CLOSE_REPORT) console.log(`      ${side} close -> peer close (ms): ${times.map((t) => t.toFixed(1)).join(" ")}`);
      // Loopback round trips take well under a millisecond; waiting for the delayed ACK took 27-29 ms.
      // The margin is for a loaded 2-core machine.
      assert.ok(median < 12, `median ${median.toFixed(1)} ms (all: ${times.map((t) => t.toFixed(1)).join(" ")})`);
    });
  }
});
