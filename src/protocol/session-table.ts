import { CID_LENGTH } from "./version.js";

/**
 * Sessions by connection ID, never by address; a session is in the table under each of its active
 * CIDs. Lookups read the CID straight from the datagram and allocate nothing: the last four CID bytes
 * (the keyed tag, uniform to anyone without the key) pick a bucket, then bytes are compared.
 */
export class SessionTable<T> {
  private readonly buckets = new Map<number, { cid: Uint8Array; value: T }[]>();
  private count = 0;

  get size(): number {
    return this.count;
  }

  private static hash(buf: Uint8Array, offset: number): number {
    const o = offset + CID_LENGTH - 4;
    return ((buf[o]! << 24) | (buf[o + 1]! << 16) | (buf[o + 2]! << 8) | buf[o + 3]!) >>> 0;
  }

  /** Finds the session whose CID is at `offset` in `buf`. */
  lookup(buf: Uint8Array, offset: number): T | undefined {
    if (buf.length < offset + CID_LENGTH) return undefined;
    const bucket = this.buckets.get(SessionTable.hash(buf, offset));
    if (!bucket) return undefined;
    outer: for (const e of bucket) {
      for (let i = 0; i < CID_LENGTH; i++) if (e.cid[i] !== buf[offset + i]) continue outer;
      return e.value;
    }
    return undefined;
  }

  get(cid: Uint8Array): T | undefined {
    return this.lookup(cid, 0);
  }

  /** Adds a session; returns false if the CID is taken (the caller draws another). */
  add(cid: Uint8Array, value: T): boolean {
    if (this.get(cid) !== undefined) return false;
    const h = SessionTable.hash(cid, 0);
    let bucket = this.buckets.get(h);
    if (!bucket) this.buckets.set(h, (bucket = []));
    bucket.push({ cid: cid.slice(), value });
    this.count++;
    return true;
  }

  delete(cid: Uint8Array): boolean {
    const h = SessionTable.hash(cid, 0);
    const bucket = this.buckets.get(h);
    if (!bucket) return false;
    const i = bucket.findIndex((e) => e.cid.every((b, k) => b === cid[k]));
    if (i < 0) return false;
    bucket.splice(i, 1);
    if (bucket.length === 0) this.buckets.delete(h);
    this.count--;
    return true;
  }

  *values(): IterableIterator<T> {
    for (const bucket of this.buckets.values()) for (const e of bucket) yield e.value;
  }
}
