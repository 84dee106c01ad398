/**
 * Unlinkable migration over real loopback UDP (issue 7): a client that moves to a new socket switches
 * to a spare connection ID, so an observer of the old and the new path sees unrelated CIDs in both
 * directions; the old CID is retired (the server stops routing it) and replaced; the session, its
 * keys and its message stream stay the same.
 */
import assert from "node:assert/strict";
import { once } from "node:events";
import type { FastnetClientSession, FastnetSession } from "../src/index.js";
import { ACTIVE_CID_LIMIT } from "../src/protocol/cid-set.js";
import { CID_OFFSET } from "../src/protocol/packet-header.js";
import { CID_LENGTH } from "../src/protocol/version.js";
import { assertUnlinkable, recordCidsByPath } from "./support/cid-paths.js";
import { Cleanup, RawUdp, lo, openSession, settle, startServer, tapClientSends, tapServerSends, waitFor, within } from "./support/migration-net.js";

const hex = (b: Uint8Array): string => Buffer.from(b).toString("hex");

async function echo(client: FastnetClientSession, peer: FastnetSession, n: number): Promise<void> {
  const got = once(client, "message");
  peer.once("message", (m) => peer.send(m));
  client.send(Uint8Array.of(n));
  const [m] = (await within(got, 3000, `echo ${n}`)) as [Uint8Array];
  assert.deepEqual([...m], [n]);
}

describe("unlinkable migration: a new socket gets a new connection ID", function () {
  this.timeout(30_000);
  const c = new Cleanup();
  afterEach(() => c.run());

  it("after rebind no packet on the new path carries the old CID (either direction); the old one is retired and stops working", async () => {
    const server = await startServer(c, { statelessResetKey: "cid migration" });
    const { client, peer } = await openSession(c, server);
    await waitFor(() => client.connection.spareCids === ACTIVE_CID_LIMIT - 1, 3000, "the spare CIDs");
    const paths = recordCidsByPath(client, server);
    const sent: Uint8Array[] = [];
    tapClientSends(client, (d) => void sent.push(Uint8Array.from(d)));
    await echo(client, peer, 1);
    const cid0 = hex(client.connection.cid);
    const oldPacket = sent[sent.length - 1]!;
    assert.equal(hex(oldPacket.subarray(CID_OFFSET, CID_OFFSET + CID_LENGTH)), cid0);

    await within(client.rebind({}), 3000, "port-only rebind");
    const cid1 = hex(client.connection.cid);
    assert.notEqual(cid1, cid0);
    await echo(client, peer, 2);
    await within(client.rebind({ localAddress: lo(3) }), 3000, "rebind to 127.0.0.3");
    const cid2 = hex(client.connection.cid);
    assert.ok(cid2 !== cid0 && cid2 !== cid1);
    for (let i = 3; i < 10; i++) await echo(client, peer, i);
    assertUnlinkable(paths, 3);
    assert.deepEqual([...paths.values()].map((p) => [...p.cids][0]), [cid0, cid1, cid2]);
    for (const p of paths.values()) assert.ok(p.up > 0 && p.down > 0, "both directions seen on every path");

    // The old CIDs were retired and replaced: the client holds two fresh spares again.
    await waitFor(() => client.connection.spareCids === ACTIVE_CID_LIMIT - 1, 3000, "replacement spares");
    assert.equal(client.connection.cidSequence, 2);
    // A packet under the first CID (a captured one, replayed) no longer reaches the session.
    const raw = await RawUdp.bind(c, lo(9));
    const unknownBefore = server.stats.unknownCid;
    const replayBefore = peer.getStats().dropped.replay;
    await raw.send(oldPacket, server.udpPort);
    await waitFor(() => server.stats.unknownCid === unknownBefore + 1, 3000, "the old CID counted as unknown");
    await settle();
    assert.equal(peer.getStats().dropped.replay, replayBefore, "it never reached the session");
    await echo(client, peer, 10);
    assert.equal(server.sessionCount, 1);
    assert.equal(server.stats.migrations, 2);
    assert.equal(client.readyState, 1);
  });

  it("an automatic rebind (dead path) switches CID too", async () => {
    const server = await startServer(c);
    const keepAliveMs = 200;
    const { client, peer } = await openSession(c, server, { autoRebindAfterKeepAlives: 2, keepAliveMs });
    await waitFor(() => client.connection.spareCids === ACTIVE_CID_LIMIT - 1, 3000, "the spare CIDs");
    await echo(client, peer, 1);
    const paths = recordCidsByPath(client, server);
    const dead = client.socket!.address();
    let cut = true;
    // The path dies towards the client: the server's packets there are lost.
    tapServerSends(server, (_d, port) => (cut && port === dead.port ? "drop" : undefined));
    await waitFor(() => client.rebinds === 1, 5000, "an automatic rebind");
    cut = false;
    await waitFor(() => client.connection.largestAcked >= 0 && server.stats.migrations === 1, 5000, "the migration");
    await echo(client, peer, 2);
    assertUnlinkable(paths, 2);
    assert.equal(client.connection.cidSequence, 1);
  });
});
