import { CidAuthority, deriveCidKey } from "./cid.js";
import type { CidIssuer, IssuedCid } from "./cid-set.js";
import { Connection, Received, type ConnectionConfig, type ConnectionEvent } from "./connection.js";
import { DEFAULT_MIGRATION_OPTIONS, SessionPaths, sameAddress, type MigrationOptions, type PathAddress } from "./migration.js";
import { DEFAULT_ENDPOINT_OPTIONS, resolveOptions } from "./options.js";
import { CID_OFFSET, PacketType, parseHeader, type ParsedHeader } from "./packet-header.js";
import { SessionTable } from "./session-table.js";
import { MIN_RESET_LENGTH, RateLimiter, buildStatelessReset, deriveResetKey, statelessResetToken } from "./stateless-reset.js";
import { CID_LENGTH } from "./version.js";

/**
 * The server endpoint, sans-IO: every datagram that reaches the server's UDP sockets goes through
 * `receive`, which finds its session by connection ID in the SessionTable, hands it to that session's
 * Connection and then decides, from the connection's verdict and the sender's address, where the
 * session's packets go (path migration, RFC 9000 §9). Datagrams for CIDs no session has may draw a
 * stateless reset (rate-limited), polled from `pollTransmit`. The endpoint issues every CID (QUIC-LB
 * layout, keyed tag) and the reset tokens that go with them.
 *
 * No clock, socket or global randomness: the time and a random-fill function are passed in, addresses
 * are plain values, and `L` is whatever the driver uses to name the local socket a datagram came in on
 * (replies to a session leave through the one its last authenticated packet arrived on).
 */

/** Counters of the server endpoint (per-session counters are in each session's stats). */
export interface EndpointStats {
  datagramsReceived: number;
  /** Datagrams shorter than a packet or longer than 1200 bytes. */
  malformed: number;
  /** Datagrams for a connection ID no session has. */
  unknownCid: number;
  /** Handshakes refused because `maxSessions` sessions are open. */
  sessionsRefused: number;
  sessionsOpened: number;
  /** Validated migrations: sessions that moved to a new peer address. */
  migrations: number;
  /** Migrations refused by the per-session rate limit. */
  migrationsRefused: number;
  /** Path validations that failed (the session went back to its last validated address). */
  pathValidationsFailed: number;
  /** Stateless resets sent for unknown connection IDs, and those held back by the rate limit. */
  statelessResetsSent: number;
  statelessResetsLimited: number;
}

export interface EndpointConfig {
  /** The long-lived secret behind reset tokens and CID tags (it must survive restarts; see `rekey`). */
  secret: Uint8Array;
  /** Server id placed in every CID (QUIC-LB), 0 to 3 bytes. */
  serverId?: Uint8Array;
  /** Fills `out` with cryptographically random bytes (CIDs, resets, path challenges). */
  random: (out: Uint8Array) => void;
  /** Current time in milliseconds (the same monotonic clock every later call passes). */
  now: number;
  /** Sessions at once (default 10000). */
  maxSessions?: number;
  /** Stateless resets sent per second at most (default 100). */
  statelessResetsPerSecond?: number;
  /** Candidate paths, migration rate limit (DEFAULT_MIGRATION_OPTIONS where not given). */
  migration?: Partial<MigrationOptions>;
}

/** What `accept` needs besides what the endpoint supplies (role, CID, randomness, CID issuer). */
export type AcceptConfig = Omit<ConnectionConfig, "role" | "cid" | "random" | "cidIssuer">;

/** A datagram the endpoint itself sends (a stateless reset), to `to` through local socket `local`. */
export interface Transmit<L> {
  datagram: Uint8Array;
  to: PathAddress;
  local: L | undefined;
}

/** Something the driver should tell its users about. */
export type EndpointEvent<H> = { type: "migrated"; session: H; from: PathAddress; to: PathAddress };

/** Stateless resets and events waiting to be polled, at most (the driver polls after every datagram). */
const MAX_QUEUED = 64;

/**
 * One session as the endpoint sees it: its Connection, where its packets go (paths), the local socket
 * it answers through, and the driver's handle `H` (the object the driver wraps it in). It is also the
 * connection's CID issuer, and the source of the connection's events for the driver: path events are
 * the endpoint's business and never reach the driver.
 */
export class EndpointSession<H, L> implements CidIssuer {
  readonly connection: Connection;
  /** Where packets go, the last validated address, candidates: moved only by authenticated packets. */
  readonly paths = new SessionPaths();
  /** The driver's object for this session (set by the driver right after `accept`). */
  handle: H | undefined = undefined;
  /** The local socket the last authenticated packet arrived on (undefined: the driver's default). */
  local: L | undefined = undefined;

  constructor(
    private readonly endpoint: Endpoint<H, L>,
    cid: Uint8Array,
    config: AcceptConfig,
    random: (out: Uint8Array) => void,
  ) {
    this.connection = new Connection({ ...config, role: "server", cid, random, cidIssuer: this });
  }

  /** True once the first authenticated packet (the bind) gave the session an address. */
  get bound(): boolean {
    return this.paths.current !== null;
  }

  /**
   * The connection's next event for the driver. Path events (a challenge answered or not) are handled
   * here, in order with the rest: the session moves, or goes back, before the next packet is polled.
   */
  pollEvent(): ConnectionEvent | null {
    for (;;) {
      const ev = this.connection.pollEvent();
      if (ev === null) return null;
      if (ev.type === "pathValidated") this.endpoint.pathValidated(this, ev.data);
      else if (ev.type === "pathFailed") this.endpoint.pathFailed(this, ev.data);
      else return ev;
    }
  }

  activeCids(): Uint8Array[] {
    return this.connection.activeCids();
  }

  /** CidIssuer: a spare CID (NEW_CONNECTION_ID) routes here as soon as it is made. */
  issue(): IssuedCid | null {
    return this.endpoint.issueCid(this);
  }

  /** CidIssuer: a CID the peer retired stops routing. */
  retire(cid: Uint8Array): void {
    this.endpoint.retireCid(cid);
  }
}

export class Endpoint<H = unknown, L = unknown> {
  readonly stats: EndpointStats = {
    datagramsReceived: 0,
    malformed: 0,
    unknownCid: 0,
    sessionsRefused: 0,
    sessionsOpened: 0,
    migrations: 0,
    migrationsRefused: 0,
    pathValidationsFailed: 0,
    statelessResetsSent: 0,
    statelessResetsLimited: 0,
  };
  /** Sessions by CID, with their paths and the MigrationManager beside them. */
  readonly table: SessionTable<EndpointSession<H, L>>;
  private readonly random: (out: Uint8Array) => void;
  private readonly serverId: Uint8Array | undefined;
  private readonly resets: RateLimiter;
  private resetKey: Uint8Array;
  private cids: CidAuthority;
  private readonly transmits: Transmit<L>[] = [];
  private readonly events: EndpointEvent<H>[] = [];
  /** Scratch for the header check of every datagram (no allocation per packet). */
  private readonly header: ParsedHeader = { type: PacketType.Data, keyPhase: 0, pnLength: 1, truncatedPn: 0, headerLength: 0 };

  constructor(config: EndpointConfig) {
    this.random = config.random;
    this.serverId = config.serverId;
    this.resetKey = deriveResetKey(config.secret);
    this.cids = new CidAuthority(deriveCidKey(config.secret), config.serverId);
    this.resets = new RateLimiter(config.statelessResetsPerSecond ?? 100, config.now);
    this.table = new SessionTable(config.maxSessions ?? DEFAULT_ENDPOINT_OPTIONS.maxSessions, resolveOptions(DEFAULT_MIGRATION_OPTIONS, config.migration));
  }

  /**
   * Replaces the long-lived secret, before any session exists (the driver does so at listen, from a
   * stored key): CIDs issued before would no longer verify, nor their reset tokens match.
   */
  rekey(secret: Uint8Array): void {
    this.resetKey = deriveResetKey(secret);
    this.cids = new CidAuthority(deriveCidKey(secret), this.serverId);
  }

  get sessionCount(): number {
    return this.table.size;
  }

  /** Sessions from accept to close. */
  sessions(): IterableIterator<EndpointSession<H, L>> {
    return this.table.values();
  }

  // ---------------------------------------------------------------- handshake side

  /**
   * Whether a handshake may go on to a session: false (counted in sessionsRefused) while `maxSessions`
   * sessions are open. Asked before and again after any asynchronous check, right before `accept`.
   */
  admit(): boolean {
    if (!this.table.full) return true;
    this.stats.sessionsRefused++;
    return false;
  }

  /** A CID no session uses: config octet, server id, random nonce, keyed tag. */
  newCid(): Uint8Array {
    let cid: Uint8Array;
    do cid = this.cids.generate(this.random);
    while (this.table.has(cid));
    return cid;
  }

  /** The stateless reset token of `cid` (given to the client with the CID). */
  resetToken(cid: Uint8Array): Uint8Array {
    return statelessResetToken(this.resetKey, cid);
  }

  /**
   * A new server session under `cid` (from `newCid`, sent to the client at the handshake). It has no
   * address until its bind arrives. Null when the table is full (see `admit`).
   */
  accept(cid: Uint8Array, config: AcceptConfig): EndpointSession<H, L> | null {
    const session = new EndpointSession<H, L>(this, cid, config, this.random);
    return this.table.add(session, cid) ? session : null;
  }

  /** Forgets a session (closed, or its handshake died before the bind): its CIDs stop routing. */
  remove(session: EndpointSession<H, L>): void {
    this.table.remove(session);
  }

  /** Sessions whose validated address is `at` (the address index). */
  sessionsAt(at: PathAddress): EndpointSession<H, L>[] {
    return this.table.migration.sessionsAt(at);
  }

  // ---------------------------------------------------------------- receive path

  /**
   * One datagram from `from`, arrived on local socket `local` at `now`. Returns the session it was
   * for (its connection has processed it: the driver then delivers its events and sends what it has),
   * or null when it belongs to none; then a stateless reset may wait in `pollTransmit`. `from` is
   * read, never kept: the endpoint copies an address it stores.
   */
  receive(datagram: Uint8Array, from: PathAddress, now: number, local?: L): EndpointSession<H, L> | null {
    this.stats.datagramsReceived++;
    // docs/protocol.md §3.1 step 1 (size, type, reserved bits) before anything else: a malformed
    // datagram is dropped even under a CID we issued, so it cannot draw a stateless reset either.
    if (!parseHeader(datagram, this.header)) {
      this.stats.malformed++;
      return null;
    }
    const session = this.table.lookup(datagram, CID_OFFSET);
    if (session === undefined) {
      this.stats.unknownCid++;
      this.maybeReset(datagram, from, now, local);
      return null;
    }
    const paths = session.paths;
    const fromCurrent = paths.current === null || sameAddress(paths.current, from);
    const verdict = session.connection.handleDatagram(datagram, now, fromCurrent);
    // Authenticated: decide where replies go before any is sent.
    if (verdict !== Received.Dropped) {
      if (local !== undefined) session.local = local;
      if (!fromCurrent || paths.current === null) this.route(session, from, verdict === Received.AcceptedNewest, datagram.length, now);
    }
    return session;
  }

  /** The next datagram the endpoint itself sends (a stateless reset), or null. */
  pollTransmit(): Transmit<L> | null {
    return this.transmits.shift() ?? null;
  }

  /** The next event for the driver's users (a validated migration), or null. */
  pollEvent(): EndpointEvent<H> | null {
    return this.events.length === 0 ? null : this.events.shift()!;
  }

  /** An authenticated packet from an address the session does not send to (or its first packet). */
  private route(session: EndpointSession<H, L>, from: PathAddress, newest: boolean, size: number, now: number): void {
    const migration = this.table.migration;
    const paths = session.paths;
    const at: PathAddress = { address: from.address, port: from.port };
    if (paths.current === null) {
      migration.bind(session, paths, at);
      this.stats.sessionsOpened++;
      return;
    }
    const connection = session.connection;
    const decision = migration.consider(paths, at, newest, now);
    if (decision.kind === "return") connection.revertPath();
    else if (decision.kind === "migrate") {
      const data = connection.startPathValidation(now, size, decision.newNetwork);
      migration.challenged(paths, data, at);
    } else if (decision.kind === "stay" && decision.reason === "rate-limited") {
      // The address stays, so does the CID sent there: the new path's CID must not appear on the old one.
      connection.keepPreviousCid();
      if (decision.first) this.stats.migrationsRefused++;
    }
  }

  /** Answers a packet for an unknown CID with a stateless reset, if it is long enough and the rate allows. */
  private maybeReset(datagram: Uint8Array, from: PathAddress, now: number, local: L | undefined): void {
    if (datagram.length <= MIN_RESET_LENGTH) return;
    // Only CIDs we issued (config octet, server id and keyed tag verify; an earlier process with the
    // same secret counts): anything else, random garbage included, is dropped without a reply.
    if (!this.cids.verify(datagram, CID_OFFSET)) return;
    if (!this.resets.take(now)) {
      this.stats.statelessResetsLimited++;
      return;
    }
    const cid = datagram.subarray(CID_OFFSET, CID_OFFSET + CID_LENGTH);
    const reset = buildStatelessReset(cid, this.resetToken(cid), datagram.length, this.random);
    if (!reset || this.transmits.length >= MAX_QUEUED) return;
    this.stats.statelessResetsSent++;
    this.transmits.push({ datagram: reset, to: { address: from.address, port: from.port }, local });
  }

  // ---------------------------------------------------------------- from the sessions

  /** @internal EndpointSession.issue: a spare CID for `session`, routed to it from now on. */
  issueCid(session: EndpointSession<H, L>): IssuedCid | null {
    const cid = this.newCid();
    if (!this.table.route(cid, session)) return null;
    return { cid, resetToken: this.resetToken(cid) };
  }

  /** @internal EndpointSession.retire. */
  retireCid(cid: Uint8Array): void {
    this.table.unroute(cid);
  }

  /** @internal A challenge of `session` was answered: it moves there if that is where it sends. */
  pathValidated(session: EndpointSession<H, L>, data: Uint8Array): void {
    const paths = session.paths;
    const moved = this.table.migration.validated(session, paths, data);
    if (sameAddress(paths.validated, paths.current)) session.connection.rememberValidatedCid();
    if (!moved) return;
    this.stats.migrations++;
    if (session.handle !== undefined && this.events.length < MAX_QUEUED) {
      this.events.push({ type: "migrated", session: session.handle, from: moved.from, to: moved.to });
    }
  }

  /** @internal A challenge of `session` went unanswered: back to the last validated address. */
  pathFailed(session: EndpointSession<H, L>, data: Uint8Array): void {
    if (!this.table.migration.failed(session.paths, data)) return;
    this.stats.pathValidationsFailed++;
    session.connection.revertPath();
    // Back on the old path: with the CID used there, so the two paths stay unlinkable.
    session.connection.restoreValidatedCid();
  }
}
