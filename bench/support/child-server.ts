/**
 * The child-process side of the benchmarks' server children (bench/support/rtt-server.ts, room-server.ts,
 * migration-server.ts): the IPC protocol they share with bench/support/children.ts, and the lifetime
 * every one of them has: started by its benchmark with an IPC channel, a hard cap on how long it lives,
 * exit when the channel goes away (parent died), close and exit on {type:"stop"}, and a startup failure
 * reported over IPC before exiting.
 */

/** Messages from a child to the benchmark. */
export type ChildMessage =
  | { type: "ready"; port: number; udpPort: number; fingerprint?: string; aead?: string; cert?: string }
  | { type: "error"; message: string };

/** Messages from the benchmark to a child. */
export type ParentMessage = { type: "stop" };

/** Hard cap on how long a child lives, whatever the parent does (the whole benchmark takes far less). */
/** Default lifetime of a server child; a longer benchmark (the soak) passes its own. */
const MAX_LIFETIME_MS = 15 * 60_000;

/**
 * Our end of the IPC channel (null when there is none), taken once at startup; process.send itself is
 * hidden: @colyseus/core loads @pm2/io when its matchmaker starts, which takes any IPC channel for PM2's
 * and sends "axm:*" metrics and actions on it. Without process.send it stays quiet, as in a server not run
 * by PM2. Receiving ('message', 'disconnect') is not affected. Call before starting any server.
 */
export function takeIpc<M = never>(): ((msg: ChildMessage | M) => void) | null {
  const ipcSend: ((msg: ChildMessage | M) => void) | null = process.send ? process.send.bind(process) : null;
  process.send = undefined;
  return ipcSend;
}

/** A started server: how to close it, and what to do with the benchmark's other messages. */
export interface ChildServer<P> {
  stop(): Promise<void>;
  onMessage?(msg: P): void;
}

/**
 * Runs a server child: `name` is its script's base name ("room-server"), `bench` the benchmark that starts
 * it ("room"), `ipcSend` from takeIpc(). `start` starts the server and reports "ready" itself.
 */
export function runServerChild<P extends { type: string }>(
  name: string,
  bench: string,
  ipcSend: ((msg: ChildMessage) => void) | null,
  start: () => Promise<ChildServer<P>>,
  lifetimeMs = MAX_LIFETIME_MS,
): void {
  const main = async (): Promise<void> => {
    if (!ipcSend) throw new Error(`${name}.ts must be started by bench/${bench}.ts with an IPC channel`);
    const lifetime = setTimeout(() => {
      process.stderr.write(`${name} child: lifetime limit reached, exiting\n`);
      process.exit(3);
    }, lifetimeMs);
    lifetime.unref();
    // The parent is gone (or closed the channel): nobody will ever stop us, so go now.
    process.on("disconnect", () => process.exit(0));

    const server = await start();

    process.on("message", (msg: P | ParentMessage) => {
      if (msg?.type !== "stop") {
        if (msg) server.onMessage?.(msg as P);
        return;
      }
      const force = setTimeout(() => process.exit(0), 2000);
      force.unref();
      server.stop().then(
        () => process.exit(0),
        () => process.exit(0),
      );
    });
  };
  main().catch((err: unknown) => {
    const message = err instanceof Error ? err.message : String(err);
    ipcSend?.({ type: "error", message });
    process.stderr.write(`${name} child failed: ${err instanceof Error ? err.stack : message}\n`);
    // Let the IPC message leave before exiting.
    setTimeout(() => process.exit(2), 100);
  });
}
