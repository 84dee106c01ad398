/**
 * Three game processes on one Redis behind one public UDP port of a real nginx (stream + njs,
 * examples/cluster/nginx.conf and fastnet-cid.js): each UDP flow goes to the process whose server id
 * its connection ID carries, also after the client moved to a new port and a new IP with a fresh CID;
 * matchmaking goes to any process and the handshake to the process named by the seat reservation's
 * publicAddress (its own TCP port on nginx). The arena bots play through it.
 */
import assert from "node:assert/strict";
import dgram from "node:dgram";
import { readFile } from "node:fs/promises";
import type { Room as SdkRoom } from "@colyseus/sdk";
import { startBots, type ArenaBot } from "../examples/arena/bot.js";
import { DEFAULT_LAYOUT, renderNginxConfig } from "../examples/cluster/nginx.js";
import { here } from "../examples/cluster/processes.js";
import { FastnetClient, transportOf } from "../src/client.js";
import { allStats, ask, useCluster, clientPath, migrationsOf, nginxFlows, nginxRequests, where } from "./support/cluster.js";
import { pollUntil, within } from "./support/wait.js";

describe("cluster: three processes behind one nginx UDP port, routed by connection ID", function () {
  this.timeout(90_000);
  const suite = useCluster({ nginx: true });
  const rooms = suite.rooms;

  const publicUdp = (): string => `${suite.cluster.layout!.host}:${suite.cluster.layout!.udpPort}`;
  const backendOf = (serverId: number): string => `127.0.0.1:${suite.cluster.game(serverId).info.udpPort}`;

  it("ships nginx.conf as rendered for the default layout", async () => {
    assert.equal(await readFile(here("./nginx.conf"), "utf8"), renderNginxConfig(DEFAULT_LAYOUT));
  });

  it("clients join through the one public address, play, move to a new port and a new IP, and keep their seats", async () => {
    const client = new FastnetClient(suite.cluster.endpoint);
    // One room on each process (a probe room may name its process).
    for (const game of suite.cluster.games) {
      rooms.push(await within(client.create("probe", { onProcess: game.info.processId }), 15_000, "create"));
    }
    const holders = await Promise.all(rooms.map((r) => where(r)));
    assert.deepEqual(holders.map((h) => h.serverId), suite.cluster.games.map((g) => g.info.serverId), "one room on each process");
    for (const [i, room] of rooms.entries()) {
      const holder = holders[i]!;
      const session = transportOf(room).session!;
      // The client only knows nginx: UDP goes to its public port.
      assert.equal(`${session.remoteAddress}:${session.remotePort}`, publicUdp());
      const paths = [clientPath(room)];
      assert.deepEqual(await ask(room, "echo", { i }), { i });
      // The holder validates each move (nginx proxies each client flow from a port of its own) and
      // says so in a MIGRATION line; a move made before the previous one was validated skips it.
      const moved = (n: number): Promise<void> =>
        pollUntil(() => migrationsOf(suite.cluster.game(holder.serverId), room.sessionId).length === n, 5000, `MIGRATION line ${n}`, undefined, 20);
      await within(transportOf(room).rebind(), 5000, "rebind to a new port");
      paths.push(clientPath(room));
      await moved(1);
      await within(transportOf(room).rebind({ localAddress: "127.0.0.2" }), 5000, "rebind to a new IP");
      paths.push(clientPath(room));
      await moved(2);
      assert.deepEqual(await ask(room, "echo", { i, moved: 2 }), { i, moved: 2 });
      assert.deepEqual(await where(room), holder, "the same seat in the same room on the same process");
      assert.equal(paths[2]!.local.split(":")[0], "127.0.0.2");
      assert.equal(new Set(paths.map((p) => Buffer.from(p.cid).toString("hex"))).size, 3, "a fresh CID on each path");
      const flows = await nginxFlows(suite.cluster);
      for (const path of paths) {
        assert.equal(path.cid[1], holder.serverId, "every CID carries the holder's server id");
        assert.equal(flows.get(path.local), backendOf(holder.serverId), `nginx sent the flow from ${path.local} to the holder`);
      }
    }
    const stats = await allStats(suite.cluster);
    for (const [id, s] of stats) {
      assert.equal(s.stats.unknownCid, 0, `process ${id} got no datagram for a CID it does not hold`);
      assert.equal(s.sessions, 1, `process ${id} holds its one session`);
      assert.equal(s.stats.migrations, 2, `process ${id} validated its client's two moves`);
    }
  });

  it("matchmaking reaches any process; each handshake reaches the process its seat names", async () => {
    const client = new FastnetClient(suite.cluster.endpoint);
    const room = await within(client.joinOrCreate("probe"), 15_000, "join or create");
    rooms.push(room);
    const holder = await where(room);
    const backend = suite.cluster.layout!.backends.find((b) => b.serverId === holder.serverId)!;
    // The handshake of a session is logged once its tunnel closes, right after the session opened.
    let requests = await nginxRequests(suite.cluster);
    const deadline = performance.now() + 5000;
    while (!requests.some((r) => r.serverPort === backend.publicTcpPort && r.request.startsWith("GET /.fastnet")) && performance.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      requests = await nginxRequests(suite.cluster);
    }
    const handshakes = requests.filter((r) => r.request.startsWith("GET /.fastnet"));
    assert.ok(handshakes.length >= 1, "handshakes logged");
    for (const h of handshakes) {
      assert.equal(h.status, 101);
      const to = suite.cluster.layout!.backends.find((b) => b.publicTcpPort === h.serverPort);
      assert.ok(to, `a handshake came in on a process's own port, not ${h.serverPort}`);
      assert.equal(h.upstream, `${to.host}:${to.port}`, "and went to that process");
    }
    assert.ok(handshakes.some((h) => h.serverPort === backend.publicTcpPort), "this room's handshake went to its holder");
    const matchmaking = requests.filter((r) => r.request.startsWith("POST /matchmake/"));
    assert.ok(matchmaking.length >= 2);
    for (const m of matchmaking) assert.equal(m.serverPort, suite.cluster.layout!.tcpPort);
    assert.ok(new Set(matchmaking.map((m) => m.upstream)).size >= 2, "matchmaking spread over the processes");

    // A seat presented to another process's port is refused there: routing the handshake matters.
    const wrong = suite.cluster.layout!.backends.find((b) => b.serverId !== holder.serverId)!;
    const reservation = await within(
      (async () => {
        const res = await fetch(`${suite.cluster.endpoint}/matchmake/joinById/${room.roomId}`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: "{}",
        });
        return (await res.json()) as { publicAddress?: string };
      })(),
      5000,
      "a seat reservation",
    );
    assert.equal(reservation.publicAddress, `${backend.host}:${backend.publicTcpPort}`);
    await assert.rejects(
      within(client.consumeSeatReservation({ ...reservation, publicAddress: `${wrong.host}:${wrong.publicTcpPort}` } as never), 15_000, "join at the wrong process"),
    );
  });

  it("datagrams with an unknown server id or config octet are dropped by nginx; a known one goes to its process", async () => {
    const before = await allStats(suite.cluster);
      const datagram = (config: number, sid: number): Buffer => {
        const d = Buffer.alloc(64, 0x55);
        d[0] = 0x40;
        d[1] = config;
        d[2] = sid;
        return d;
      };
      const [host, port] = [suite.cluster.layout!.host, suite.cluster.layout!.udpPort];
      // One socket per datagram: nginx routes a flow (client address:port) by its first datagram.
      const send = async (d: Buffer): Promise<string> => {
        const s = dgram.createSocket("udp4");
        await new Promise<void>((resolve) => s.bind(0, "127.0.0.1", () => resolve()));
        await new Promise<void>((resolve, reject) => s.send(d, port, host, (err) => (err ? reject(err) : resolve())));
        const from = `127.0.0.1:${s.address().port}`;
        s.close();
        return from;
      };
      const unknownId = await send(datagram(0x0b, 0x09)); // no process 9
      const otherConfig = await send(datagram(0x2b, 0x02)); // another config octet
      const toTwo = await send(datagram(0x0b, 0x02)); // process 2: a CID it never issued
      let after = await allStats(suite.cluster);
      const deadline = performance.now() + 5000;
      while (after.get(2)!.stats.datagramsReceived === before.get(2)!.stats.datagramsReceived && performance.now() < deadline) {
        await new Promise((r) => setTimeout(r, 50));
        after = await allStats(suite.cluster);
      }
      assert.equal(after.get(2)!.stats.unknownCid - before.get(2)!.stats.unknownCid, 1, "process 2 got its datagram (and dropped the forged CID)");
      for (const id of [1, 2, 3]) {
        assert.equal(
          after.get(id)!.stats.datagramsReceived - before.get(id)!.stats.datagramsReceived,
          id === 2 ? 1 : 0,
          `process ${id}: only the datagram that named it`,
        );
      }
      const flows = await nginxFlows(suite.cluster);
      assert.equal(flows.get(unknownId), null, "refused by fastnet-cid.js: unknown server id");
      assert.equal(flows.get(otherConfig), null, "refused by fastnet-cid.js: not a fastnet config octet");
      assert.equal(flows.get(toTwo), backendOf(2));
  });

  it("the arena bots play through the cluster", async () => {
    const bots: ArenaBot[] = await within(startBots(suite.cluster.endpoint, 4, { chatEveryMs: 200 }), 30_000, "4 bots join");
    try {
      const before = await allStats(suite.cluster);
      await pollUntil(() => bots.every((b) => b.counters.patches >= 20 && b.counters.chatsReceived >= 1), 10_000, "patches and chat for every bot", undefined, 50);
      for (const bot of bots) assert.equal(transportOf(bot.room!).session!.remotePort, suite.cluster.layout!.udpPort);
      // While they play (datagrams that arrive after a session closed count as unknown too).
      const after = await allStats(suite.cluster);
      for (const [id, s] of after) {
        assert.equal(s.stats.unknownCid, before.get(id)!.stats.unknownCid, `process ${id}: no datagram for a CID it does not hold`);
      }
    } finally {
      await Promise.all(bots.map((b) => b.stop()));
    }
  });
});
