/**
 * "No replies to junk" (issue 7): a real FastnetServer on loopback answers nothing it did not cause.
 * Over 100k random and mutated datagrams (random bytes, valid-looking headers with random CIDs, our
 * config octet and server id with a random rest, bit-flipped copies of a live client's packets) draw
 * zero datagrams and zero stateless resets, while a CID this server issued, or one its earlier
 * incarnation with the same statelessResetKey issued, still draws a reset.
 */
import assert from "node:assert/strict";
import { once } from "node:events";
import type { FastnetServer } from "../src/index.js";
import { MIN_RESET_LENGTH } from "../src/protocol/stateless-reset.js";
import { CID_LENGTH, MAX_DATAGRAM_SIZE } from "../src/protocol/version.js";
import { Cleanup, RawUdp, lo, openSession, settle, startServer, tapClientSends, tapServerSends, waitFor, within } from "./support/migration-net.js";
import { Prng } from "./support/sim-network.js";

const SERVER_ID = Uint8Array.of(0x5e, 0x17);
/** Config octet of every CID FastnetServer issues: config 0, 11 bytes follow. */
const CONFIG_OCTET = CID_LENGTH - 1;
const JUNK_DATAGRAMS = 120_000;
const BATCH = 500;

/** Data-shaped datagram: flags, `cid`, random rest, `length` bytes in all. */
function shaped(rng: Prng, length: number, cid: Uint8Array): Uint8Array {
  const d = rng.bytes(Math.max(length, 1 + CID_LENGTH));
  d[0] = 0x40 | (d[0]! & 0x23); // Data, random key phase and packet number length
  d.set(cid, 1);
  return d.subarray(0, length);
}

/** One junk datagram of kind `i % 5`; `real` are genuine packets captured from a live client. */
function junk(rng: Prng, i: number, real: Uint8Array[]): Uint8Array {
  const length = rng.next() < 0.8 ? rng.range(MIN_RESET_LENGTH + 1, 200) : rng.range(1, MAX_DATAGRAM_SIZE + 100);
  switch (i % 5) {
    case 0: // random bytes
      return rng.bytes(length);
    case 1: // a valid-looking header with a random CID
      return shaped(rng, length, rng.bytes(CID_LENGTH));
    case 2: {
      // our config octet and server id, random nonce and tag
      const cid = rng.bytes(CID_LENGTH);
      cid[0] = CONFIG_OCTET;
      cid.set(SERVER_ID, 1);
      return shaped(rng, length, cid);
    }
    case 3: {
      // a genuine packet with 1 to 3 distinct bits flipped inside its CID (prefix intact or not)
      const d = real[rng.int(real.length)]!.slice();
      const bits = new Set<number>();
      for (let k = rng.range(1, 3); bits.size < k; ) bits.add(rng.int(CID_LENGTH * 8));
      for (const b of bits) d[1 + (b >> 3)]! ^= 1 << (b & 7);
      return d;
    }
    default: {
      // the live CID's prefix and nonce with a random tag, or its tag with a random nonce
      const cid = real[0]!.slice(1, 1 + CID_LENGTH);
      if (rng.next() < 0.5) cid.set(rng.bytes(4), CID_LENGTH - 4);
      else cid.set(rng.bytes(CID_LENGTH - 4 - 1 - SERVER_ID.length), 1 + SERVER_ID.length);
      return shaped(rng, length, cid);
    }
  }
}

/** Sends every datagram from `raw` to the server, in batches, each batch awaited until the server read it all. */
async function flood(raw: RawUdp, server: FastnetServer, datagrams: () => Iterable<Uint8Array>): Promise<number> {
  let sent = 0;
  let batch = 0;
  const base = server.stats.datagramsReceived;
  for (const d of datagrams()) {
    raw.socket.send(d, server.udpPort, "127.0.0.1");
    sent++;
    if (++batch === BATCH) {
      batch = 0;
      const target = base + sent;
      await waitFor(() => server.stats.datagramsReceived >= target, 5000, "the server to read the batch", () => `${server.stats.datagramsReceived - base} of ${sent}`);
    }
  }
  const target = base + sent;
  await waitFor(() => server.stats.datagramsReceived >= target, 5000, "the server to read the last batch");
  return sent;
}

describe("CIDs are self-authenticating: no replies to junk", function () {
  this.timeout(120_000);
  const c = new Cleanup();
  afterEach(() => c.run());

  it(`${JUNK_DATAGRAMS} random and mutated datagrams draw zero replies; a CID this server issued still draws a reset`, async () => {
    const key = "junk test key";
    const server = await startServer(c, { statelessResetKey: key, serverId: SERVER_ID });
    // A live session, so lookups hit a populated table, and genuine packets to mutate.
    const { client, peer } = await openSession(c, server);
    const real: Uint8Array[] = [];
    tapClientSends(client, (d) => void (real.length < 64 && real.push(Uint8Array.from(d))));
    for (let i = 0; i < 8; i++) {
      const got = once(peer, "message");
      client.send(new Uint8Array(20 + i * 30));
      await within(got, 3000, "a message");
    }
    assert.ok(real.length >= 8);
    const serverSentTo = new Set<number>();
    tapServerSends(server, (_d, port) => void serverSentTo.add(port));
    const dropsBefore = server.stats.unknownCid + server.stats.malformed;

    const raw = await RawUdp.bind(c, lo(20));
    const rng = new Prng(0x7c1d);
    const n = await flood(raw, server, function* () {
      for (let i = 0; i < JUNK_DATAGRAMS; i++) yield junk(rng, i, real);
    });
    assert.equal(n, JUNK_DATAGRAMS);
    await settle();
    assert.equal(server.stats.statelessResetsSent, 0, "stateless resets");
    assert.equal(server.stats.statelessResetsLimited, 0, "resets held back by the rate limit (none were due)");
    assert.equal(raw.received.length, 0, "datagrams received by the junk sender");
    // Whatever the server sent meanwhile (the session's own keep-alives) went to the client only.
    assert.deepEqual([...serverSentTo].filter((port) => port !== client.socket!.address().port), []);
    // Every junk datagram was dropped at the door: too short or long, or a CID no session has.
    assert.equal(server.stats.unknownCid + server.stats.malformed - dropsBefore, JUNK_DATAGRAMS);

    // The live session was not disturbed.
    const echoed = once(client, "message");
    peer.once("message", (m) => peer.send(m));
    client.send(Uint8Array.of(42));
    assert.deepEqual([...((await within(echoed, 3000, "an echo")) as [Uint8Array])[0]], [42]);
    assert.equal(client.readyState, 1);

    // A CID this server issued and forgot (the session closed) draws exactly one reset.
    const issued = client.connection.cid.slice();
    const closed = once(peer, "close");
    client.close();
    await within(closed, 3000, "the session's close");
    await settle(); // the client's redundant CLOSE packets arrive after the session is gone
    const resetsBefore = server.stats.statelessResetsSent;
    await raw.send(shaped(rng, 100, issued), server.udpPort);
    await waitFor(() => raw.received.length === 1, 3000, "a reset for an issued CID");
    assert.equal(server.stats.statelessResetsSent, resetsBefore + 1);
    const reset = raw.received[0]!;
    assert.ok(reset.length < 100);
    assert.deepEqual([...reset.subarray(1, 1 + CID_LENGTH)], [...issued]);

    // The same issued CID behind flags that fail the first check of docs/protocol.md §3.1 (type 00 or
    // 11, a Bind shape with reserved bits, a reserved bit set) is malformed: dropped before any reply.
    const malformedBefore = server.stats.malformed;
    for (const flags of [0x00, 0xc0, 0x40 | 0x04, 0x80 | 0x08]) {
      const d = shaped(rng, 100, issued);
      d[0] = flags;
      await raw.send(d, server.udpPort);
    }
    await waitFor(() => server.stats.malformed === malformedBefore + 4, 3000, "the malformed datagrams to be counted");
    await settle();
    assert.equal(raw.received.length, 1, "no reply to a malformed datagram, even under an issued CID");
  });

  it("a restarted server with the same statelessResetKey answers its predecessor's CID, and junk with none", async () => {
    const key = "restart junk key";
    const first = await startServer(c, { statelessResetKey: key, serverId: SERVER_ID });
    const { client } = await openSession(c, first);
    const issued = client.connection.cid.slice();
    const second = await startServer(c, { statelessResetKey: key, serverId: SERVER_ID });
    const raw = await RawUdp.bind(c, lo(21));
    const rng = new Prng(0x2e57);
    await flood(raw, second, function* () {
      for (let i = 0; i < 20_000; i++) yield junk(rng, i, [shaped(rng, 80, issued)]);
    });
    await settle();
    assert.equal(second.stats.statelessResetsSent, 0);
    assert.equal(raw.received.length, 0);
    await raw.send(shaped(rng, 64, issued), second.udpPort);
    await waitFor(() => raw.received.length === 1, 3000, "a reset for the predecessor's CID");
    assert.equal(second.stats.statelessResetsSent, 1);
    assert.deepEqual([...raw.received[0]!.subarray(1, 1 + CID_LENGTH)], [...issued]);
  });
});
