/**
 * Sliding replay window over packet numbers (the IPsec / netcode pattern, RFC 4303 §3.4.3): a packet is
 * accepted once, and packets older than the window are refused. A ring of bits indexed by pn mod size,
 * so marking is O(1) amortised and nothing is allocated per packet.
 */
export class ReplayWindow {
  /** Window size in packets; a power of two. */
  readonly size: number;
  private readonly bits: Uint32Array;
  private largest = -1;

  constructor(size = 2048) {
    if (size < 1024 || (size & (size - 1)) !== 0) throw new RangeError("replay window must be a power of two >= 1024");
    this.size = size;
    this.bits = new Uint32Array(size / 32);
  }

  /** Highest packet number marked so far, or -1. */
  get largestMarked(): number {
    return this.largest;
  }

  /** True when `pn` has not been seen and is not too old. Does not change state (call before AEAD open). */
  check(pn: number): boolean {
    if (pn > this.largest) return true;
    if (this.largest - pn >= this.size) return false;
    const i = pn % this.size;
    return (this.bits[i >>> 5]! & (1 << (i & 31))) === 0;
  }

  /** Records `pn` as received (call only after the packet authenticated). */
  mark(pn: number): void {
    if (pn > this.largest) {
      const gap = pn - this.largest;
      if (gap >= this.size) {
        this.bits.fill(0);
      } else {
        for (let p = this.largest + 1; p < pn; p++) {
          const i = p % this.size;
          this.bits[i >>> 5]! &= ~(1 << (i & 31));
        }
      }
      this.largest = pn;
    }
    const i = pn % this.size;
    this.bits[i >>> 5]! |= 1 << (i & 31);
  }
}
