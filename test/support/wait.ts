/** Bounded waits shared by the tests: nothing a test awaits may hang the suite. */

/** Resolves or rejects with `p`, or rejects after `ms` naming `what` (the timer is always cleared). */
export async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Polls `cond` every `pollMs` until it holds; fails after `ms` with `what` (and `detail()` if given).
 * The harnesses wrap it as their `waitFor` with the poll interval they use.
 */
export async function pollUntil(cond: () => boolean, ms: number, what: string, detail: (() => string) | undefined, pollMs: number): Promise<void> {
  const deadline = performance.now() + ms;
  while (!cond()) {
    if (performance.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}${detail ? `: ${detail()}` : ""}`);
    await new Promise<void>((resolve) => setTimeout(resolve, pollMs));
  }
}

/** Like `pollUntil` for a condition that must be computed asynchronously (a stats query, a log read). */
export async function pollUntilAsync(cond: () => Promise<boolean>, ms: number, what: string, pollMs: number): Promise<void> {
  const deadline = performance.now() + ms;
  while (!(await cond())) {
    if (performance.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise<void>((resolve) => setTimeout(resolve, pollMs));
  }
}

/**
 * Resolves once `obj[method]` has next been called and returned (for a call that happens later, on a promise
 * or a timer the test cannot await); the method is restored then. Bound it with `within`.
 */
export function nextCall<T extends object, K extends keyof T>(obj: T, method: K): Promise<void> {
  const original = obj[method];
  if (typeof original !== "function") throw new TypeError(`${String(method)} is not a method`);
  return new Promise<void>((resolve) => {
    obj[method] = function (this: unknown, ...args: unknown[]) {
      obj[method] = original;
      const result = (original as (...a: unknown[]) => unknown).apply(this, args);
      resolve();
      return result;
    } as T[K];
  });
}
