/**
 * FastnetClient's fallback to the WebSocket path under real packet loss: each scenario runs in a
 * child process inside a network namespace this test creates (and deletes, also on failure), where an
 * nftables rule drops UDP to the server's port (see test/support/fallback-scenario.ts). Needs root,
 * `ip` (iproute2) and `nft` (nftables).
 */
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { once } from "node:events";
import { randomBytes } from "node:crypto";
import { fileURLToPath } from "node:url";
import { within } from "./support/wait.js";

const SCRIPT = fileURLToPath(new URL("./support/fallback-scenario.ts", import.meta.url));
const TSX = import.meta.resolve("tsx");

/** Runs `scenario` in namespace `ns`; resolves with its RESULT object (rejects with its output otherwise). */
async function runScenario(ns: string, scenario: string, ms: number): Promise<any> {
  const child = spawn("ip", ["netns", "exec", ns, process.execPath, "--import", TSX, SCRIPT, scenario], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout.on("data", (d: Buffer) => (output += d.toString()));
  child.stderr.on("data", (d: Buffer) => (output += d.toString()));
  const exited = once(child, "exit");
  try {
    const [code] = await within(exited, ms, `scenario ${scenario}`);
    const m = /^RESULT (.*)$/m.exec(output);
    if (code !== 0 || !m) throw new Error(`scenario ${scenario} exited ${String(code)}:\n${output}`);
    return JSON.parse(m[1]!);
  } catch (err) {
    if (child.exitCode === null) {
      child.kill("SIGKILL");
      await once(child, "exit");
    }
    throw err;
  }
}

describe("FastnetClient falls back to WebSocket when UDP is dropped (network namespace, nftables)", function () {
  this.timeout(60_000);
  let ns = "";

  beforeEach(() => {
    ns = `fn-${randomBytes(4).toString("hex")}`;
    execFileSync("ip", ["netns", "add", ns]);
    try {
      execFileSync("ip", ["-n", ns, "link", "set", "lo", "up"]);
    } catch (err) {
      execFileSync("ip", ["netns", "delete", ns]);
      ns = "";
      throw err;
    }
  });

  afterEach(() => {
    if (ns) execFileSync("ip", ["netns", "delete", ns]);
    ns = "";
  });

  it("joins over WebSocket within 3 s on a network that drops UDP, and plays: messages both ways, state", async () => {
    const r = await runScenario(ns, "blocked-join", 40_000);
    assert.equal(r.joinedPath, "websocket");
    assert.equal(r.udpFailure, "BIND_TIMEOUT");
    assert.ok(r.joinMs < 3000, `joined in ${Math.round(r.joinMs)} ms`);
    assert.deepEqual(r.play, { pong: 1, counter: 1 });
    // getLatency() falls back too: a number, measured by the server's WebSocket probe.
    assert.ok(Number.isFinite(r.latencyMs) && r.latencyMs >= 0 && r.latencyMs < 1000, `latency ${r.latencyMs}`);
    assert.equal(r.webSocketProbes, 1);
    // The same seat: one join, over WebSocket; no fastnet session was ever opened on the server.
    assert.equal(r.webSocketJoins, 1);
    assert.equal(r.sessionsOpened, 0);
    assert.equal(r.roomLog.length, 2, r.roomLog.join(", "));
    assert.match(r.roomLog[0], /^join /);
    assert.equal(r.roomLog[1], "ping 1");
  });

  it("keeps its seat over WebSocket when UDP is dropped for good mid-session (one drop, one reconnect)", async () => {
    const r = await runScenario(ns, "udp-dies", 50_000);
    assert.equal(r.joinedPath, "udp");
    assert.equal(r.pathAfter, "websocket");
    assert.equal(r.sameSessionId, true);
    assert.equal(r.clientLeaves, 0);
    assert.equal(r.clientDrops.length, 1, r.clientDrops.join(", "));
    assert.equal(r.clientReconnects, 1);
    assert.deepEqual(r.play, [
      { pong: 1, counter: 1 },
      { pong: 2, counter: 2 },
    ]);
    assert.equal(r.webSocketJoins, 1);
    assert.deepEqual(r.roomLog, ["join <sid>", "ping 1", "drop <sid>", "reconnect <sid>", "ping 2"]);
  });

  it('path: "udp" on a network that drops UDP fails with BIND_TIMEOUT and never tries WebSocket', async () => {
    const r = await runScenario(ns, "udp-forced", 40_000);
    assert.equal(r.name, "FastnetJoinError");
    assert.equal(r.fastnetCode, "BIND_TIMEOUT");
    assert.match(r.message, /BIND_TIMEOUT/);
    assert.ok(r.failMs >= 1400 && r.failMs < 8000, `failed after ${Math.round(r.failMs)} ms (bindTimeoutMs 1500)`);
    assert.equal(r.webSocketConnections, 0);
    assert.deepEqual(r.roomLog, []);
  });

  it("when both paths fail, the error names both causes and what to do", async () => {
    const r = await runScenario(ns, "both-blocked", 40_000);
    assert.equal(r.name, "FastnetJoinError");
    assert.equal(r.fastnetCode, "BIND_TIMEOUT");
    assert.match(r.message, /both paths failed/);
    assert.match(r.message, /UDP: UDP bind to .* failed/);
    // The server's own refusal of the WebSocket (its path is off) is quoted...
    assert.match(r.message, /WebSocket to ws:\/\/127\.0\.0\.1:\d+\/.* closed before the join \(1008: this server's rooms use fastnet/);
    // ...and what to do about either.
    assert.match(r.message, /Open the server's UDP port/);
    assert.ok(r.failMs < 5000, `failed after ${Math.round(r.failMs)} ms`);
    assert.deepEqual(r.roomLog, []);
  });
});
