/**
 * Portable ChaCha20-Poly1305 backend on @noble/ciphers (pure JS, audited). The slowest backend, but it runs
 * anywhere, so the protocol core depends only on it; this file must stay free of `node:*` imports.
 */
import { chacha20poly1305 } from "@noble/ciphers/chacha.js";
import { AEAD_KEY_LENGTH, AEAD_NONCE_LENGTH, AEAD_TAG_LENGTH, type AeadBackend, type AeadKey } from "./aead.js";
import { MAX_DATAGRAM_SIZE } from "./version.js";

class NobleKey implements AeadKey {
  // noble keeps the key by reference: a private copy makes later caller mutation harmless.
  private readonly key: Uint8Array;
  // Decrypt target reused across calls (see AeadKey.open): a datagram never exceeds MAX_DATAGRAM_SIZE.
  private scratch = new Uint8Array(MAX_DATAGRAM_SIZE);

  constructor(key: Uint8Array) {
    if (key.length !== AEAD_KEY_LENGTH) throw new RangeError(`AEAD key must be ${AEAD_KEY_LENGTH} bytes, got ${key.length}`);
    this.key = key.slice();
  }

  sealInto(out: Uint8Array, outOffset: number, nonce: Uint8Array, aad: Uint8Array, plaintext: Uint8Array): number {
    const n = plaintext.length + AEAD_TAG_LENGTH;
    if (outOffset < 0 || outOffset + n > out.length) throw new RangeError("AEAD output buffer too small");
    // A noble cipher instance refuses a second encrypt, so one is built per packet (cheap: no key schedule).
    chacha20poly1305(this.key, nonce, aad).encrypt(plaintext, out.subarray(outOffset, outOffset + n));
    return n;
  }

  open(nonce: Uint8Array, aad: Uint8Array, sealed: Uint8Array): Uint8Array | null {
    if (sealed.length < AEAD_TAG_LENGTH || nonce.length !== AEAD_NONCE_LENGTH) return null;
    const n = sealed.length - AEAD_TAG_LENGTH;
    if (n > this.scratch.length) this.scratch = new Uint8Array(n);
    const out = this.scratch.subarray(0, n);
    try {
      // noble verifies the tag before decrypting, so `out` is untouched when this throws.
      chacha20poly1305(this.key, nonce, aad).decrypt(sealed, out);
      return out;
    } catch {
      return null;
    }
  }
}

/** ChaCha20-Poly1305 from @noble/ciphers: always available, no native code. */
export const nobleBackend: AeadBackend = {
  name: "noble",
  createKey: (key) => new NobleKey(key),
};
