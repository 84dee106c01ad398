import { MigrationManager, type MigrationOptions, type SessionPaths } from "./migration.js";
import { CID_LENGTH } from "./version.js";

/**
 * Values by connection ID. Lookups read the CID straight from the datagram and allocate nothing: the
 * last four CID bytes (the keyed tag, uniform to anyone without the key) pick a bucket, then bytes
 * are compared.
 */
export class CidIndex<T> {
  private readonly buckets = new Map<number, { cid: Uint8Array; value: T }[]>();
  private count = 0;

  get size(): number {
    return this.count;
  }

  private static hash(buf: Uint8Array, offset: number): number {
    const o = offset + CID_LENGTH - 4;
    return ((buf[o]! << 24) | (buf[o + 1]! << 16) | (buf[o + 2]! << 8) | buf[o + 3]!) >>> 0;
  }

  /** Finds the value whose CID is at `offset` in `buf`. */
  lookup(buf: Uint8Array, offset: number): T | undefined {
    if (buf.length < offset + CID_LENGTH) return undefined;
    const bucket = this.buckets.get(CidIndex.hash(buf, offset));
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

  /** Adds a value; returns false if the CID is taken (the caller draws another). */
  add(cid: Uint8Array, value: T): boolean {
    if (this.get(cid) !== undefined) return false;
    const h = CidIndex.hash(cid, 0);
    let bucket = this.buckets.get(h);
    if (!bucket) this.buckets.set(h, (bucket = []));
    bucket.push({ cid: cid.slice(), value });
    this.count++;
    return true;
  }

  delete(cid: Uint8Array): boolean {
    const h = CidIndex.hash(cid, 0);
    const bucket = this.buckets.get(h);
    if (!bucket) return false;
    const i = bucket.findIndex((e) => e.cid.every((b, k) => b === cid[k]));
    if (i < 0) return false;
    bucket.splice(i, 1);
    if (bucket.length === 0) this.buckets.delete(h);
    this.count--;
    return true;
  }
}

/** What the table needs of a session: its path state, and the CIDs routed to it. */
export interface TableSession {
  readonly paths: SessionPaths;
  /** Every CID routed to this session now (the table forgets them all when it leaves). */
  activeCids(): Uint8Array[];
}

/**
 * The server's sessions, found by connection ID and never by address: each is in the CID index under
 * every active CID it has (up to ACTIVE_CID_LIMIT). Beside the CID index sits the MigrationManager:
 * each session's paths, the address index, the validation policy and the migration rate limits.
 * Bounded: at most `maxSessions` sessions, each with a bounded number of CIDs and candidate paths.
 */
export class SessionTable<S extends TableSession> {
  /** Paths, validation policy, rate limits and the address index of every session in the table. */
  readonly migration: MigrationManager<S>;
  private readonly byCid = new CidIndex<S>();
  private readonly sessions = new Set<S>();

  constructor(
    readonly maxSessions: number,
    migration: Partial<MigrationOptions> = {},
  ) {
    this.migration = new MigrationManager(migration);
  }

  /** Sessions in the table (from accept to close). */
  get size(): number {
    return this.sessions.size;
  }

  /** CIDs routed, over all sessions. */
  get cidCount(): number {
    return this.byCid.size;
  }

  /** True when no session can be added. */
  get full(): boolean {
    return this.sessions.size >= this.maxSessions;
  }

  /** The session whose CID is at `offset` in `buf` (no allocation). */
  lookup(buf: Uint8Array, offset: number): S | undefined {
    return this.byCid.lookup(buf, offset);
  }

  /** True when `cid` routes to some session. */
  has(cid: Uint8Array): boolean {
    return this.byCid.get(cid) !== undefined;
  }

  /** Adds a session under its first CID; false (nothing added) when the table is full or the CID taken. */
  add(session: S, cid: Uint8Array): boolean {
    if (this.full || this.sessions.has(session)) return false;
    if (!this.byCid.add(cid, session)) return false;
    this.sessions.add(session);
    return true;
  }

  /** Routes one more CID (a spare announced in NEW_CONNECTION_ID) to a session in the table. */
  route(cid: Uint8Array, session: S): boolean {
    return this.sessions.has(session) && this.byCid.add(cid, session);
  }

  /** Stops routing a CID (the peer retired it). */
  unroute(cid: Uint8Array): boolean {
    return this.byCid.delete(cid);
  }

  /** Forgets a session: every CID routed to it, and its place in the address index. */
  remove(session: S): boolean {
    if (!this.sessions.delete(session)) return false;
    for (const cid of session.activeCids()) {
      if (this.byCid.get(cid) === session) this.byCid.delete(cid);
    }
    this.migration.remove(session, session.paths);
    return true;
  }

  values(): IterableIterator<S> {
    return this.sessions.values();
  }
}
