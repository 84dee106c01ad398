/** Starts and stops test/support/server-process.ts as a child process (see there for its settings). */
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { fileURLToPath } from "node:url";
import { within } from "./wait.js";

const SCRIPT = fileURLToPath(new URL("./server-process.ts", import.meta.url));
// Absolute, because the child runs in its own working directory where "tsx" would not resolve.
const TSX = import.meta.resolve("tsx");

export interface ReadyInfo {
  port: number;
  processId: string;
  /** Hex SHA-256 of the dev certificate, null with a user certificate. */
  fingerprint: string | null;
}

/** A running server process; `output` collects its stdout and stderr for assertions and failures. */
export class ChildServer {
  output = "";
  readonly exited: Promise<number | null>;

  private constructor(
    readonly child: ChildProcess,
    readonly info: ReadyInfo,
    output: string,
    exited: Promise<number | null>,
  ) {
    this.output = output;
    this.exited = exited;
    child.stdout!.on("data", (d: Buffer) => (this.output += d.toString()));
    child.stderr!.on("data", (d: Buffer) => (this.output += d.toString()));
  }

  /** Spawns the server in `cwd` with `env` added, and waits (at most `ms`) for its READY line. */
  static async start(cwd: string, env: Record<string, string>, ms = 20_000): Promise<ChildServer> {
    const child = spawn(process.execPath, ["--import", TSX, SCRIPT], {
      cwd,
      env: { ...process.env, ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    const exited = once(child, "exit").then(([code]) => code as number | null);
    let output = "";
    const ready = new Promise<ReadyInfo>((resolve, reject) => {
      const onData = (d: Buffer): void => {
        output += d.toString();
        const m = /^READY (.*)$/m.exec(output);
        if (m) {
          child.stdout!.off("data", onData);
          child.stderr!.off("data", onData);
          resolve(JSON.parse(m[1]!) as ReadyInfo);
        }
      };
      child.stdout!.on("data", onData);
      child.stderr!.on("data", onData);
      void exited.then((code) => reject(new Error(`server process exited (${code}) before READY:\n${output}`)));
    });
    try {
      const info = await within(ready, ms, `server process READY in ${cwd}`);
      return new ChildServer(child, info, output, exited);
    } catch (err) {
      child.kill("SIGKILL");
      await exited;
      throw err;
    }
  }

  /** SIGTERM (Colyseus' graceful shutdown) and wait for the exit; SIGKILL if it takes over `ms`. */
  async stop(ms = 10_000): Promise<number | null> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return this.child.exitCode;
    this.child.kill("SIGTERM");
    try {
      return await within(this.exited, ms, "server process exit after SIGTERM");
    } catch {
      this.child.kill("SIGKILL");
      return await this.exited;
    }
  }
}
