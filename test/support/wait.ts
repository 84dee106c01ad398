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
