/**
 * CPU placement for the benchmarks (Linux, through util-linux `taskset`). On a small VM, where the kernel
 * puts the client and the echo server decides the round trip more than the transport does: a wake-up
 * on the other vCPU costs tens of µs (an IPI through the hypervisor), one on the same vCPU a few. Left to
 * the scheduler, a transport that does more work per packet gets spread over both vCPUs more often, so
 * its samples land in the slow mode and its ratio to raw UDP is mostly scheduling luck. Pinning makes
 * the placement the same for every transport.
 */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { cpus as osCpus } from "node:os";

export type Placement = "same" | "split" | "none";

/** CPUs this process may run on, from /proc/self/status; null when unknown (not Linux). */
export function allowedCpus(): number[] | null {
  let status: string;
  try {
    status = readFileSync("/proc/self/status", "utf8");
  } catch {
    return null;
  }
  const m = /^Cpus_allowed_list:\s*(\S+)/m.exec(status);
  if (!m) return null;
  const cpus: number[] = [];
  for (const part of m[1]!.split(",")) {
    const [a, b] = part.split("-").map(Number);
    if (a === undefined || !Number.isInteger(a)) return null;
    const end = b !== undefined && Number.isInteger(b) ? b : a;
    for (let c = a; c <= end; c++) cpus.push(c);
  }
  return cpus.length > 0 ? cpus : null;
}

/** Pins every thread of `pid` to `cpu`. Throws with taskset's message when it cannot. */
export function pinProcess(pid: number, cpu: number): void {
  try {
    execFileSync("taskset", ["-a", "-p", "-c", String(cpu), String(pid)], { stdio: ["ignore", "ignore", "pipe"], timeout: 5000 });
  } catch (err) {
    const e = err as { stderr?: Buffer; message?: string };
    const detail = e.stderr?.toString().trim() || e.message || String(err);
    throw new Error(`taskset could not pin pid ${pid} to CPU ${cpu}: ${detail}`);
  }
}

/** The CPUs to use for a placement: [client CPU, server CPU], or an explanation of why it cannot be done. */
export function planPlacement(placement: Placement): { client: number; server: number } | { error: string } | null {
  if (placement === "none") return null;
  const cpus = allowedCpus();
  if (!cpus) return { error: "CPU affinity is unknown here (no /proc/self/status)" };
  if (placement === "split" && cpus.length < 2) return { error: `only CPU ${cpus[0]} is available, cannot split` };
  const client = cpus[0]!;
  return { client, server: placement === "same" ? client : cpus[1]! };
}

/** Where a benchmark's processes run, decided once: the server child's CPU (null: no pinning) and a note for the output. */
export interface AppliedPlacement {
  serverCpu: number | null;
  note: string;
}

/**
 * Pins this process per `args.pin` and says where the server children go. Falls back to no pinning (with
 * a note, and `args.pin` set to "none") only when --pin was not given; otherwise a failure throws.
 * `noneNote` is the note when "none" was asked for.
 */
export function applyPlacement(
  args: { pin: Placement; pinExplicit: boolean },
  noneNote = "none: placement left to the scheduler (results depend on it)",
): AppliedPlacement {
  const plan = planPlacement(args.pin);
  let why: string | null = null;
  if (plan && "error" in plan) {
    why = plan.error;
  } else if (plan) {
    try {
      pinProcess(process.pid, plan.client);
      return { serverCpu: plan.server, note: `${args.pin}: client on CPU ${plan.client}, server on CPU ${plan.server}` };
    } catch (err) {
      why = (err as Error).message;
    }
  } else {
    return { serverCpu: null, note: noneNote };
  }
  if (args.pinExplicit) throw new Error(`--pin ${args.pin}: ${why}`);
  args.pin = "none";
  return { serverCpu: null, note: `none (could not pin: ${why}); placement left to the scheduler` };
}

/** The model name of the first CPU, for the output. */
export function cpuModel(): string {
  return osCpus()[0]?.model.trim() ?? "unknown";
}
