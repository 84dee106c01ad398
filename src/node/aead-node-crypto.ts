/**
 * Backend on Node's built-in OpenSSL (`node:crypto`). Always present in official Node builds; it allocates
 * a cipher object per packet, which is what makes it slower than sodium-native for small payloads.
 */
import { createCipheriv, createDecipheriv, createSecretKey, getCiphers, type KeyObject } from "node:crypto";
import { AEAD_KEY_LENGTH, AEAD_NONCE_LENGTH, AEAD_TAG_LENGTH, type AeadBackend, type AeadKey } from "../protocol/aead.js";

const ALGORITHM = "chacha20-poly1305";
const OPTIONS = { authTagLength: AEAD_TAG_LENGTH } as const;

class NodeCryptoKey implements AeadKey {
  // A KeyObject copies the key once, instead of on every createCipheriv call.
  private readonly key: KeyObject;

  constructor(key: Uint8Array) {
    if (key.length !== AEAD_KEY_LENGTH) throw new RangeError(`AEAD key must be ${AEAD_KEY_LENGTH} bytes, got ${key.length}`);
    this.key = createSecretKey(key);
  }

  sealInto(out: Uint8Array, outOffset: number, nonce: Uint8Array, aad: Uint8Array, plaintext: Uint8Array): number {
    const n = plaintext.length + AEAD_TAG_LENGTH;
    if (outOffset < 0 || outOffset + n > out.length) throw new RangeError("AEAD output buffer too small");
    const cipher = createCipheriv(ALGORITHM, this.key, nonce, OPTIONS);
    cipher.setAAD(aad, { plaintextLength: plaintext.length });
    const ct = cipher.update(plaintext);
    cipher.final(); // a stream cipher emits nothing here, but final() computes the tag
    out.set(ct, outOffset);
    out.set(cipher.getAuthTag(), outOffset + plaintext.length);
    return n;
  }

  open(nonce: Uint8Array, aad: Uint8Array, sealed: Uint8Array): Uint8Array | null {
    if (sealed.length < AEAD_TAG_LENGTH || nonce.length !== AEAD_NONCE_LENGTH) return null;
    const n = sealed.length - AEAD_TAG_LENGTH;
    try {
      const decipher = createDecipheriv(ALGORITHM, this.key, nonce, OPTIONS);
      decipher.setAAD(aad, { plaintextLength: n });
      decipher.setAuthTag(sealed.subarray(n));
      const pt = decipher.update(sealed.subarray(0, n));
      // final() throws when the tag does not verify; until then `pt` is unauthenticated and must not escape.
      decipher.final();
      return new Uint8Array(pt.buffer, pt.byteOffset, pt.length);
    } catch {
      return null;
    }
  }
}

/** ChaCha20-Poly1305 from node:crypto (OpenSSL). */
export const nodeCryptoBackend: AeadBackend = {
  name: "node",
  createKey: (key) => new NodeCryptoKey(key),
};

/** True when this Node's OpenSSL offers chacha20-poly1305 (FIPS-only builds may not). */
export function nodeCryptoAvailable(): boolean {
  return getCiphers().includes(ALGORITHM);
}
