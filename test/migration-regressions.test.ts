/** Regressions found by the migration tests: each once failed on the code of its day. */
import assert from "node:assert/strict";
import { once } from "node:events";
import { MIN_RESET_LENGTH, buildStatelessReset } from "../src/protocol/stateless-reset.js";
import { exchange, openPair, sum, transfer, collect } from "./support/migration-core.js";
import { Cleanup, RawUdp, lo, localOf, openSession, seqMessage, settle, startServer, tapClientSends, tapServerSends, waitFor, within } from "./support/migration-net.js";

describe("migration regressions (core)", function () {
  it("an ACK of packets sent before startPathValidation does not lift the anti-amplification limit", function () {
    const p = openPair(20);
    exchange(p);
    // The server sends data to the old address; the client's ACK for it is held back (reordered / captured).
    p.server.send(new Uint8Array(3000));
    transfer(p, "server");
    const heldAck = transfer(p, "client", () => false);
    assert.ok(heldAck.length >= 1, "the client acknowledged");
    // A newer packet from a new address: the server moves there and must cap what it sends at 3x.
    p.now += 5;
    const trigger = 100;
    p.server.startPathValidation(p.now, trigger, true);
    p.server.send(new Uint8Array(100_000));
    const before = transfer(p, "server", () => false);
    assert.ok(sum(before) <= 3 * trigger);
    // The held (older) ACK arrives: it proves nothing about the new address.
    for (const d of heldAck) p.server.handleDatagram(d, p.now);
    const received = trigger + sum(heldAck);
    const after = transfer(p, "server", () => false);
    assert.ok(sum(before) + sum(after) <= 3 * received, `sent ${sum(before) + sum(after)} bytes to the unvalidated address for ${received} received`);
  });

  for (const trigger of [MIN_RESET_LENGTH + 1, MIN_RESET_LENGTH + 2, MIN_RESET_LENGTH + 3]) {
    it(`a stateless reset answering a ${trigger}-byte trigger closes the client whatever its random first byte`, function () {
      for (let pnBits = 0; pnBits < 4; pnBits++) {
        const p = openPair(30 + pnBits);
        exchange(p);
        const reset = buildStatelessReset(p.cid, p.resetToken, trigger, (o) => {
          o.fill(0x5a);
          o[0] = pnBits; // the two packet-number-length bits the server leaves random
        })!;
        p.client.handleDatagram(reset, p.now);
        collect(p);
        assert.equal(p.client.state, "closed", `reset of ${reset.length} bytes with pn length bits ${pnBits}: client ${p.client.state}, dropped ${JSON.stringify(p.client.getStats().dropped)}`);
      }
    });
  }
});


describe("migration regressions (loopback UDP)", function () {
  this.timeout(30_000);
  const c = new Cleanup();
  afterEach(() => c.run());

  it("an older captured packet carrying an ACK does not lift the amplification cap towards a spoofed address", async () => {
    const server = await startServer(c);
    const { client, peer } = await openSession(c, server);
    const spoof = await RawUdp.bind(c, lo(7));
    const attacker = await RawUdp.bind(c, lo(8));
    // A first exchange, so the client's address is validated from the handshake on.
    const first = once(peer, "message");
    client.send(seqMessage(0));
    await within(first, 3000, "a first message");
    const echo = once(client, "message");
    peer.send(seqMessage(0));
    await within(echo, 3000, "a first reply");
    await waitFor(() => peer.getStats().bytesInFlight === 0, 3000, "the client's ACK (validates its address)");
    const held: Buffer[] = [];
    tapClientSends(client, (d) => {
      held.push(Buffer.from(d));
      return "drop"; // captured by the attacker, lost for the server
    });
    // The server sends data; the client's ACKs for it are captured.
    const got = once(client, "message");
    peer.send(seqMessage(1, 4000));
    await within(got, 3000, "the server's message");
    client.send(seqMessage(2, 20)); // one more, newer packet
    await waitFor(() => held.length >= 2, 2000, "two captured packets");
    const older = held[0]!;
    const newest = held[held.length - 1]!;
    await spoof.send(newest, server.udpPort); // the session moves to the spoofed address, capped at 3x
    await waitFor(() => spoof.received.length > 0, 2000, "the challenge to the spoofed address");
    peer.send(seqMessage(3, 200_000));
    await settle();
    await attacker.send(older, server.udpPort); // older: processed, does not move; its ACK must not validate the spoofed path
    await waitFor(() => server.stats.pathValidationsFailed === 1, 5000, "the failed validation");
    await settle();
    const inBytes = spoof.bytesSent + attacker.bytesSent;
    assert.ok(spoof.bytesReceived <= 3 * inBytes, `${spoof.bytesReceived} bytes sent to the spoofed address for ${inBytes} bytes received`);
  });

  it("rebind({}) after a move to 127.0.0.3 keeps 127.0.0.3 (documented: same address, a fresh port)", async () => {
    const server = await startServer(c);
    const { client } = await openSession(c, server);
    await client.rebind({ localAddress: lo(3) });
    await client.rebind({});
    assert.equal(localOf(client).address, lo(3));
  });

  it("an automatic rebind after a manual move to 127.0.0.3 stays on 127.0.0.3", async () => {
    const server = await startServer(c);
    const { client } = await openSession(c, server, { autoRebindAfterKeepAlives: 2, keepAliveMs: 200 });
    await client.rebind({ localAddress: lo(3) });
    const dead = localOf(client);
    tapServerSends(server, (_d, port, address) => (port === dead.port && address === dead.address ? "drop" : undefined));
    await waitFor(() => client.rebinds >= 2, 5000, "the automatic rebind");
    await settle();
    assert.equal(localOf(client).address, lo(3));
  });

  it("an idle client (keep-alives only) learns of a server restart by a stateless reset, well before its idle timeout", async () => {
    const key = "idle reset";
    const first = await startServer(c, { statelessResetKey: key });
    // No automatic rebind: its full-size probe would trigger a reset; the 27-byte keep-alive PINGs never do.
    const { client } = await openSession(c, first, { keepAliveMs: 200, idleTimeoutMs: 10_000, autoRebindAfterKeepAlives: 0 });
    tapServerSends(first, () => "drop");
    await first.close();
    const second = await startServer(c, { statelessResetKey: key, udpPort: first.udpPort });
    const sizes: number[] = [];
    tapClientSends(client, (d) => void sizes.push(d.length));
    const closed = once(client, "close") as Promise<[number, string]>;
    try {
      const [code, reason] = await within(closed, 3000, "the client's close");
      assert.equal(code, 1006);
      assert.match(reason, /stateless reset/);
    } catch (err) {
      throw new Error(`${(err as Error).message}; client sent ${sizes.length} packets of sizes ${[...new Set(sizes)].join(",")}; resets sent ${second.stats.statelessResetsSent}, unknownCid ${second.stats.unknownCid}`);
    }
  });
});
