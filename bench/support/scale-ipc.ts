/** Request and answer over a benchmark child's IPC channel, bounded in time (bench/scale.ts, bench/join.ts). */
import type { ServerChild } from "./children.js";

/**
 * Sends `msg` to the child and resolves with its next message of type `answer`; rejects after `timeoutMs`,
 * or when the child exits first.
 */
export function ask<A extends { type: string }>(child: ServerChild, msg: object, answer: A["type"], timeoutMs: number): Promise<A> {
  return new Promise<A>((resolve, reject) => {
    const proc = child.process;
    const done = (err: Error | null, value?: A): void => {
      clearTimeout(timer);
      proc.off("message", onMessage);
      proc.off("exit", onExit);
      if (err) reject(err);
      else resolve(value!);
    };
    const timer = setTimeout(() => done(new Error(`${child.label}: no "${answer}" answer within ${timeoutMs} ms`)), timeoutMs);
    const onMessage = (m: A): void => {
      if (m?.type === answer) done(null, m);
    };
    const onExit = (code: number | null, signal: string | null): void =>
      done(new Error(`${child.label}: exited (code ${code}, signal ${signal}) before answering "${answer}"${child.output() ? `\n${child.output()}` : ""}`));
    proc.on("message", onMessage);
    proc.on("exit", onExit);
    try {
      proc.send(msg);
    } catch (err) {
      done(new Error(`${child.label}: cannot send: ${(err as Error).message}`));
    }
  });
}
