/**
 * libsodium backend through the optional native addon sodium-native. Loaded lazily with createRequire so
 * that a missing or broken addon only makes this backend unavailable instead of failing the import.
 *
 * The per-packet path allocates nothing in JS once a flow's packet length repeats. sodium-native takes
 * whole typed arrays (no offset or length arguments) and asserts that the ciphertext is exactly the
 * plaintext length plus the tag, so a buffer region needs a view of exactly that length. Views of the
 * caller's `out` cannot be kept (it is usually a new buffer per packet), so sealInto seals into a view of a
 * per-key scratch buffer, cached by length, and copies the result into `out`: a memcpy of at most a
 * datagram costs about what allocating a view does (measured equal within noise), without the garbage.
 * The combined calls are used, not the `_detached` ones, which would need a view for the tag as well.
 */
import { createRequire } from "node:module";
import { silenceStacks } from "./silence-stacks.js";
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

const EMPTY = new Uint8Array(0);

class SodiumKey implements AeadKey {
  private readonly key: Uint8Array;
  // Decrypt target, separate from the seal scratch because open()'s result must survive a seal (a
  // receive handler may send before it is done with the payload). Both grow only for oversize input.
  private openScratch = EMPTY;
  // The last view of `openScratch` handed to sodium: packets of one flow repeat their length, and sodium
  // wants a view of exactly the plaintext's length, so the same view serves again without allocating.
  private openView = EMPTY;
  private sealScratch = EMPTY;
  private sealView = EMPTY;

  constructor(private readonly sodium: SodiumAead, key: Uint8Array) {
    if (key.length !== AEAD_KEY_LENGTH) throw new RangeError(`AEAD key must be ${AEAD_KEY_LENGTH} bytes, got ${key.length}`);
    this.key = key.slice();
  }

  sealInto(out: Uint8Array, outOffset: number, nonce: Uint8Array, aad: Uint8Array, plaintext: Uint8Array): number {
    const n = plaintext.length + AEAD_TAG_LENGTH;
    if (outOffset < 0 || outOffset + n > out.length) throw new RangeError("AEAD output buffer too small");
    let view = this.sealView;
    if (view.length !== n) {
      if (n > this.sealScratch.length) this.sealScratch = new Uint8Array(Math.max(n, MAX_DATAGRAM_SIZE));
      view = this.sealView = this.sealScratch.subarray(0, n);
    }
    this.sodium.crypto_aead_chacha20poly1305_ietf_encrypt(view, plaintext, aad, null, nonce, this.key);
    out.set(view, outOffset);
    return n;
  }

  open(nonce: Uint8Array, aad: Uint8Array, sealed: Uint8Array): Uint8Array | null {
    if (sealed.length < AEAD_TAG_LENGTH || nonce.length !== AEAD_NONCE_LENGTH) return null;
    const n = sealed.length - AEAD_TAG_LENGTH;
    let out = this.openView;
    if (out.length !== n) {
      if (n > this.openScratch.length) this.openScratch = new Uint8Array(Math.max(n, MAX_DATAGRAM_SIZE));
      out = this.openView = this.openScratch.subarray(0, n);
    }
    // libsodium verifies the tag before it decrypts, and on failure zeroes `out`: the previous result
    // (this same view) is then gone, as AeadKey.open allows.
    const limit = Error.stackTraceLimit;
    const silenced = silenceStacks();
    try {
      // sodium-native throws (rather than returning -1) when the tag does not verify.
      this.sodium.crypto_aead_chacha20poly1305_ietf_decrypt(out, null, sealed, aad, nonce, this.key);
      return out;
    } catch {
      return null;
    } finally {
      if (silenced) Error.stackTraceLimit = limit;
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
