import {
  RESET_TOKEN_LENGTH,
  newConnectionIdFrameSize,
  retireConnectionIdFrameSize,
  writeNewConnectionIdFrame,
  writeRetireConnectionIdFrame,
} from "./frames.js";
import type { Role } from "./connection.js";
import { CID_LENGTH } from "./version.js";

/**
 * The connection IDs of one session (RFC 9000 §5.1, simplified: one CID field serves both directions).
 *
 * Server: the CIDs it issued and the peer has not retired, at most ACTIVE_CID_LIMIT (sequence 0 is the
 * handshake's CID, the rest go out in NEW_CONNECTION_ID frames, resent until acknowledged). It sends
 * with the CID of the newest authenticated packet, so each path only ever carries its own CID. A
 * RETIRE_CONNECTION_ID removes a CID from routing; a replacement is issued after the packet.
 *
 * Client: the CIDs it was given. It sends with one; `switchToSpare` (on a move to a new socket)
 * takes the lowest unused one, and once a packet sent after the switch is acknowledged (the new path
 * works) every older CID is retired with RETIRE_CONNECTION_ID, resent until acknowledged. The reset
 * tokens of every CID it used are checked against undecryptable datagrams.
 */

/** CIDs a server keeps routable per session at once: the handshake's and two spares. */
export const ACTIVE_CID_LIMIT = 3;
/** Client: CIDs retired or waiting to be retired whose RETIRE is unacknowledged, at most; no switch beyond. */
export const MAX_RETIRING_CIDS = 4;

/** A CID made for a session, with its stateless reset token. */
export interface IssuedCid {
  cid: Uint8Array;
  resetToken: Uint8Array;
}

/** Server side: where new CIDs come from and where retired ones go (the endpoint's session table). */
export interface CidIssuer {
  /** A fresh CID routed to this session from now on, or null when none can be made. */
  issue(): IssuedCid | null;
  /** The peer retired `cid`: stop routing it to this session. */
  retire(cid: Uint8Array): void;
}

interface Entry {
  seq: number;
  cid: Uint8Array;
  token: Uint8Array | null;
  /** Server: a NEW_CONNECTION_ID for it is due. Client: a RETIRE_CONNECTION_ID for it is due. */
  due: boolean;
  /** Client: it has been the CID we send with. */
  used: boolean;
  /** Client: retired (a RETIRE is due or in flight); the entry goes once that is acknowledged. */
  retiring: boolean;
}

export class ConnectionIds {
  private readonly entries: Entry[] = [];
  private sending: Entry;
  /** Entry of the packet whose frames are being processed (a RETIRE must not name it). */
  private packet: Entry | null = null;
  /** Server: the CID sent with before the last packet switched it (see `undoSwitch`). */
  private beforePacket: Entry;
  /** Server: next sequence number to issue. */
  private nextSeq = 1;
  /** Server: the CID in use when the current address was last validated. */
  private validated: Entry;
  /** Client: once a packet numbered from here on is acknowledged, older CIDs are retired. */
  private retireAfterPn = -1;
  /** Server: CIDs the peer retired so far. */
  retiredCount = 0;

  constructor(
    private readonly role: Role,
    initial: Uint8Array,
    initialToken: Uint8Array | null,
    private readonly issuer: CidIssuer | null,
  ) {
    if (initial.length !== CID_LENGTH) throw new RangeError(`connection ID must be ${CID_LENGTH} bytes, got ${initial.length}`);
    const first: Entry = { seq: 0, cid: initial.slice(), token: initialToken?.slice() ?? null, due: false, used: true, retiring: false };
    this.entries.push(first);
    this.sending = first;
    this.validated = first;
    this.beforePacket = first;
  }

  /** The CID our packets carry now. */
  get current(): Uint8Array {
    return this.sending.cid;
  }

  /** Sequence number of the CID our packets carry now. */
  get currentSequence(): number {
    return this.sending.seq;
  }

  /** Server: CIDs routable to this session. Client: CIDs known and not retired. */
  get activeCount(): number {
    let n = 0;
    for (const e of this.entries) if (!e.retiring) n++;
    return n;
  }

  /** Client: spare CIDs never used yet. Server: issued CIDs besides the one in use. */
  get spareCount(): number {
    let n = 0;
    for (const e of this.entries) if (this.role === "server" ? e !== this.sending : !e.used && !e.retiring) n++;
    return n;
  }

  /** Copies of the CIDs routable to this session (server: what the endpoint must forget at close). */
  activeCids(): Uint8Array[] {
    return this.entries.filter((e) => !e.retiring).map((e) => e.cid.slice());
  }

  /** Index of the CID at `buf[offset..]` among ours, or -1. Runs per datagram: no allocation. */
  find(buf: Uint8Array, offset: number): number {
    const es = this.entries;
    outer: for (let i = 0; i < es.length; i++) {
      const c = es[i]!.cid;
      for (let k = 0; k < CID_LENGTH; k++) if (c[k] !== buf[offset + k]) continue outer;
      return i;
    }
    return -1;
  }

  /**
   * An authenticated packet carried CID `index` (from `find`); its frames are processed next. The
   * server answers with the CID of the newest packet, the one the client uses now.
   */
  onPacket(index: number, newest: boolean): void {
    const e = this.entries[index]!;
    this.packet = e;
    this.beforePacket = this.sending;
    if (this.role === "server" && newest && !e.retiring) this.sending = e;
  }

  /** Server: the last packet's move was refused (the address stays): keep sending with the CID used there. */
  undoSwitch(): void {
    if (this.entries.includes(this.beforePacket)) this.sending = this.beforePacket;
  }

  /** Server: issues CIDs until ACTIVE_CID_LIMIT are routable (called once per packet: at most 2 per packet). */
  topUp(): void {
    if (this.role !== "server" || this.issuer === null) return;
    while (this.entries.length < ACTIVE_CID_LIMIT) {
      const made = this.issuer.issue();
      if (made === null) return;
      this.entries.push({ seq: this.nextSeq++, cid: made.cid.slice(), token: made.resetToken.slice(), due: true, used: false, retiring: false });
    }
  }

  /** A NEW_CONNECTION_ID arrived. Returns a protocol violation to close with, or null. */
  onNewConnectionId(seq: number, cid: Uint8Array, token: Uint8Array): string | null {
    if (this.role !== "client") return "NEW_CONNECTION_ID sent by a client";
    for (const e of this.entries) {
      if (e.seq === seq) {
        // A retransmission must repeat the same values (RFC 9000 §19.15).
        return bytesEqual(e.cid, cid) && e.token !== null && bytesEqual(e.token, token) ? null : `connection ID ${seq} announced twice with different values`;
      }
    }
    if (this.find(cid, 0) >= 0) return `connection ID ${seq} repeats another sequence number's value`;
    if (seq < this.sending.seq) {
      // A spare that arrived after we moved past it (or a late copy of one we retired): retire it.
      if (this.retiringCount() >= MAX_RETIRING_CIDS) return null; // the server keeps it; it counts against its own limit
      this.entries.push({ seq, cid: cid.slice(), token: token.slice(), due: true, used: false, retiring: true });
      return null;
    }
    if (this.activeCount >= ACTIVE_CID_LIMIT) return `more than ${ACTIVE_CID_LIMIT} connection IDs active`;
    this.entries.push({ seq, cid: cid.slice(), token: token.slice(), due: false, used: false, retiring: false });
    return null;
  }

  /**
   * A RETIRE_CONNECTION_ID arrived. Retiring a CID never issued, or the one the packet itself carries,
   * is a protocol violation (returned); one retired before is a retransmission and ignored.
   */
  onRetireConnectionId(seq: number): string | null {
    if (this.role !== "server") return "RETIRE_CONNECTION_ID sent by a server";
    if (seq >= this.nextSeq) return `retired connection ID ${seq}, which was never issued`;
    let i = 0;
    while (i < this.entries.length && this.entries[i]!.seq !== seq) i++;
    if (i === this.entries.length) return null;
    const e = this.entries[i]!;
    if (e === this.packet) return `retired connection ID ${seq}, which its own packet carries`;
    this.entries.splice(i, 1);
    this.retiredCount++;
    this.issuer?.retire(e.cid);
    if (this.sending === e) this.sending = this.packet ?? this.entries[0]!;
    if (this.validated === e) this.validated = this.sending;
    return null;
  }

  /** Client: sends with the lowest unused spare from now on; false when there is none (or too many retiring). */
  switchToSpare(nextPn: number, largestAcked: number): boolean {
    if (this.role !== "client") return false;
    this.promoteRetired(largestAcked); // the previous path worked: its predecessors go now, not after this one
    if (this.retiringCount() + this.awaitingCount() >= MAX_RETIRING_CIDS) return false;
    let best: Entry | null = null;
    for (const e of this.entries) if (!e.used && !e.retiring && (best === null || e.seq < best.seq)) best = e;
    if (best === null) return false;
    best.used = true;
    this.sending = best;
    this.retireAfterPn = nextPn;
    return true;
  }

  /** Server: the current address was validated; remember the CID that goes with it. */
  rememberValidated(): void {
    this.validated = this.sending;
  }

  /** Server: sending went back to the last validated address; send the CID that went with it again. */
  restoreValidated(): void {
    if (this.entries.includes(this.validated)) this.sending = this.validated;
  }

  /** True when CID frames are waiting to be sent. Client: first retires the old CIDs once the new path works. */
  framesDue(largestAcked: number): boolean {
    this.promoteRetired(largestAcked);
    for (const e of this.entries) if (e.due) return true;
    return false;
  }

  /** Client: once a packet sent after the last switch is acknowledged, every older used CID is retired. */
  private promoteRetired(largestAcked: number): void {
    if (this.retireAfterPn < 0 || largestAcked < this.retireAfterPn) return;
    this.retireAfterPn = -1;
    for (const e of this.entries) {
      if (e.used && !e.retiring && e !== this.sending) {
        e.retiring = true;
        e.due = true;
      }
    }
  }

  /** Writes the due frames that fit before `end`; pushes their sequence numbers to `carried`. Returns the new offset. */
  writeFrames(buf: Uint8Array, off: number, end: number, carried: number[]): number {
    const server = this.role === "server";
    for (const e of this.entries) {
      if (!e.due) continue;
      const size = server ? newConnectionIdFrameSize(e.seq) : retireConnectionIdFrameSize(e.seq);
      if (end - off < size) break;
      off = server ? writeNewConnectionIdFrame(buf, off, e.seq, e.cid, e.token!) : writeRetireConnectionIdFrame(buf, off, e.seq);
      e.due = false;
      carried.push(e.seq);
    }
    return off;
  }

  /** The frames for these sequence numbers were acknowledged (client: those CIDs are gone for good). */
  onAcked(seqs: readonly number[]): void {
    if (this.role !== "client") return;
    for (const seq of seqs) {
      const i = this.entries.findIndex((e) => e.seq === seq && e.retiring);
      if (i >= 0) this.entries.splice(i, 1);
    }
  }

  /** The frames for these sequence numbers were lost: send them again if still relevant. */
  onLost(seqs: readonly number[]): void {
    for (const seq of seqs) for (const e of this.entries) if (e.seq === seq && (this.role === "server" || e.retiring)) e.due = true;
  }

  /** Client: true when the last 16 bytes of `buf` are the reset token of a CID we used (constant time per token). */
  matchesResetToken(buf: Uint8Array): boolean {
    if (this.role !== "client" || buf.length < RESET_TOKEN_LENGTH) return false;
    const at = buf.length - RESET_TOKEN_LENGTH;
    for (const e of this.entries) {
      const t = e.token;
      if (!e.used || t === null) continue;
      let diff = 0;
      for (let i = 0; i < RESET_TOKEN_LENGTH; i++) diff |= buf[at + i]! ^ t[i]!;
      if (diff === 0) return true;
    }
    return false;
  }

  private retiringCount(): number {
    let n = 0;
    for (const e of this.entries) if (e.retiring) n++;
    return n;
  }

  /** Client: used CIDs other than the current one, not yet retired (waiting for the new path to work). */
  private awaitingCount(): number {
    let n = 0;
    for (const e of this.entries) if (e.used && !e.retiring && e !== this.sending) n++;
    return n;
  }
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
