import assert from "node:assert/strict";
import { once } from "node:events";
import { performance } from "node:perf_hooks";
import { FastnetServer, connect, type FastnetClientSession, type FastnetSession } from "../src/index.js";
import { within } from "./support/wait.js";

/**
 * How fast a close reaches the peer when the closing side has just sent a message (the common case:
 * the SDK's last message, then a close). The close waits for that message to be acknowledged; the
 * PING it sends with the drain is acknowledged at once (docs/protocol.md §5), so the CLOSE follows
 * about one round trip later instead of after the peer's 25 ms ACK delay.
 */
describe("close latency (client close -> server close event)", function () {
  this.timeout(60_000);
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

  /** Median of `runs` measurements of close() on `closer` -> 'close' on `other`, each after a message. */
  async function measure(direction: "client" | "server", runs: number): Promise<number[]> {
    const times: number[] = [];
    for (let i = 0; i < runs; i++) {
      const { client, peer } = await open();
      const [closer, other] = direction === "client" ? [client, peer] : [peer, client];
      // A message each way first, acknowledged, so both sides are warmed up; then one unacknowledged.
      const got = once(other, "message");
      closer.send(Uint8Array.of(1, 2, 3));
      await within(got, 5000, "first message");
      const closed = once(other, "close") as Promise<[number, string, boolean]>;
      const last = once(other, "message");
      closer.send(Uint8Array.of(4, 5, 6));
      const t0 = performance.now();
      closer.close(4000, "bye");
      const [[code, reason]] = await within(Promise.all([closed, last]), 5000, "close at the peer");
      times.push(performance.now() - t0);
      assert.equal(code, 4000);
      assert.equal(reason, "bye");
    }
    return times.sort((a, b) => a - b);
  }

  for (const direction of ["client", "server"] as const) {
    it(`${direction} close after an unacknowledged message reaches the peer within a few ms (median of 9)`, async () => {
      const times = await measure(direction, 9);
      const median = times[4]!;
      console.log(`      ${direction} close -> peer close, ms: ${times.map((t) => t.toFixed(1)).join(" ")}`);
      // Loopback RTT is well under 1 ms; the old behaviour waited for the 25 ms ACK delay (27-29 ms).
      assert.ok(median < 12, `median ${median.toFixed(1)} ms, expected well below the 25 ms ACK delay`);
    });
  }
});
