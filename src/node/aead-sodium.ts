/**
 * libsodium backend through the optional native addon sodium-native. Loaded lazily with createRequire so
 * that a missing or broken addon only makes this backend unavailable instead of failing the import.
 */
import { createRequire } from "node:module";
import { AEAD_KEY_LENGTH, AEAD_NONCE_LENGTH, AEAD_TAG_LENGTH, type AeadBackend, type AeadKey } from "../protocol/aead.js";
import { MAX_DATAGRAM_SIZE } from "../protocol/version.js";

/** The two sodium-native functions used here (the package ships no types). */
interface SodiumAead {
  crypto_aead_chacha20poly1305_ietf_encrypt(
    c: Uint8Array, m: Uint8Array, ad: Uint8Array | null, nsec: null, npub: Uint8Array, k: Uint8Array,
  ): number;
  crypto_aead_chacha20poly1305_ietf_decrypt(
    m: Uint8Array, nsec: null, c: Uint8Array, ad: Uint8Array | null, npub: Uint8Array, k: Uint8Array,
  ): number;
}

class SodiumKey implements AeadKey {
  private readonly key: Uint8Array;
  // Per-key decrypt target so a failed open allocates no plaintext buffer; grows only for oversize input.
  private scratch = new Uint8Array(MAX_DATAGRAM_SIZE);
  // The last view of `scratch` handed to sodium: packets of one flow repeat their length, and sodium
  // wants a view of exactly the plaintext's length, so the same view serves again without allocating.
  private view = this.scratch.subarray(0, 0);

  constructor(private readonly sodium: SodiumAead, key: Uint8Array) {
    if (key.length !== AEAD_KEY_LENGTH) throw new RangeError(`AEAD key must be ${AEAD_KEY_LENGTH} bytes, got ${key.length}`);
    this.key = key.slice();
  }

  sealInto(out: Uint8Array, outOffset: number, nonce: Uint8Array, aad: Uint8Array, plaintext: Uint8Array): number {
    const n = plaintext.length + AEAD_TAG_LENGTH;
    if (outOffset < 0 || outOffset + n > out.length) throw new RangeError("AEAD output buffer too small");
    return this.sodium.crypto_aead_chacha20poly1305_ietf_encrypt(
      out.subarray(outOffset, outOffset + n), plaintext, aad, null, nonce, this.key);
  }

  open(nonce: Uint8Array, aad: Uint8Array, sealed: Uint8Array): Uint8Array | null {
    if (sealed.length < AEAD_TAG_LENGTH || nonce.length !== AEAD_NONCE_LENGTH) return null;
    const n = sealed.length - AEAD_TAG_LENGTH;
    let out = this.view;
    if (out.length !== n) {
      if (n > this.scratch.length) this.scratch = new Uint8Array(n);
      out = this.view = this.scratch.subarray(0, n);
    }
    try {
      // sodium-native throws (rather than returning -1) when the tag does not verify.
      this.sodium.crypto_aead_chacha20poly1305_ietf_decrypt(out, null, sealed, aad, nonce, this.key);
      return out;
    } catch {
      return null;
    }
  }
}

let loaded: AeadBackend | null | undefined;
let failure: string | null = null;

/** The sodium-native backend, or null when the addon is not installed or does not load (result is cached). */
export function loadSodiumBackend(): AeadBackend | null {
  if (loaded !== undefined) return loaded;
  try {
    const sodium = createRequire(import.meta.url)("sodium-native") as SodiumAead;
    loaded = { name: "sodium", createKey: (key) => new SodiumKey(sodium, key) };
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    failure = code === "MODULE_NOT_FOUND"
      ? "sodium-native is not installed (it is an optional dependency)"
      : `sodium-native failed to load: ${(err as Error).message ?? String(err)}`;
    loaded = null;
  }
  return loaded;
}

/** Why loadSodiumBackend() returned null, for error messages; null while it is available or not yet tried. */
export function sodiumUnavailableReason(): string | null {
  return failure;
}
