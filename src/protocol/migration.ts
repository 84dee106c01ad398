/**
 * Connection migration on the server (RFC 9000 §9): which peer address each session sends to, which
 * addresses are being validated, and how often a session may move. Sans-IO: addresses are plain
 * values, time is passed in, and the connection's PATH_CHALLENGE / PATH_RESPONSE do the proving.
 */

/** A peer's UDP address. */
export interface PathAddress {
  readonly address: string;
  readonly port: number;
}

export interface MigrationOptions {
  /** Addresses being validated at once per session (default 3). */
  maxCandidatePaths: number;
  /** Migrations a session may start within `migrationWindowMs` (default 30). */
  maxMigrations: number;
  /** Window of the rate limit (default 10000 ms). */
  migrationWindowMs: number;
}

export const DEFAULT_MIGRATION_OPTIONS: Readonly<MigrationOptions> = Object.freeze({
  maxCandidatePaths: 3,
  maxMigrations: 30,
  migrationWindowMs: 10_000,
});

export function sameAddress(a: PathAddress | null, b: PathAddress | null): boolean {
  return a !== null && b !== null && a.port === b.port && a.address === b.address;
}

export function addressKey(a: PathAddress): string {
  return a.address.includes(":") ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`;
}

/** Per-session path state, owned by the MigrationManager. */
export class SessionPaths {
  /** Where the session's packets go now (validated or not). */
  current: PathAddress | null = null;
  /** The last address proven to reach the peer: where we return if a new one fails. */
  validated: PathAddress | null = null;
  /** Challenges in flight: challenge data (hex) → the address it was sent to. */
  readonly candidates = new Map<string, PathAddress>();
  /** Start times of recent migrations (the rate limit's window). */
  readonly recent: number[] = [];
  /** Completed (validated) migrations. */
  migrations = 0;
  /** Addresses refused by the rate limit (each counted once while it keeps asking). */
  refused = 0;
  lastRefused: PathAddress | null = null;
}

/** What to do about an authenticated packet from some address. */
export type PathDecision =
  /** It came from where we send: nothing to do. */
  | { kind: "same" }
  /** Move sending there now and challenge it (`newNetwork`: the IP changed, not just the port). */
  | { kind: "migrate"; from: PathAddress | null; newNetwork: boolean }
  /** Back to the last validated address (a failed or spoofed move undone): no challenge needed. */
  | { kind: "return" }
  /** Process the packet but do not move: an older packet, or the rate limit (`first` refusal of that address). */
  | { kind: "stay"; reason: "older" }
  | { kind: "stay"; reason: "rate-limited"; first: boolean };

/**
 * The server's migration policy and its address index (which sessions have been seen at which
 * address). Sessions themselves are found by connection ID, never through this index.
 */
export class MigrationManager<S> {
  readonly options: MigrationOptions;
  private readonly index = new Map<string, Set<S>>();

  constructor(options: Partial<MigrationOptions> = {}) {
    const given = Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined));
    this.options = { ...DEFAULT_MIGRATION_OPTIONS, ...given };
  }

  /** The first authenticated packet (the bind) sets a session's validated address. */
  bind(session: S, paths: SessionPaths, at: PathAddress): void {
    paths.current = at;
    paths.validated = at;
    this.indexAdd(at, session);
  }

  /**
   * Decides about an authenticated datagram from `from`. `newest`: it carried the highest packet
   * number so far. Only the newest packet can move a session (an old one may be a delayed copy).
   */
  consider(paths: SessionPaths, from: PathAddress, newest: boolean, now: number): PathDecision {
    if (sameAddress(paths.current, from)) return { kind: "same" };
    if (!newest) return { kind: "stay", reason: "older" };
    // Going back to the last validated address is always allowed: it is proven and cannot amplify.
    if (sameAddress(paths.validated, from)) {
      paths.current = from;
      paths.candidates.clear();
      return { kind: "return" };
    }
    const windowStart = now - this.options.migrationWindowMs;
    while (paths.recent.length > 0 && paths.recent[0]! < windowStart) paths.recent.shift();
    if (paths.recent.length >= this.options.maxMigrations) {
      // Counted once per address refused, not per packet that asks again.
      const first = !sameAddress(paths.lastRefused, from);
      if (first) paths.refused++;
      paths.lastRefused = from;
      return { kind: "stay", reason: "rate-limited", first };
    }
    paths.recent.push(now);
    const previous = paths.current;
    paths.current = from;
    return { kind: "migrate", from: previous, newNetwork: previous === null || previous.address !== from.address };
  }

  /** Remembers which address a challenge went to (the oldest candidate goes beyond the limit). */
  challenged(paths: SessionPaths, data: Uint8Array, to: PathAddress): void {
    if (paths.candidates.size >= this.options.maxCandidatePaths) {
      const oldest = paths.candidates.keys().next().value;
      if (oldest !== undefined) paths.candidates.delete(oldest);
    }
    paths.candidates.set(hex(data), to);
  }

  /**
   * A challenge was answered. Returns the completed migration when the answered address is where the
   * session sends now; the old address leaves the index.
   */
  validated(session: S, paths: SessionPaths, data: Uint8Array): { from: PathAddress; to: PathAddress } | null {
    const key = hex(data);
    const to = paths.candidates.get(key);
    paths.candidates.delete(key);
    if (!to || !sameAddress(paths.current, to)) return null;
    const from = paths.validated;
    paths.validated = to;
    paths.candidates.clear();
    if (from && sameAddress(from, to)) return null;
    if (from) this.indexRemove(from, session);
    this.indexAdd(to, session);
    paths.migrations++;
    return from ? { from, to } : null;
  }

  /**
   * A challenge went unanswered. Returns the address to go back to when it was the current one
   * (the last validated address), or null when nothing changes.
   */
  failed(paths: SessionPaths, data: Uint8Array): PathAddress | null {
    const key = hex(data);
    const to = paths.candidates.get(key);
    paths.candidates.delete(key);
    if (!to || !sameAddress(paths.current, to) || paths.validated === null) return null;
    paths.current = paths.validated;
    paths.candidates.clear();
    return paths.current;
  }

  /** Forgets a closed session. */
  remove(session: S, paths: SessionPaths): void {
    if (paths.validated) this.indexRemove(paths.validated, session);
  }

  /** Sessions last validated at `at` (diagnostics and tests). */
  sessionsAt(at: PathAddress): S[] {
    return [...(this.index.get(addressKey(at)) ?? [])];
  }

  /** Distinct addresses in the index. */
  get indexedAddresses(): number {
    return this.index.size;
  }

  private indexAdd(at: PathAddress, s: S): void {
    const k = addressKey(at);
    let set = this.index.get(k);
    if (!set) this.index.set(k, (set = new Set()));
    set.add(s);
  }

  private indexRemove(at: PathAddress, s: S): void {
    const k = addressKey(at);
    const set = this.index.get(k);
    if (!set) return;
    set.delete(s);
    if (set.size === 0) this.index.delete(k);
  }
}

function hex(b: Uint8Array): string {
  let s = "";
  for (const x of b) s += x.toString(16).padStart(2, "0");
  return s;
}
