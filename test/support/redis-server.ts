/** A throwaway redis-server (Debian's package): free port, own temp dir, no persistence. */
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort as freePortOn } from "../../examples/cluster/cluster.js";
import { within } from "./wait.js";

/**
 * A port number that was free a moment ago for TCP and for UDP on `host` (the OS picks it): a fastnet
 * server binds both on one number.
 */
export function freePort(host = "127.0.0.1"): Promise<number> {
  return freePortOn(host, true);
}

export class RedisServer {
  private constructor(
    private readonly child: ChildProcess,
    private readonly dir: string,
    readonly port: number,
    private readonly exited: Promise<unknown>,
  ) {}

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  static async start(): Promise<RedisServer> {
    const dir = await mkdtemp(join(tmpdir(), "fastnet-redis-"));
    const port = await freePort();
    const child = spawn(
      "redis-server",
      ["--port", String(port), "--bind", "127.0.0.1", "--dir", dir, "--save", "", "--appendonly", "no", "--daemonize", "no"],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    const exited = once(child, "exit");
    let out = "";
    try {
      await within(
        new Promise<void>((resolve, reject) => {
          child.stdout!.on("data", (d: Buffer) => {
            out += d.toString();
            if (out.includes("Ready to accept connections")) resolve();
          });
          child.once("error", reject);
          void exited.then(() => reject(new Error(`redis-server exited:\n${out}`)));
        }),
        10_000,
        "redis-server ready",
      );
    } catch (err) {
      child.kill("SIGKILL");
      await rm(dir, { recursive: true, force: true });
      throw err;
    }
    return new RedisServer(child, dir, port, exited);
  }

  async stop(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      this.child.kill("SIGTERM");
      await within(this.exited, 10_000, "redis-server exit").catch(() => this.child.kill("SIGKILL"));
    }
    await rm(this.dir, { recursive: true, force: true });
  }
}
