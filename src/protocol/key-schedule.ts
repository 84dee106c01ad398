/**
 * Packet protection keys from the TLS exporter secret, following QUIC's pattern (RFC 9001 §5.1, §6.1)
 * with a "fastnet " label prefix so no key here can coincide with a TLS or QUIC key. Pure: no node:* imports.
 */
import { expand } from "@noble/hashes/hkdf.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { AEAD_KEY_LENGTH, AEAD_NONCE_LENGTH, type AeadBackend, type AeadKey } from "./aead.js";
import { EXPORTER_LENGTH } from "./version.js";

const LABEL_PREFIX = "fastnet ";
const SECRET_LENGTH = 32; // SHA-256 output, the size of every traffic secret
const encoder = new TextEncoder();

/** Splits the 64 exported bytes into per-direction secrets: first half client→server, second server→client. */
export function splitExportedSecrets(exported: Uint8Array): { clientToServer: Uint8Array; serverToClient: Uint8Array } {
  if (exported.length !== EXPORTER_LENGTH) {
    throw new RangeError(`exported keying material must be ${EXPORTER_LENGTH} bytes, got ${exported.length}`);
  }
  // Copies, so the secrets do not alias (or keep alive) the caller's buffer.
  return { clientToServer: exported.slice(0, SECRET_LENGTH), serverToClient: exported.slice(SECRET_LENGTH) };
}

/**
 * HKDF-Expand-Label (RFC 8446 §7.1) with SHA-256 and an empty context:
 * info = uint16 length || uint8 len || "fastnet " + label || uint8 0.
 */
export function hkdfExpandLabel(secret: Uint8Array, label: string, length: number): Uint8Array {
  const fullLabel = encoder.encode(LABEL_PREFIX + label);
  // The HkdfLabel vector bounds: opaque label<7..255>; length is a uint16 (HKDF itself caps it at 255*32).
  if (fullLabel.length > 255) throw new RangeError(`HKDF label too long: ${fullLabel.length} bytes`);
  if (!Number.isInteger(length) || length < 0 || length > 255 * SECRET_LENGTH) {
    throw new RangeError(`HKDF output length out of range: ${length}`);
  }
  const info = new Uint8Array(2 + 1 + fullLabel.length + 1);
  info[0] = length >>> 8;
  info[1] = length & 0xff;
  info[2] = fullLabel.length;
  info.set(fullLabel, 3);
  info[info.length - 1] = 0; // empty context
  return expand(sha256, secret, info, length);
}

/** AEAD key and IV for one direction's traffic secret (labels "key" and "iv"). */
export function derivePacketProtection(secret: Uint8Array): { key: Uint8Array; iv: Uint8Array } {
  return { key: hkdfExpandLabel(secret, "key", AEAD_KEY_LENGTH), iv: hkdfExpandLabel(secret, "iv", AEAD_NONCE_LENGTH) };
}

/** The next traffic secret of a key update (label "ku"); the old one cannot be recovered from it. */
export function nextSecret(secret: Uint8Array): Uint8Array {
  return hkdfExpandLabel(secret, "ku", SECRET_LENGTH);
}

const TWO_POW_32 = 0x1_0000_0000;

/** One direction's packet protection at one key phase: the AEAD key plus the per-packet nonce derivation. */
export class PacketCipher {
  /** The traffic secret this cipher was derived from. */
  readonly secret: Uint8Array;
  readonly key: AeadKey;
  readonly iv: Uint8Array;
  // Reused by nonce(): sealing and opening are synchronous, so one buffer per cipher suffices.
  private readonly nonceBuf = new Uint8Array(AEAD_NONCE_LENGTH);

  constructor(readonly backend: AeadBackend, secret: Uint8Array) {
    if (secret.length !== SECRET_LENGTH) throw new RangeError(`traffic secret must be ${SECRET_LENGTH} bytes, got ${secret.length}`);
    this.secret = secret.slice();
    const { key, iv } = derivePacketProtection(this.secret);
    this.key = backend.createKey(key);
    this.iv = iv;
  }

  /**
   * The nonce for packet number `pn` (RFC 9001 §5.3): iv XOR pn as a 64-bit big-endian integer in the last
   * 8 bytes. Returns an internal buffer that the next call overwrites.
   */
  nonce(pn: number): Uint8Array {
    if (!Number.isSafeInteger(pn) || pn < 0) throw new RangeError(`packet number out of range: ${pn}`);
    const n = this.nonceBuf;
    n.set(this.iv);
    // Bitwise operators truncate to 32 bits, so the high word is split off arithmetically.
    const hi = Math.floor(pn / TWO_POW_32);
    const lo = pn >>> 0;
    n[4] ^= hi >>> 24; n[5] ^= (hi >>> 16) & 0xff; n[6] ^= (hi >>> 8) & 0xff; n[7] ^= hi & 0xff;
    n[8] ^= lo >>> 24; n[9] ^= (lo >>> 16) & 0xff; n[10] ^= (lo >>> 8) & 0xff; n[11] ^= lo & 0xff;
    return n;
  }

  /** Seals `plaintext` for packet `pn` into `out` at `outOffset`; returns the bytes written (length + 16). */
  seal(out: Uint8Array, outOffset: number, pn: number, aad: Uint8Array, plaintext: Uint8Array): number {
    return this.key.sealInto(out, outOffset, this.nonce(pn), aad, plaintext);
  }

  /** Opens packet `pn`; null when it does not authenticate (or `pn` is not a valid packet number). */
  open(pn: number, aad: Uint8Array, sealed: Uint8Array): Uint8Array | null {
    if (!Number.isSafeInteger(pn) || pn < 0) return null;
    return this.key.open(this.nonce(pn), aad, sealed);
  }

  /** The cipher of the next key phase (same backend), from nextSecret(secret). */
  next(): PacketCipher {
    return new PacketCipher(this.backend, nextSecret(this.secret));
  }
}
