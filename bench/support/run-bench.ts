import { killAllChildren } from "./children.js";

/**
 * Runs a benchmark's `main` with what every benchmark here needs: child processes killed on exit, on
 * a signal and on failure, an overall time limit, and an explicit exit (a straggling timer or socket
 * must not keep a finished benchmark alive). A FAIL of a target is a result; only errors exit 1.
 */
export function runBench(name: string, main: () => Promise<void>, overallTimeoutMs: number): void {
  process.on("exit", killAllChildren);
  for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    process.on(sig, () => {
      process.stderr.write(`${name}: ${sig}, stopping\n`);
      killAllChildren();
      process.exit(130);
    });
  }
  const overall = setTimeout(() => {
    process.stderr.write(`${name}: FAILED: the run did not finish within ${overallTimeoutMs / 1000} s\n`);
    killAllChildren();
    process.exit(1);
  }, overallTimeoutMs);
  overall.unref();
  main().then(
    () => {
      clearTimeout(overall);
      killAllChildren();
      process.exitCode = 0;
      setImmediate(() => process.exit(0));
    },
    (err: unknown) => {
      process.stderr.write(`${name}: FAILED: ${err instanceof Error ? err.message : String(err)}\n`);
      killAllChildren();
      process.exit(1);
    },
  );
}
