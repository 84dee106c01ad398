import type { AeadBackend } from "./aead.js";
import type { Role } from "./connection-types.js";
import { PacketCipher, splitExportedSecrets } from "./key-schedule.js";
import { MAX_DATAGRAM_SIZE } from "./version.js";

/**
 * Where a received packet is opened from: a copy in one buffer, so that the header (AAD) and the
 * sealed part are views made once and reused, instead of two new views of every datagram. Opening is
 * synchronous and the plaintext lands in the backend's own buffer, so all sessions share it.
 */
const rx = new Uint8Array(MAX_DATAGRAM_SIZE);
const aadViews: Uint8Array[] = [];
let sealedView = rx.subarray(0, 0);

/**
 * Packet protection for one session in both directions, and key updates (RFC 9001 §6). Generations
 * count key updates; the key phase bit on the wire is generation & 1. Sans-IO: times are passed in.
 */
export class PacketKeys {
  private sendCipher: PacketCipher;
  private sendGen = 0;
  /** First packet number sent under the current send key, or -1 before one is sent. */
  private sendGenFirstPn = -1;
  /** The peer acknowledged a packet under the current send key: another update may start. */
  private sendGenConfirmed = true;
  private packetsUnderKey = 0;
  private recvCipher: PacketCipher;
  /** The next generation's key, derived lazily and not before `nextKeysAt` (see `rotateRecv`). */
  private recvNext: PacketCipher | null;
  private nextKeysAt = 0;
  private recvPrev: PacketCipher | null = null;
  private recvPrevUntil = Infinity;
  private recvGen = 0;
  private recvGenFirstPn = 0;
  /** The last `open` used the next generation's key: `onAccepted` completes the peer's update. */
  private rotatePending = false;
  /** Key updates so far (ours and the peer's). */
  updates = 0;

  constructor(aead: AeadBackend, keyingMaterial: Uint8Array, role: Role) {
    const secrets = splitExportedSecrets(keyingMaterial);
    const mine = role === "client" ? secrets.clientToServer : secrets.serverToClient;
    const theirs = role === "client" ? secrets.serverToClient : secrets.clientToServer;
    this.sendCipher = new PacketCipher(aead, mine);
    this.recvCipher = new PacketCipher(aead, theirs);
    this.recvNext = this.recvCipher.next();
  }

  /** Key generation currently used for sending. */
  get sendGeneration(): number {
    return this.sendGen;
  }

  /** The key phase bit our packets carry. */
  get sendPhase(): 0 | 1 {
    return (this.sendGen & 1) as 0 | 1;
  }

  /**
   * Opens a packet with the key its phase bit and number select; null when it does not authenticate
   * (or its key cannot exist yet). Changes nothing the packet could not prove but the lazily derived
   * next key; call `onAccepted` once the packet is accepted.
   */
  open(pn: number, keyPhase: number, aad: Uint8Array, sealed: Uint8Array, now: number): Uint8Array | null {
    let cipher: PacketCipher | null;
    this.rotatePending = false;
    if (keyPhase === (this.recvGen & 1)) {
      cipher = this.recvCipher;
    } else if (this.recvPrev !== null && pn < this.recvGenFirstPn) {
      cipher = this.recvPrev;
    } else {
      if (this.recvNext === null && now >= this.nextKeysAt) this.recvNext = this.recvCipher.next();
      cipher = this.recvNext; // null: too soon after the last update, the packet cannot be opened
      this.rotatePending = true;
    }
    return cipher === null ? null : cipher.open(pn, aad, sealed);
  }

  /**
   * `open` for a whole datagram `buf` (at most MAX_DATAGRAM_SIZE bytes) whose header is its first
   * `headerLength` bytes, without allocating: see `rx`.
   */
  openPacket(pn: number, keyPhase: number, buf: Uint8Array, headerLength: number, now: number): Uint8Array | null {
    if (buf.length > rx.length || headerLength >= buf.length) return null;
    rx.set(buf);
    const aad = (aadViews[headerLength] ??= rx.subarray(0, headerLength));
    let sealed = sealedView;
    if (sealed.byteOffset !== headerLength || sealed.length !== buf.length - headerLength) sealed = sealedView = rx.subarray(headerLength, buf.length);
    return this.open(pn, keyPhase, aad, sealed, now);
  }

  /** The last `open` used the next generation's key: accepting that packet completes the peer's update. */
  get openedWithNext(): boolean {
    return this.rotatePending;
  }

  /** The packet the last `open` returned was accepted; `pto` is the current probe timeout. */
  onAccepted(pn: number, now: number, pto: number): void {
    if (this.rotatePending) this.rotateRecv(pn, now, pto);
  }

  private rotateRecv(pn: number, now: number, pto: number): void {
    this.recvPrev = this.recvCipher;
    this.recvPrevUntil = now + 3 * pto;
    this.recvCipher = this.recvNext!;
    // Deriving keys costs some 100 µs, 40 packets' worth: a peer flipping the key phase on every
    // packet must not make us derive on every packet. The next keys exist only one PTO from now
    // (RFC 9001 §6.5 allows this); an honest peer waits for our ACK of this update before the
    // next one (§6.1), and anything it sends earlier under newer keys is lost and sent again.
    this.recvNext = null;
    this.nextKeysAt = now + pto;
    this.recvGen++;
    this.recvGenFirstPn = pn;
    // The peer updated: follow with our own send key (RFC 9001 §6.2).
    if (this.sendGen < this.recvGen) this.rotateSend();
  }

  /** Whether we may start a key update: the last one is confirmed and the peer has followed it. */
  get canUpdate(): boolean {
    return this.sendGenConfirmed && this.sendGen === this.recvGen;
  }

  /** Switches the sending key to the next generation (check `canUpdate` first). */
  rotateSend(): void {
    this.sendCipher = this.sendCipher.next();
    this.sendGen++;
    this.sendGenFirstPn = -1;
    this.sendGenConfirmed = false;
    this.packetsUnderKey = 0;
    this.updates++;
  }

  /** Seals `plaintext` after the header already written at `out[0..headerLength)`. */
  seal(out: Uint8Array, headerLength: number, pn: number, plaintext: Uint8Array): void {
    this.sendCipher.seal(out, headerLength, pn, out.subarray(0, headerLength), plaintext);
  }

  /** A packet `pn` was sealed; true when `interval` packets went under this key (time to update). */
  onSent(pn: number, interval: number): boolean {
    if (this.sendGenFirstPn < 0) this.sendGenFirstPn = pn;
    return ++this.packetsUnderKey >= interval;
  }

  /** The peer acknowledged packet `pn`: one sent under the current key confirms the update. */
  onAcked(pn: number): void {
    if (!this.sendGenConfirmed && this.sendGenFirstPn >= 0 && pn >= this.sendGenFirstPn) this.sendGenConfirmed = true;
  }

  /** When the previous receive key is dropped (Infinity: there is none). */
  get discardAt(): number {
    return this.recvPrev ? this.recvPrevUntil : Infinity;
  }

  /** Drops the previous receive key once `discardAt` has passed: late packets under it are lost. */
  discardOld(now: number): void {
    if (this.recvPrev && now >= this.recvPrevUntil) {
      this.recvPrev = null;
      this.recvPrevUntil = Infinity;
    }
  }
}
