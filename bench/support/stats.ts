/** Summaries of the benchmarks' samples. */

/** Nearest-rank percentile `p` (0..1) of ascending `sorted`; NaN when there is no sample. */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.max(1, Math.ceil(p * sorted.length));
  return sorted[rank - 1]!;
}

/** Nanoseconds to microseconds, rounded to 0.1 µs. */
export const us = (ns: number): number => Math.round(ns / 100) / 10;

/** Milliseconds rounded to 0.01 ms. */
export const ms2 = (v: number): number => Math.round(v * 100) / 100;
