import { FastnetError } from "../protocol/errors.js";
import { DEFAULT_ENDPOINT_OPTIONS, DEFAULT_SESSION_OPTIONS } from "../protocol/options.js";

/**
 * An option object with a key no entry point knows (a misspelling such as `idleTimeoutMS`, or an
 * option of another release). Its `code` is INVALID_OPTION, as for an invalid value; `key` is the
 * unknown key and `suggestion` the known one it most likely meant (undefined when none is close).
 */
export class FastnetOptionError extends FastnetError {
  readonly key: string;
  readonly suggestion: string | undefined;

  constructor(key: string, suggestion: string | undefined, where: string) {
    const hint = suggestion === undefined ? "" : ` (did you mean "${suggestion}"?)`;
    super("INVALID_OPTION", `unknown option "${key}"${hint} in ${where}`);
    this.name = "FastnetOptionError";
    this.key = key;
    this.suggestion = suggestion;
  }
}

/**
 * Every key of `T`, checked by the compiler both ways: a key missing from `keys` or not in `T` is a
 * type error, so the runtime list cannot drift from the option interface it stands for.
 */
export function keysOf<T>(keys: { readonly [K in keyof Required<T>]: true }): readonly string[] {
  return Object.keys(keys);
}

/** The engine's tuning options (SessionOptions and EndpointOptions), which every entry point takes. */
export const ENGINE_OPTION_KEYS: readonly string[] = Object.freeze([...Object.keys(DEFAULT_SESSION_OPTIONS), ...Object.keys(DEFAULT_ENDPOINT_OPTIONS)]);

/**
 * Throws FastnetOptionError for the first own enumerable key of `options` not in `known` (keys whose
 * value is `undefined` included: `{ idleTimeoutMS: undefined }` is still a misspelling). `where` names
 * the entry point in the message ("FastnetClient options", ...). A non-object `options` is left to
 * the caller's own checks.
 */
export function checkOptionKeys(options: unknown, known: Iterable<string>, where: string): void {
  if (typeof options !== "object" || options === null) return;
  const knownSet = known instanceof Set ? (known as Set<string>) : new Set(known);
  for (const key of Object.keys(options)) {
    if (!knownSet.has(key)) throw new FastnetOptionError(key, suggestKey(key, knownSet), where);
  }
}

/**
 * The known key `key` most likely stands for: the same letters in another case, else the nearest
 * by edit distance (at most 2, or a third of the key's length for long keys), else undefined.
 */
export function suggestKey(key: string, known: Iterable<string>): string | undefined {
  const lower = key.toLowerCase();
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of known) {
    if (candidate.toLowerCase() === lower) return candidate;
    const d = editDistance(lower, candidate.toLowerCase());
    if (d < bestDistance) {
      best = candidate;
      bestDistance = d;
    }
  }
  const limit = Math.max(2, Math.floor(key.length / 3));
  return bestDistance <= limit ? best : undefined;
}

/** Levenshtein distance, with adjacent transpositions counted as one edit (optimal string alignment). */
function editDistance(a: string, b: string): number {
  const rows = a.length + 1;
  const cols = b.length + 1;
  const d: number[][] = Array.from({ length: rows }, (_, i) => Array.from({ length: cols }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i < rows; i++) {
    for (let j = 1; j < cols; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, d[i - 2]![j - 2]! + 1);
      d[i]![j] = v;
    }
  }
  return d[a.length]![b.length]!;
}
