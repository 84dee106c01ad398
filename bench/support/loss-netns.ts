/**
 * The network namespace and the nftables loss of bench/loss.ts.
 *
 * Outside (runInNamespace): creates a namespace `fastnet-loss-<pid>` with its loopback up, runs the
 * benchmark again inside it (`ip netns exec <ns> node ... bench/loss.ts <argv>`, env FASTNET_LOSS_NETNS
 * naming it), and deletes the namespace when that child ends, on an error, on SIGINT/SIGTERM/SIGHUP
 * (forwarded to the child, SIGKILL after SIGNAL_GRACE_MS) and on exit. Deleting the namespace also deletes
 * its nftables table. A namespace left by a run that was SIGKILLed (its pid no longer alive) is deleted at
 * the next start.
 *
 * Inside (LossRule): an `inet` table "loss" whose input-hook chain drops UDP and TCP at random,
 * `meta l4proto { udp, tcp } numgen random mod 1000 < N drop` (N = loss ‰), on the input hook: a drop on
 * output makes the sender's send() fail with EPERM, which is not what loss looks like. In the namespace
 * both directions (client to server and back) cross the input hook of `lo` once, so each direction of a
 * round trip is dropped with probability N/1000. The IPC between the benchmark and its children is a
 * Unix socket pair, not affected.
 */
import { execFile, execFileSync, spawn } from "node:child_process";
import { constants } from "node:os";
import { fileURLToPath } from "node:url";

export const NETNS_ENV = "FASTNET_LOSS_NETNS";
const PREFIX = "fastnet-loss-";
const REPO_ROOT = fileURLToPath(new URL("../../", import.meta.url));
const SIGNAL_GRACE_MS = 5_000;
const TABLE = "loss";

const run = (cmd: string, args: string[], input?: string): string => execFileSync(cmd, args, { input, encoding: "utf8", stdio: ["pipe", "pipe", "pipe"] });

/** `nft` without blocking this process's event loop (the clients keep running while a rule changes). */
function nft(args: string[], input?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile("nft", args, { encoding: "utf8" }, (err, stdout, stderr) => {
      if (err) reject(new Error(`nft ${args.join(" ")}: ${stderr.trim() || err.message}`));
      else resolve(stdout);
    });
    // nft may exit without reading stdin (a list): a write error there is no error of the command.
    child.stdin?.on("error", () => undefined);
    child.stdin?.end(input ?? "");
  });
}

/** Why the benchmark cannot make a namespace here (not root, no `ip`, no `nft`), or null. */
export function namespaceUnavailable(): string | null {
  if (process.getuid?.() !== 0) return "needs root (ip netns add, nft)";
  for (const [cmd, arg] of [["ip", "-V"], ["nft", "--version"]] as const) {
    try {
      run(cmd, [arg]);
    } catch {
      return `needs \`${cmd}\` (${cmd === "ip" ? "iproute2" : "nftables"}); .ci/run installs it`;
    }
  }
  return null;
}

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
};

/** Deletes namespaces left by earlier runs whose process is gone (a SIGKILLed run cannot clean up). */
function deleteStaleNamespaces(log: (s: string) => void): void {
  let list = "";
  try {
    list = run("ip", ["netns", "list"]);
  } catch {
    return;
  }
  for (const line of list.split("\n")) {
    const name = line.split(/\s+/)[0] ?? "";
    if (!name.startsWith(PREFIX)) continue;
    const pid = Number(name.slice(PREFIX.length));
    if (!Number.isInteger(pid) || alive(pid)) continue;
    try {
      run("ip", ["netns", "delete", name]);
      log(`deleted the namespace ${name} left by an earlier run`);
    } catch {
      // someone else's, or gone meanwhile
    }
  }
}

/**
 * Runs `script` (a benchmark entry) with `argv` inside a fresh namespace; resolves with its exit code.
 * The namespace is deleted whatever happens (see the header comment). `overallMs` bounds the child.
 */
export async function runInNamespace(script: string, argv: string[], overallMs: number, log: (s: string) => void): Promise<number> {
  const why = namespaceUnavailable();
  if (why) throw new Error(why);
  deleteStaleNamespaces(log);
  const ns = `${PREFIX}${process.pid}`;
  let deleted = false;
  const deleteNs = (): void => {
    if (deleted) return;
    deleted = true;
    try {
      run("ip", ["netns", "delete", ns]);
    } catch (err) {
      process.stderr.write(`[loss] could not delete the namespace ${ns}: ${(err as Error).message.trim()}\n`);
    }
  };
  process.on("exit", deleteNs);
  run("ip", ["netns", "add", ns]);
  const handlers: [NodeJS.Signals, () => void][] = [];
  try {
    run("ip", ["-n", ns, "link", "set", "lo", "up"]);
    log(`network namespace ${ns} (loopback up)`);
    const child = spawn("ip", ["netns", "exec", ns, process.execPath, ...process.execArgv, script, ...argv], {
      cwd: REPO_ROOT,
      stdio: "inherit",
      env: { ...process.env, [NETNS_ENV]: ns },
    });
    const exited = new Promise<number>((resolve, reject) => {
      child.on("error", reject);
      child.on("exit", (code, signal) => resolve(code ?? 128 + (signal ? (constants.signals[signal] ?? 0) : 0)));
    });
    let killTimer: NodeJS.Timeout | undefined;
    const hardKill = (): void => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    };
    for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
      const h = (): void => {
        process.stderr.write(`[loss] ${sig}: stopping the run, then deleting ${ns}\n`);
        if (killTimer) return hardKill(); // a second signal: no more waiting
        if (child.exitCode === null && child.signalCode === null) child.kill(sig);
        killTimer = setTimeout(hardKill, SIGNAL_GRACE_MS);
      };
      handlers.push([sig, h]);
      process.on(sig, h);
    }
    const overall = setTimeout(() => {
      process.stderr.write(`[loss] FAILED: the run did not finish within ${overallMs / 1000} s\n`);
      hardKill();
    }, overallMs);
    try {
      return await exited;
    } finally {
      clearTimeout(overall);
      clearTimeout(killTimer);
    }
  } finally {
    for (const [sig, h] of handlers) process.off(sig, h);
    deleteNs();
    process.off("exit", deleteNs);
  }
}

/**
 * Throws unless this process runs inside the namespace `ns` that runInNamespace made: the nftables rules
 * below must never land in another namespace (the machine's own, say).
 */
export function assertInNamespace(ns: string | undefined): asserts ns is string {
  if (!ns || !ns.startsWith(PREFIX)) throw new Error(`bench/loss.ts: not started by its own namespace runner (${NETNS_ENV} unset)`);
  const here = run("ip", ["netns", "identify", String(process.pid)]).trim();
  if (here !== ns) throw new Error(`bench/loss.ts: expected to run in the namespace ${ns}, but this process is in "${here || "the initial namespace"}"`);
}

/**
 * The random drop of the namespace (nftables, input hook, UDP and TCP alike); 0 % until set. Every
 * change runs `nft` asynchronously: a change is in force when its promise resolves.
 */
export class LossRule {
  private pct = 0;

  private constructor() {}

  static async create(): Promise<LossRule> {
    await nft(["-f", "-"], `table inet ${TABLE} {\n chain input {\n  type filter hook input priority 0; policy accept;\n }\n}\n`);
    return new LossRule();
  }

  get percent(): number {
    return this.pct;
  }

  /** Drops `pct` % (0..100, in steps of 0.1) of the UDP and TCP packets arriving on loopback. */
  async set(pct: number): Promise<void> {
    if (!(pct >= 0 && pct <= 100)) throw new Error(`loss must be 0..100 %, got ${pct}`);
    const permille = Math.round(pct * 10);
    // The first rule counts every UDP/TCP packet, the second the ones it drops (flushing resets both).
    let rules = `flush chain inet ${TABLE} input\nadd rule inet ${TABLE} input iifname "lo" meta l4proto { udp, tcp } counter\n`;
    if (permille >= 1000) rules += `add rule inet ${TABLE} input iifname "lo" meta l4proto { udp, tcp } counter drop\n`;
    else if (permille > 0) rules += `add rule inet ${TABLE} input iifname "lo" meta l4proto { udp, tcp } numgen random mod 1000 < ${permille} counter drop\n`;
    await nft(["-f", "-"], rules);
    this.pct = pct;
  }

  /** UDP/TCP packets that arrived on loopback since the last set(), and how many of them were dropped. */
  async counters(): Promise<{ packets: number; dropped: number }> {
    const json = JSON.parse(await nft(["-j", "list", "chain", "inet", TABLE, "input"])) as { nftables: { rule?: { expr: Record<string, unknown>[] } }[] };
    const counts = json.nftables
      .filter((e) => e.rule)
      .map((e) => (e.rule!.expr.find((x) => "counter" in x)?.counter as { packets: number } | undefined)?.packets ?? 0);
    return { packets: counts[0] ?? 0, dropped: counts[1] ?? 0 };
  }

  /** Removes the table (the namespace's deletion would too). */
  async delete(): Promise<void> {
    await nft(["delete", "table", "inet", TABLE]).catch(() => undefined);
  }
}
