/**
 * Child echo servers for bench/rtt.ts: fork bench/support/rtt-server.ts with the same node binary and
 * `--import tsx`, wait (bounded) for its "ready" message over IPC, and make sure no child outlives us.
 * startScriptChild does the same for another script speaking that protocol (bench/room.ts's room server).
 */
import { fork, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import type { ChildMessage, ParentMessage } from "./child-server.js";

const SERVER_SCRIPT = fileURLToPath(new URL("./rtt-server.ts", import.meta.url));
/** Repository root: the child runs there so `--import tsx` resolves from this package's node_modules. */
const REPO_ROOT = fileURLToPath(new URL("../../", import.meta.url));
const TAIL_BYTES = 4096;

export interface ReadyInfo {
  port: number;
  udpPort: number;
  fingerprint?: string;
  aead?: string;
  /** wss: the server's self-signed certificate (PEM), which the client trusts as its own anchor. */
  cert?: string;
}

/** One running echo server child. */
export interface ServerChild {
  readonly label: string;
  readonly info: ReadyInfo;
  readonly process: ChildProcess;
  /** Last few KiB of the child's stdout and stderr, for error messages. */
  output(): string;
  /** Set when the child exited before we asked it to. */
  unexpectedExit: string | null;
  /** Called (once) when the child exits before stop() was called. */
  onUnexpectedExit: ((why: string) => void) | null;
  /** Asks the child to close and exit; SIGKILLs it if it has not exited within `timeoutMs`. */
  stop(timeoutMs: number): Promise<void>;
}

const live = new Set<ChildProcess>();

/** SIGKILLs every child still running (used on exit, error and signals). Synchronous. */
export function killAllChildren(): void {
  for (const c of live) {
    if (c.exitCode === null && c.signalCode === null) {
      try {
        c.kill("SIGKILL");
      } catch {
        // already gone
      }
    }
  }
  live.clear();
}

/**
 * Starts a child echo server: `kind` and `args` are passed to rtt-server.ts. Rejects if the child does not
 * report ready within `timeoutMs`, reports an error, or exits first. `extraExecArgv` adds node flags
 * (e.g. --cpu-prof) to the child.
 */
export function startServerChild(
  label: string,
  args: string[],
  timeoutMs: number,
  extraExecArgv: string[] = [],
): Promise<ServerChild> {
  return startScriptChild(SERVER_SCRIPT, label, args, timeoutMs, extraExecArgv);
}

/**
 * Same as startServerChild, for another child script (absolute path) that speaks the same IPC protocol
 * (ChildMessage / ParentMessage of child-server.ts), e.g. bench/support/room-server.ts.
 */
export function startScriptChild(
  script: string,
  label: string,
  args: string[],
  timeoutMs: number,
  extraExecArgv: string[] = [],
): Promise<ServerChild> {
  const child = fork(script, args, {
    execPath: process.execPath,
    execArgv: ["--import", "tsx", ...extraExecArgv],
    cwd: REPO_ROOT,
    stdio: ["ignore", "pipe", "pipe", "ipc"],
    env: { ...process.env, DEBUG: "" },
  });
  live.add(child);
  let tail = "";
  const collect = (chunk: Buffer): void => {
    tail = (tail + chunk.toString("utf8")).slice(-TAIL_BYTES);
  };
  child.stdout?.on("data", collect);
  child.stderr?.on("data", collect);

  let stopping = false;
  return new Promise<ServerChild>((resolve, reject) => {
    let settled = false;
    const timer = setTimeout(() => {
      fail(`did not report ready within ${timeoutMs} ms`);
    }, timeoutMs);
    const fail = (why: string): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      child.kill("SIGKILL");
      live.delete(child);
      const out = tail.trim();
      reject(new Error(`${label}: server child ${why}${out ? `\n--- child output ---\n${out}\n---` : ""}`));
    };
    child.on("error", (err) => fail(`could not be started: ${err.message}`));
    child.on("message", (msg: ChildMessage) => {
      if (settled) return;
      if (msg.type === "error") return fail(`failed to start: ${msg.message}`);
      if (msg.type !== "ready") return;
      settled = true;
      clearTimeout(timer);
      const handle: ServerChild = {
        label,
        info: { port: msg.port, udpPort: msg.udpPort, fingerprint: msg.fingerprint, aead: msg.aead, cert: msg.cert },
        process: child,
        output: () => tail.trim(),
        unexpectedExit: null,
        onUnexpectedExit: null,
        stop: (stopTimeoutMs) => {
          stopping = true;
          if (child.exitCode !== null || child.signalCode !== null) {
            live.delete(child);
            return Promise.resolve();
          }
          return new Promise<void>((done) => {
            const kill = setTimeout(() => {
              child.kill("SIGKILL");
            }, stopTimeoutMs);
            child.once("exit", () => {
              clearTimeout(kill);
              live.delete(child);
              done();
            });
            try {
              child.send({ type: "stop" } satisfies ParentMessage);
            } catch {
              child.kill("SIGKILL");
            }
          });
        },
      };
      child.on("exit", (code, signal) => {
        if (stopping) return;
        const why = `exited unexpectedly (code ${code}, signal ${signal})`;
        handle.unexpectedExit = why;
        handle.onUnexpectedExit?.(why);
      });
      resolve(handle);
    });
    child.on("exit", (code, signal) => {
      if (!settled) fail(`exited before ready (code ${code}, signal ${signal})`);
    });
  });
}
