/**
 * Ports across a server's life: transport.shutdown() frees TCP and UDP at once (Colyseus calls it
 * without awaiting and may listen on the same port right after) after every session got its CLOSE; a
 * UDP port held by another process fails listen() with an error naming UDP and `udpPort`; and a failed
 * listen, like a shutdown, leaves nothing that keeps the process alive (checked in child processes that
 * must exit by themselves).
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import dgram from "node:dgram";
import { once } from "node:events";
import net from "node:net";
import { performance } from "node:perf_hooks";
import { pathToFileURL } from "node:url";
import { Room, Server } from "@colyseus/core";
import type { Room as SdkRoom } from "@colyseus/sdk";
import { FastnetTransport } from "../src/index.js";
import { FastnetClient } from "../src/client.js";
import { recordEvents, waitFor } from "./support/colyseus-harness.js";
import { freePort } from "./support/redis-server.js";
import { within } from "./support/wait.js";

class EchoRoom extends Room {
  override onCreate(): void {
    this.onMessage("echo", (client, msg) => client.send("echo", msg));
  }
}

/** Binds TCP and UDP on `port` (host: all interfaces when undefined); rejects with the first bind error. */
async function bindBoth(port: number, host: string | undefined): Promise<{ tcp: net.Server; udp: dgram.Socket }> {
  const tcp = net.createServer();
  const udp = dgram.createSocket(host && net.isIPv4(host) ? "udp4" : "udp6");
  const tcpBound = new Promise<void>((resolve, reject) => {
    tcp.once("error", reject);
    tcp.listen(port, host, () => resolve());
  });
  const udpBound = new Promise<void>((resolve, reject) => {
    udp.once("error", reject);
    udp.bind(port, host, () => resolve());
  });
  const results = await Promise.allSettled([tcpBound, udpBound]);
  const failed = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
  if (failed) {
    if (tcp.listening) tcp.close();
    try {
      udp.close();
    } catch {
      // never bound
    }
    throw failed.reason;
  }
  return { tcp, udp };
}

async function closeBoth(b: { tcp: net.Server; udp: dgram.Socket }): Promise<void> {
  await new Promise<void>((resolve) => b.tcp.close(() => resolve()));
  await new Promise<void>((resolve) => b.udp.close(() => resolve()));
}

/** node with tsx running `source` (an ES module) in a child; resolves with its exit code, stdout and time to exit. */
async function runChild(source: string, env: Record<string, string>, ms: number): Promise<{ code: number | null; out: string; ms: number }> {
  const child = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", source], {
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr.on("data", (d: Buffer) => (out += d.toString()));
  const started = performance.now();
  const exited = once(child, "exit").then(([code]) => code as number | null);
  try {
    const code = await within(exited, ms, `child exit:\n${out}`);
    return { code, out, ms: performance.now() - started };
  } catch (err) {
    child.kill("SIGKILL");
    await exited;
    throw new Error(`${(err as Error).message}\n(it did not exit by itself: something kept its event loop alive)\n${out}`);
  }
}

/** The child's `EXIT-AFTER` is small: its sockets closed and no ref'd timer was left behind. */
function assertPromptExit(out: string): void {
  const ms = Number(/EXIT-AFTER (\d+)/.exec(out)?.[1]);
  assert.ok(ms < 1000, `the child lived ${ms} ms after the listen/close with nothing to do:\n${out}`);
}

const SERVER_MODULE = pathToFileURL(new URL("../src/node/server.ts", import.meta.url).pathname).href;

/**
 * A child that listens a FastnetServer on PORT (all interfaces unless HOST), prints `LISTEN-FAILED <code>`
 * or `LISTENING`, then with CLOSE=1 closes it (closeNow), and prints `EXIT-AFTER <ms>` on exit: how
 * long the process lived after that, with nothing left to do.
 */
const LISTEN_CHILD = `
import { FastnetServer } from ${JSON.stringify(SERVER_MODULE)};
const server = new FastnetServer({ devCertificateDir: false });
try {
  await server.listen(Number(process.env.PORT), process.env.HOST || undefined);
  console.log("LISTENING");
  if (process.env.CLOSE === "1") await server.closeNow(4001, "bye");
} catch (err) {
  console.log("LISTEN-FAILED " + err.code + " " + err.message);
}
// Nothing may keep the process alive now: an unref'd timer is fine, a socket or a ref'd timer is not.
const done = performance.now();
process.on("exit", () => console.log("EXIT-AFTER " + Math.round(performance.now() - done)));
`;

describe("lifecycle: ports (shutdown frees them, a held UDP port, failed listens)", function () {
  this.timeout(60_000);
  let server: Server | undefined;
  const rooms: SdkRoom[] = [];
  const held: Array<{ tcp: net.Server; udp: dgram.Socket } | dgram.Socket> = [];

  afterEach(async () => {
    for (const room of rooms.splice(0)) {
      room.reconnection.enabled = false;
      await within(room.leave(true), 3000, "leave").catch(() => undefined);
    }
    if (server) await within(server.gracefullyShutdown(false), 10_000, "shutdown").catch(() => undefined);
    server = undefined;
    for (const h of held.splice(0)) {
      if (h instanceof dgram.Socket) h.close();
      else await closeBoth(h);
    }
  });

  for (const host of ["127.0.0.1", undefined]) {
    const where = host ?? "all interfaces (one UDP socket per local address)";
    it(`shutdown on ${where}: clients get 4001, then the same TCP and UDP port can be bound at once`, async () => {
      const transport = new FastnetTransport();
      server = new Server({ transport, greet: false, gracefullyShutdown: false });
      server.define("echo", EchoRoom);
      const port = await freePort(host ?? "0.0.0.0");
      await within(server.listen(port, host), 10_000, "listen");
      const room = await within(new FastnetClient(`http://127.0.0.1:${port}`).joinOrCreate("echo"), 10_000, "join");
      rooms.push(room);
      const events = recordEvents(room);

      const t0 = performance.now();
      // Colyseus' own sequence: rooms leave their clients with 4001, then transport.shutdown() unawaited.
      await within(server.gracefullyShutdown(false), 5000, "gracefullyShutdown");
      server = undefined;
      // Same job as the shutdown's return: no tick has passed for a background close to finish.
      const again = bindBoth(port, host);
      held.push(await again);
      await waitFor(() => events.leave.length > 0, 2000, "onLeave", () => JSON.stringify(events));
      assert.deepEqual(events.leave.map((l) => l.code), [4001]);
      assert.deepEqual(events.drop, []);
      const ms = events.leave[0]!.at - t0;
      assert.ok(ms < 1000, `onLeave 4001 after ${ms.toFixed(0)} ms`);
      assert.equal(transport.server.listening, false);
      assert.equal(transport.engine.sessionCount, 0);
    });
  }

  it("listen again with a new FastnetTransport on the port a shut-down one used", async () => {
    const first = new FastnetTransport();
    server = new Server({ transport: first, greet: false, gracefullyShutdown: false });
    server.define("echo", EchoRoom);
    await within(server.listen(0, "127.0.0.1"), 10_000, "listen");
    const port = first.engine.port;
    first.shutdown();
    const second = new FastnetTransport({ devCertificateDir: false });
    await new Promise<void>((resolve, reject) => second.listen(port, "127.0.0.1", undefined, (err?: Error) => (err ? reject(err) : resolve())));
    assert.equal(second.engine.port, port);
    assert.equal(second.engine.udpPort, port);
    second.shutdown();
    await waitFor(() => !second.server.listening, 2000, "second transport closed");
  });

  it("a UDP port held by another process: listen fails with UDP_PORT_IN_USE naming UDP and udpPort", async () => {
    const port = await freePort();
    const holder = dgram.createSocket("udp4");
    held.push(holder);
    holder.bind(port, "127.0.0.1");
    await once(holder, "listening");

    const transport = new FastnetTransport({ devCertificateDir: false });
    server = new Server({ transport, greet: false, gracefullyShutdown: false });
    const err = (await within(
      server.listen(port, "127.0.0.1").then(
        () => assert.fail("listen succeeded on a held UDP port"),
        (e: unknown) => e,
      ),
      10_000,
      "listen",
    )) as Error & { code?: string };
    assert.equal(err.name, "FastnetError");
    assert.equal(err.code, "UDP_PORT_IN_USE");
    assert.match(err.message, new RegExp(`UDP port ${port} \\(on 127\\.0\\.0\\.1\\) is already in use`));
    assert.match(err.message, /TCP port \d+ was free/);
    assert.match(err.message, /`udpPort` option/);
    // Nothing of the failed listen is left bound: the TCP port is free again.
    assert.equal(transport.server.listening, false);
    const tcp = net.createServer().listen(port, "127.0.0.1");
    await once(tcp, "listening");
    await new Promise<void>((resolve) => tcp.close(() => resolve()));
  });

  it("a failed wildcard listen (UDP held on ::1 after 127.0.0.1 was bound) leaves no handle: the child exits by itself", async () => {
    const port = await freePort("0.0.0.0");
    const holder = dgram.createSocket({ type: "udp6", ipv6Only: true });
    held.push(holder);
    holder.bind(port, "::1");
    await once(holder, "listening");
    const run = await runChild(LISTEN_CHILD, { PORT: String(port) }, 15_000);
    assert.match(run.out, /LISTEN-FAILED UDP_PORT_IN_USE UDP port \d+ \(on ::1\)/, run.out);
    assert.equal(run.code, 0, run.out);
    assertPromptExit(run.out);
  });

  it("a failed listen on a held TCP port leaves no handle either", async () => {
    const holder = net.createServer().listen(0, "127.0.0.1");
    await once(holder, "listening");
    const port = (holder.address() as net.AddressInfo).port;
    try {
      const run = await runChild(LISTEN_CHILD, { PORT: String(port), HOST: "127.0.0.1" }, 15_000);
      assert.match(run.out, /LISTEN-FAILED EADDRINUSE/, run.out);
      assert.equal(run.code, 0, run.out);
      assertPromptExit(run.out);
    } finally {
      await new Promise<void>((resolve) => holder.close(() => resolve()));
    }
  });

  it("closeNow() after a wildcard listen leaves no handle: the child exits by itself", async () => {
    const port = await freePort("0.0.0.0");
    const run = await runChild(LISTEN_CHILD, { PORT: String(port), CLOSE: "1" }, 15_000);
    assert.match(run.out, /LISTENING/, run.out);
    assert.equal(run.code, 0, run.out);
    assertPromptExit(run.out);
  });
});
