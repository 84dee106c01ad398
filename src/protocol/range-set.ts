/**
 * A sorted set of disjoint half-open integer ranges [start, end). Used for received packet numbers,
 * acknowledged stream bytes and stream bytes waiting for retransmission. Adjacent ranges merge.
 */
export class RangeSet {
  /** Flat pairs: starts[i] < ends[i] <= starts[i + 1]. Arrays stay small (bounded by callers). */
  readonly starts: number[] = [];
  readonly ends: number[] = [];

  get size(): number {
    return this.starts.length;
  }

  isEmpty(): boolean {
    return this.starts.length === 0;
  }

  /** Smallest value in the set; undefined when empty. */
  min(): number | undefined {
    return this.starts[0];
  }

  /** One past the largest value in the set; undefined when empty. */
  max(): number | undefined {
    return this.ends[this.ends.length - 1];
  }

  /** Index of the first range whose end is >= v (the one that contains or follows v). */
  private lowerBound(v: number): number {
    let lo = 0;
    let hi = this.ends.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.ends[mid]! < v) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Index of the first range that ends after `v` (contains or follows it); `size` when none does. */
  firstEndingAfter(v: number): number {
    return this.lowerBound(v + 1);
  }

  contains(v: number): boolean {
    const i = this.lowerBound(v + 1);
    return i < this.starts.length && this.starts[i]! <= v && v < this.ends[i]!;
  }

  /** True when all of [start, end) is in the set. */
  containsRange(start: number, end: number): boolean {
    const i = this.lowerBound(start + 1);
    return i < this.starts.length && this.starts[i]! <= start && end <= this.ends[i]!;
  }

  /** Adds [start, end), merging with neighbours it touches. */
  add(start: number, end: number): void {
    if (start >= end) return;
    let i = this.lowerBound(start); // first range with end >= start
    let j = i;
    let s = start;
    let e = end;
    while (j < this.starts.length && this.starts[j]! <= end) {
      if (this.starts[j]! < s) s = this.starts[j]!;
      if (this.ends[j]! > e) e = this.ends[j]!;
      j++;
    }
    replace(this.starts, i, j - i, s);
    replace(this.ends, i, j - i, e);
  }

  /** Removes [start, end) from the set. */
  remove(start: number, end: number): void {
    if (start >= end) return;
    let i = this.lowerBound(start + 1);
    while (i < this.starts.length && this.starts[i]! < end) {
      const s = this.starts[i]!;
      const e = this.ends[i]!;
      if (s < start && e > end) {
        // split
        this.ends[i] = start;
        replace(this.starts, i + 1, 0, end);
        replace(this.ends, i + 1, 0, e);
        return;
      }
      if (s < start) {
        this.ends[i] = start;
        i++;
      } else if (e > end) {
        this.starts[i] = end;
        return;
      } else {
        remove(this.starts, i, 1);
        remove(this.ends, i, 1);
      }
    }
  }

  /** Drops the lowest ranges until at most `max` remain. */
  truncateLow(max: number): void {
    const extra = this.starts.length - max;
    if (extra > 0) {
      remove(this.starts, 0, extra);
      remove(this.ends, 0, extra);
    }
  }

  clear(): void {
    remove(this.starts, 0, this.starts.length);
    remove(this.ends, 0, this.ends.length);
  }
}

// Array edits without allocation: `splice` returns a new array of what it removed (once or twice per
// packet here), and shrinking an array by setting `length` makes V8 trim its backing store, which the
// next push allocates again. Shifting in place and `pop` keep the array's capacity. Arrays are small.

/** Replaces the `count` elements at `i` by the single value `v` (count 0: inserts `v` at `i`). */
function replace(a: number[], i: number, count: number, v: number): void {
  if (count === 1) {
    a[i] = v;
    return;
  }
  if (count === 0) {
    a.push(v);
    for (let k = a.length - 1; k > i; k--) a[k] = a[k - 1]!;
    a[i] = v;
    return;
  }
  a[i] = v;
  remove(a, i + 1, count - 1);
}

/** Removes the `count` elements at `i`. */
function remove(a: number[], i: number, count: number): void {
  const n = a.length;
  for (let k = i + count; k < n; k++) a[k - count] = a[k]!;
  for (let k = 0; k < count; k++) a.pop();
}
