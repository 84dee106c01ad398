/**
 * Child processes of the cluster layout (redis-server, the game processes, nginx), each started until
 * it is ready and stopped for sure: SIGTERM, then SIGKILL after a bound. main.ts and the cluster
 * tests start the layout through these.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { fileURLToPath } from "node:url";

/** The absolute path of a file next to this one. */
export function here(file: string): string {
  return fileURLToPath(new URL(file, import.meta.url));
}

/** A started child and everything it printed (stdout and stderr together). */
export class Child {
  output = "";
  readonly exited: Promise<number | null>;
  private readonly lineListeners = new Set<(line: string) => void>();
  private partial = "";

  constructor(
    readonly name: string,
    readonly child: ChildProcess,
  ) {
    this.exited = once(child, "exit").then(([code]) => code as number | null, () => null);
    const onData = (d: Buffer): void => {
      const text = d.toString();
      this.output += text;
      const lines = (this.partial + text).split("\n");
      this.partial = lines.pop() ?? "";
      for (const line of lines) for (const listener of this.lineListeners) listener(line);
    };
    child.stdout?.on("data", onData);
    child.stderr?.on("data", onData);
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Calls `listener` for every complete line printed from now on; returns the unsubscribe. */
  onLine(listener: (line: string) => void): () => void {
    this.lineListeners.add(listener);
    return () => this.lineListeners.delete(listener);
  }

  /**
   * Resolves with the first line (printed from now on, or already printed) that `match` accepts;
   * rejects when the child exits first or after `ms`, with the child's output in the message.
   */
  waitForLine<T>(match: (line: string) => T | undefined, ms: number, what: string): Promise<T> {
    for (const line of this.output.split("\n")) {
      const found = match(line);
      if (found !== undefined) return Promise.resolve(found);
    }
    return new Promise<T>((resolve, reject) => {
      const fail = (why: string): void => {
        done();
        reject(new Error(`${this.name}: ${why} waiting for ${what}; output:\n${this.output.slice(-4000)}`));
      };
      const timer = setTimeout(() => fail(`timed out after ${ms} ms`), ms);
      const off = this.onLine((line) => {
        const found = match(line);
        if (found === undefined) return;
        done();
        resolve(found);
      });
      const onExit = (): void => fail(`exited (${this.child.exitCode ?? this.child.signalCode})`);
      this.child.once("exit", onExit);
      const done = (): void => {
        clearTimeout(timer);
        off();
        this.child.off("exit", onExit);
      };
    });
  }

  /** SIGKILL: the process dies at once, as in a crash. */
  async kill(): Promise<void> {
    if (this.running) this.child.kill("SIGKILL");
    await this.exited;
  }

  /** SIGTERM, and SIGKILL if it has not exited after `ms`. */
  async stop(ms = 10_000): Promise<number | null> {
    if (!this.running) return this.child.exitCode;
    this.child.kill("SIGTERM");
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<"late">((resolve) => (timer = setTimeout(() => resolve("late"), ms)));
    const first = await Promise.race([this.exited, late]);
    clearTimeout(timer);
    if (first === "late") this.child.kill("SIGKILL");
    return this.exited;
  }
}

/** Spawns `command`; fails clearly when it is not installed. */
export function start(name: string, command: string, args: string[], env: Record<string, string> = {}, cwd?: string): Child {
  const child = spawn(command, args, { cwd, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  const started = new Child(name, child);
  child.once("error", (err: NodeJS.ErrnoException) => {
    started.output += err.code === "ENOENT" ? `${command} is not installed (${err.message})\n` : `${err.message}\n`;
  });
  return started;
}

/** Waits for a started child's ready line, and kills the child if it does not come. */
export async function ready<T>(child: Child, match: (line: string) => T | undefined, ms: number, what: string): Promise<T> {
  try {
    return await child.waitForLine(match, ms, what);
  } catch (err) {
    await child.kill();
    throw err;
  }
}

/** A throwaway redis-server on `port`: no persistence, working directory `dir`. */
export async function startRedis(port: number, dir: string): Promise<Child> {
  const redis = start(
    "redis-server",
    "redis-server",
    ["--port", String(port), "--bind", "127.0.0.1", "--dir", dir, "--save", "", "--appendonly", "no", "--daemonize", "no"],
  );
  await ready(redis, (line) => (line.includes("Ready to accept connections") ? true : undefined), 10_000, "redis-server ready");
  return redis;
}

/** What a game process (server.ts) says when it listens. */
export interface GameReady {
  port: number;
  udpPort: number;
  processId: string;
  serverId: number;
}

/** Environment of a game process; see the comment at the top of server.ts. */
export interface GameEnv {
  PORT: string;
  SERVER_ID: string;
  REDIS_URL: string;
  STATELESS_RESET_KEY: string;
  DEV_CERT_DIR: string;
  PUBLIC_ADDRESS?: string;
  UDP_PUBLIC_HOST?: string;
  UDP_PUBLIC_PORT?: string;
}

// Absolute, so that the child resolves tsx wherever it runs.
const TSX = import.meta.resolve("tsx");

/** A running game process and what it said when it became ready. */
export interface GameProcess {
  child: Child;
  info: GameReady;
  env: GameEnv;
}

/** Starts one game process (server.ts) and waits for its READY line. */
export async function startGame(env: GameEnv, ms = 30_000): Promise<GameProcess> {
  const child = start(`game ${env.SERVER_ID}`, process.execPath, ["--import", TSX, here("./server.ts")], { ...env });
  const info = await ready(
    child,
    (line) => (line.startsWith("READY ") ? (JSON.parse(line.slice(6)) as GameReady) : undefined),
    ms,
    `game process ${env.SERVER_ID} READY`,
  );
  return { child, info, env };
}
