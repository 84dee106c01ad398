/** Column printing for the benchmarks' tables. */

/** `s` right-aligned in a column of width `w`. */
export const pad = (s: string | number, w: number): string => String(s).padStart(w);
