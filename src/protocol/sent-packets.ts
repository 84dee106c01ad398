/**
 * The outstanding ack-eliciting packets, oldest first, kept as a ring of typed arrays: one slot per
 * packet, no object per packet and nothing for the garbage collector on the send path. A slot holds
 * the packet number, when it was sent, its size, the first [start, end) range of stream bytes it
 * carried (most packets carry one), any further ranges, the largest packet number its ACK frame
 * acknowledged, whether it was app-limited, and the CID frame sequence numbers it carried.
 *
 * Records leave by compaction (see beginCompaction): order is kept, and removals before the first kept
 * record only move the head, so the usual ACK of the oldest packets copies nothing.
 */
export class SentPackets {
  /** How many records are held. */
  length = 0;
  private head = 0;
  private mask = 0;
  private readonly initialSlots: number;
  // Compaction state (see beginCompaction).
  private leading = 0;
  private kept = 0;
  pn!: Float64Array;
  timeSent!: Float64Array;
  size!: Uint32Array;
  /** First range of stream bytes carried, or -1 / -1 for none. */
  streamStart!: Float64Array;
  streamEnd!: Float64Array;
  /** Stream ranges beyond the first, as flat [start, end) pairs; null for most packets. */
  moreStream!: (number[] | null)[];
  ackLargest!: Float64Array;
  appLimited!: Uint8Array;
  cids!: (number[] | null)[];

  /** `capacity`: the most records ever held (rounded up to a power of two); slots grow to it. */
  constructor(private readonly capacity: number, initialSlots = 8) {
    this.initialSlots = Math.min(pow2(initialSlots), pow2(capacity));
    this.allocate(this.initialSlots);
  }

  private allocate(n: number): void {
    this.head = 0;
    this.mask = n - 1;
    this.pn = new Float64Array(n);
    this.timeSent = new Float64Array(n);
    this.size = new Uint32Array(n);
    this.streamStart = new Float64Array(n);
    this.streamEnd = new Float64Array(n);
    this.moreStream = new Array<number[] | null>(n).fill(null);
    this.ackLargest = new Float64Array(n);
    this.appLimited = new Uint8Array(n);
    this.cids = new Array<number[] | null>(n).fill(null);
  }

  /** Slots allocated now (what the records' memory costs). */
  get slots(): number {
    return this.mask + 1;
  }

  /** The slot of the k-th record, oldest first. */
  slot(k: number): number {
    return (this.head + k) & this.mask;
  }

  /**
   * Appends a record. `stream`: flat [start, end) pairs (read, not kept). Throws past the capacity: the
   * sender stops well before it (see Recovery.overflowing), so reaching it is a bug, not input.
   */
  push(pn: number, timeSent: number, size: number, stream: readonly number[] | null, ackLargest: number, appLimited: boolean, cids: number[] | null): void {
    if (this.length > this.mask) this.grow();
    const s = (this.head + this.length) & this.mask;
    this.pn[s] = pn;
    this.timeSent[s] = timeSent;
    this.size[s] = size;
    if (stream !== null && stream.length >= 2) {
      this.streamStart[s] = stream[0]!;
      this.streamEnd[s] = stream[1]!;
      this.moreStream[s] = stream.length > 2 ? stream.slice(2) : null;
    } else {
      this.streamStart[s] = -1;
      this.streamEnd[s] = -1;
      this.moreStream[s] = null;
    }
    this.ackLargest[s] = ackLargest;
    this.appLimited[s] = appLimited ? 1 : 0;
    this.cids[s] = cids;
    this.length++;
  }

  /**
   * A compaction walks the records oldest first (k = 0..length-1, slot(k)) and calls `drop` or `keep`
   * for each, then `endCompaction`. Order is kept; drops before the first kept record only move the
   * head, so the usual ACK of the oldest packets copies nothing.
   */
  beginCompaction(): void {
    this.leading = 0;
    this.kept = 0;
  }

  /** Removes the record in slot `s` (the caller is done reading it). */
  drop(s: number): void {
    this.release(s);
    if (this.kept === 0) this.leading++;
  }

  /** Keeps the k-th record (in slot `s`), moving it down over the gaps dropped before it. */
  keep(k: number, s: number): void {
    const to = this.leading + this.kept;
    if (k !== to) this.move(s, (this.head + to) & this.mask);
    this.kept++;
  }

  endCompaction(): void {
    this.head = (this.head + this.leading) & this.mask;
    this.length = this.kept;
    // Once a burst is all acknowledged, the slots it grew go back: an idle session holds the minimum.
    if (this.kept === 0 && this.mask + 1 > this.initialSlots) this.allocate(this.initialSlots);
  }

  /** Numbers of stream-range and CID entries held beyond the slots (for heldBytes). */
  extraEntries(): number {
    let n = 0;
    for (let k = 0; k < this.length; k++) {
      const s = (this.head + k) & this.mask;
      n += this.moreStream[s]?.length ?? 0;
      n += this.cids[s]?.length ?? 0;
    }
    return n;
  }

  /** The k-th record (oldest first) as a plain object, stream ranges flattened (for tests and diagnostics). */
  record(k: number): { pn: number; timeSent: number; size: number; stream: number[]; ackLargest: number; appLimited: boolean; cids: number[] | null } {
    const s = this.slot(k);
    const stream = this.streamStart[s]! >= 0 ? [this.streamStart[s]!, this.streamEnd[s]!, ...(this.moreStream[s] ?? [])] : [];
    return { pn: this.pn[s]!, timeSent: this.timeSent[s]!, size: this.size[s]!, stream, ackLargest: this.ackLargest[s]!, appLimited: this.appLimited[s] === 1, cids: this.cids[s] ?? null };
  }

  /** Packet numbers held, oldest first (for tests and diagnostics). */
  pns(): number[] {
    const out: number[] = [];
    for (let k = 0; k < this.length; k++) out.push(this.pn[(this.head + k) & this.mask]!);
    return out;
  }

  /** Forgets what slot `s` refers to (its extra ranges and CID list). */
  private release(s: number): void {
    this.moreStream[s] = null;
    this.cids[s] = null;
  }

  /** Copies the record in slot `from` to slot `to` and releases `from`. */
  private move(from: number, to: number): void {
    this.pn[to] = this.pn[from]!;
    this.timeSent[to] = this.timeSent[from]!;
    this.size[to] = this.size[from]!;
    this.streamStart[to] = this.streamStart[from]!;
    this.streamEnd[to] = this.streamEnd[from]!;
    this.moreStream[to] = this.moreStream[from]!;
    this.ackLargest[to] = this.ackLargest[from]!;
    this.appLimited[to] = this.appLimited[from]!;
    this.cids[to] = this.cids[from]!;
    this.release(from);
  }

  private grow(): void {
    const n = (this.mask + 1) * 2;
    if (n > pow2(this.capacity)) throw new Error(`sent-packet records beyond their capacity of ${this.capacity}`);
    const old = { head: this.head, mask: this.mask, pn: this.pn, timeSent: this.timeSent, size: this.size, streamStart: this.streamStart,
      streamEnd: this.streamEnd, moreStream: this.moreStream, ackLargest: this.ackLargest, appLimited: this.appLimited, cids: this.cids };
    this.allocate(n);
    // The records go to slots 0..length-1, in order, wherever the old ring had wrapped them.
    for (let k = 0; k < this.length; k++) {
      const o = (old.head + k) & old.mask;
      this.pn[k] = old.pn[o]!;
      this.timeSent[k] = old.timeSent[o]!;
      this.size[k] = old.size[o]!;
      this.streamStart[k] = old.streamStart[o]!;
      this.streamEnd[k] = old.streamEnd[o]!;
      this.moreStream[k] = old.moreStream[o]!;
      this.ackLargest[k] = old.ackLargest[o]!;
      this.appLimited[k] = old.appLimited[o]!;
      this.cids[k] = old.cids[o]!;
    }
  }
}

function pow2(n: number): number {
  let p = 1;
  while (p < n) p *= 2;
  return p;
}
