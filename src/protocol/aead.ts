/**
 * The AEAD interface every backend implements: ChaCha20-Poly1305, IETF variant (RFC 8439),
 * 32-byte key, 12-byte nonce, 16-byte tag appended to the ciphertext.
 */

export const AEAD_KEY_LENGTH = 32;
export const AEAD_NONCE_LENGTH = 12;
export const AEAD_TAG_LENGTH = 16;

/** Names of the shipped backends, fastest first as measured here (see docs/benchmarks.md). */
export type AeadBackendName = "sodium" | "node" | "noble";

/** A cipher bound to one key. Instances are reused for every packet under that key. */
export interface AeadKey {
  /**
   * Encrypts `plaintext` and writes ciphertext||tag into `out` at `outOffset`; returns the bytes written
   * (plaintext.length + 16). `out` must not overlap `plaintext`.
   */
  sealInto(out: Uint8Array, outOffset: number, nonce: Uint8Array, aad: Uint8Array, plaintext: Uint8Array): number;
  /**
   * Authenticates and decrypts ciphertext||tag. Returns the plaintext, or null when authentication fails
   * (never throws on bad input). The returned view may alias an internal scratch buffer that the next
   * `open` overwrites: copy what must outlive the call.
   */
  open(nonce: Uint8Array, aad: Uint8Array, sealed: Uint8Array): Uint8Array | null;
}

/** A ChaCha20-Poly1305 implementation. */
export interface AeadBackend {
  readonly name: AeadBackendName;
  /** Binds a 32-byte key. */
  createKey(key: Uint8Array): AeadKey;
}
