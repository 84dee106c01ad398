/**
 * Client-side retry of a busy server: a handshake answered with HTTP 503 (FastnetError SERVER_BUSY) is
 * tried again after a jittered, growing pause, within a bounded budget of attempts and time. Many players
 * behind one NAT address joining at once (a match start, a server restart) then spread themselves out
 * instead of failing, and a server that stays busy is not hammered: the pauses grow and the budget ends.
 */
import { FastnetError } from "../protocol/errors.js";

/** How retryWhenBusy waits and when it gives up. */
export interface BusyRetryOptions {
  /** Attempts in all, the first one included (default 6). 1 means no retry. */
  maxAttempts?: number;
  /** From the first attempt's start: no pause that would end past it is begun (default 15000 ms). */
  budgetMs?: number;
  /** Upper bound of the first pause; each further pause's bound doubles (default 100 ms). */
  baseDelayMs?: number;
  /** Largest bound a pause may have (default 2000 ms). */
  maxDelayMs?: number;
  /** Uniform in [0, 1): the jitter (default Math.random). */
  random?: () => number;
  /** Waits `ms` (default a timer). */
  sleep?: (ms: number) => Promise<void>;
  /** Milliseconds on a monotonic clock (default performance.now). */
  now?: () => number;
  /** Which failures are retried (default: FastnetError with code SERVER_BUSY). */
  isBusy?: (err: unknown) => boolean;
}

export const DEFAULT_BUSY_RETRY = Object.freeze({ maxAttempts: 6, budgetMs: 15_000, baseDelayMs: 100, maxDelayMs: 2_000 });

/** True for the error a 503 answer to the handshake gives. */
export function isServerBusy(err: unknown): boolean {
  return err instanceof FastnetError && err.code === "SERVER_BUSY";
}

/**
 * The pause before retry number `retry` (1 for the first retry): "full jitter", uniform between 0 and
 * min(maxDelayMs, baseDelayMs * 2^(retry-1)), so clients that were refused together do not come back
 * together.
 */
export function busyRetryDelay(retry: number, random: () => number, baseDelayMs: number, maxDelayMs: number): number {
  const bound = Math.min(maxDelayMs, baseDelayMs * 2 ** Math.min(retry - 1, 30));
  return random() * bound;
}

/**
 * Runs `attempt` (given the attempt number, 1 first) and, while it fails with a busy answer, runs it again
 * after a jittered pause, until it succeeds, fails otherwise (that error is thrown as is), or the budget
 * of attempts or time is spent: then a SERVER_BUSY error is thrown that says how long and how often it
 * tried, with the last busy error as its cause.
 */
export async function retryWhenBusy<T>(attempt: (n: number) => Promise<T>, options: BusyRetryOptions = {}): Promise<T> {
  const maxAttempts = options.maxAttempts ?? DEFAULT_BUSY_RETRY.maxAttempts;
  const budgetMs = options.budgetMs ?? DEFAULT_BUSY_RETRY.budgetMs;
  const baseDelayMs = options.baseDelayMs ?? DEFAULT_BUSY_RETRY.baseDelayMs;
  const maxDelayMs = options.maxDelayMs ?? DEFAULT_BUSY_RETRY.maxDelayMs;
  for (const [key, v] of [["budgetMs", budgetMs], ["baseDelayMs", baseDelayMs], ["maxDelayMs", maxDelayMs]] as const) {
    if (!(v >= 0) || !Number.isFinite(v)) throw new FastnetError("INVALID_OPTION", `${key} must be a finite number >= 0, got ${String(v)}`);
  }
  if (!Number.isInteger(maxAttempts) || maxAttempts < 1) {
    throw new FastnetError("INVALID_OPTION", `maxAttempts must be an integer >= 1, got ${String(maxAttempts)}`);
  }
  const random = options.random ?? Math.random;
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
  const now = options.now ?? (() => performance.now());
  const isBusy = options.isBusy ?? isServerBusy;

  const start = now();
  for (let n = 1; ; n++) {
    let last: unknown;
    try {
      return await attempt(n);
    } catch (err) {
      if (!isBusy(err)) throw err;
      last = err;
    }
    const delay = busyRetryDelay(n, random, baseDelayMs, maxDelayMs);
    const elapsed = now() - start;
    if (n >= maxAttempts || elapsed + delay > budgetMs) {
      const why = n >= maxAttempts ? `${n} attempts` : `${n} attempt${n === 1 ? "" : "s"} in ${Math.round(elapsed)} ms (retry budget ${budgetMs} ms)`;
      const text = last instanceof Error ? last.message : String(last);
      throw new FastnetError("SERVER_BUSY", `${text}; gave up after ${why}: the server is overloaded, try again later or add capacity`, { cause: last });
    }
    await sleep(delay);
  }
}
