/**
 * The measurement schedule of the round-trip benchmarks (bench/rtt.ts, bench/room.ts): every case warmed up
 * first, then `samples` counted round trips per case taken in min(rounds, samples) rounds; each round runs
 * one block of every case, the case order rotated by one per round, and each block starts with `rewarm`
 * uncounted round trips.
 */
export interface Schedule {
  samples: number;
  warmup: number;
  rounds: number;
  rewarm: number;
}

export async function measureInterleaved<C>(
  cases: readonly C[],
  s: Schedule,
  /** Runs `count` uncounted round trips on a case. */
  uncounted: (c: C, count: number) => Promise<void>,
  /** Runs `count` counted round trips on a case. */
  counted: (c: C, count: number) => Promise<void>,
  progress: (line: string) => void,
): Promise<void> {
  for (const c of cases) await uncounted(c, s.warmup);
  progress(`warm-up done (${s.warmup} round trips per case), measuring ${s.samples} per case`);
  const rounds = Math.min(s.rounds, s.samples);
  for (let r = 0; r < rounds; r++) {
    const quota = Math.floor(((r + 1) * s.samples) / rounds) - Math.floor((r * s.samples) / rounds);
    for (let k = 0; k < cases.length; k++) {
      const c = cases[(k + r) % cases.length]!;
      await uncounted(c, s.rewarm);
      await counted(c, quota);
    }
  }
}
