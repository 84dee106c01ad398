/**
 * Portable ChaCha20-Poly1305 backend on @noble/ciphers (pure JS, audited). The slowest backend, but it runs
 * anywhere, so the protocol core depends only on it; this file must stay free of `node:*` imports.
 *
 * The AEAD construction of RFC 8439 §2.8 is composed here from noble's two primitives, `chacha20` (a
 * keystream XOR with an output buffer and an initial block counter) and `poly1305`, instead of building a
 * `chacha20poly1305(key, nonce)` cipher object per packet. Each noble `chacha20` call has a fixed cost
 * (it copies the key and allocates its block buffers) that dominates small packets, so one call covers
 * both uses of the keystream: a per-key input buffer holds 64 zero bytes followed by the payload, and the
 * call, starting at block counter 0, yields the Poly1305 one-time key (the first 32 bytes of block 0,
 * §2.6) and the payload XORed with blocks 1.. (§2.8). noble's Poly1305 cannot be re-keyed, and the
 * one-time key changes with every nonce, so one MAC state per packet is left inside noble.
 */
import { chacha20 } from "@noble/ciphers/chacha.js";
import { poly1305 } from "@noble/ciphers/_poly1305.js";
import { AEAD_KEY_LENGTH, AEAD_NONCE_LENGTH, AEAD_TAG_LENGTH, type AeadBackend, type AeadKey } from "./aead.js";
import { MAX_DATAGRAM_SIZE } from "./version.js";

/** One ChaCha20 block: block 0 of each nonce is spent on the Poly1305 key. */
const BLOCK = 64;
const POLY_KEY_LENGTH = 32;
/** pad16 (RFC 8439 §2.8) for each remainder: PADS[r] is the zero padding after r bytes of a 16-byte block. */
const ZEROS = new Uint8Array(16);
const PADS: Uint8Array[] = Array.from({ length: 16 }, (_, r) => ZEROS.subarray(0, (16 - r) & 15));

/**
 * The buffers of one direction (seal or open): `input` is 64 zero bytes then the payload (and, when
 * opening, the received tag after it), `output` gets block 0's keystream then the XORed payload. The
 * views of exactly 64 + n and n bytes that noble needs are cached for the last length n, since a flow's
 * packets repeat their length.
 */
class Workspace {
  private input: Uint8Array;
  private output: Uint8Array;
  /** input[0, 64 + n) and output[0, 64 + n): what chacha20 reads and writes. */
  inputAll: Uint8Array;
  outputAll: Uint8Array;
  /** input[64, 64 + n) and output[64, 64 + n): the payload before and after the XOR. */
  inputData: Uint8Array;
  outputData: Uint8Array;
  /** output[0, 32): the Poly1305 one-time key after the call. */
  polyKey: Uint8Array;
  /** The tag, computed or (open) received. */
  readonly tag = new Uint8Array(AEAD_TAG_LENGTH);
  /** len(AAD) || len(ciphertext), each a 64-bit little-endian integer (RFC 8439 §2.8). */
  readonly lengths = new Uint8Array(16);

  constructor(capacity: number) {
    this.input = new Uint8Array(BLOCK + capacity + AEAD_TAG_LENGTH);
    this.output = new Uint8Array(BLOCK + capacity);
    this.inputAll = this.input.subarray(0, BLOCK);
    this.outputAll = this.output.subarray(0, BLOCK);
    this.inputData = this.input.subarray(BLOCK, BLOCK);
    this.outputData = this.output.subarray(BLOCK, BLOCK);
    this.polyKey = this.output.subarray(0, POLY_KEY_LENGTH);
  }

  /** Sizes the views for an n-byte payload; returns the input buffer (room for a tag after the payload). */
  fit(n: number): Uint8Array {
    if (this.inputData.length !== n) {
      if (BLOCK + n > this.output.length) {
        this.input = new Uint8Array(BLOCK + n + AEAD_TAG_LENGTH);
        this.output = new Uint8Array(BLOCK + n);
        this.polyKey = this.output.subarray(0, POLY_KEY_LENGTH);
      }
      this.inputAll = this.input.subarray(0, BLOCK + n);
      this.outputAll = this.output.subarray(0, BLOCK + n);
      this.inputData = this.input.subarray(BLOCK, BLOCK + n);
      this.outputData = this.output.subarray(BLOCK, BLOCK + n);
    }
    return this.input;
  }

  /** One keystream pass from block counter 0: fills polyKey and outputData (input[0, 64) stays zero). */
  run(key: Uint8Array, nonce: Uint8Array): void {
    chacha20(key, nonce, this.inputAll, this.outputAll, 0);
  }

  /** Poly1305 over AAD || pad16 || ciphertext || pad16 || lengths into `tag`, keyed by polyKey. */
  mac(aad: Uint8Array, ciphertext: Uint8Array, tag: Uint8Array): void {
    const a = aad.length, c = ciphertext.length;
    const lengths = this.lengths;
    // Both lengths are below 2^32 (a typed array this size could not exist otherwise): bytes 4-7 stay 0.
    lengths[0] = a; lengths[1] = a >>> 8; lengths[2] = a >>> 16; lengths[3] = a >>> 24;
    lengths[8] = c; lengths[9] = c >>> 8; lengths[10] = c >>> 16; lengths[11] = c >>> 24;
    const h = poly1305.create(this.polyKey);
    h.update(aad);
    if (a & 15) h.update(PADS[a & 15]!);
    h.update(ciphertext);
    if (c & 15) h.update(PADS[c & 15]!);
    h.update(lengths);
    h.digestInto(tag);
  }
}

/** Constant-time equality of two 16-byte tags: the time does not depend on where they differ. */
function tagsEqual(a: Uint8Array, b: Uint8Array, bOffset: number): boolean {
  let diff = 0;
  for (let i = 0; i < AEAD_TAG_LENGTH; i++) diff |= a[i]! ^ b[bOffset + i]!;
  return diff === 0;
}

class NobleKey implements AeadKey {
  // noble reads the key by reference: a private copy makes later caller mutation harmless.
  private readonly key: Uint8Array;
  // Separate workspaces, created on first use: open()'s result is a view of its workspace and must
  // survive a seal (a receive handler may send before it is done with the payload).
  private sealSpace: Workspace | null = null;
  private openSpace: Workspace | null = null;

  constructor(key: Uint8Array) {
    if (key.length !== AEAD_KEY_LENGTH) throw new RangeError(`AEAD key must be ${AEAD_KEY_LENGTH} bytes, got ${key.length}`);
    this.key = key.slice();
  }

  sealInto(out: Uint8Array, outOffset: number, nonce: Uint8Array, aad: Uint8Array, plaintext: Uint8Array): number {
    const n = plaintext.length;
    if (outOffset < 0 || outOffset + n + AEAD_TAG_LENGTH > out.length) throw new RangeError("AEAD output buffer too small");
    if (nonce.length !== AEAD_NONCE_LENGTH) throw new RangeError(`AEAD nonce must be ${AEAD_NONCE_LENGTH} bytes, got ${nonce.length}`);
    const w = this.sealSpace ??= new Workspace(MAX_DATAGRAM_SIZE);
    w.fit(n).set(plaintext, BLOCK);
    w.run(this.key, nonce);
    w.mac(aad, w.outputData, w.tag);
    out.set(w.outputData, outOffset);
    out.set(w.tag, outOffset + n);
    return n + AEAD_TAG_LENGTH;
  }

  open(nonce: Uint8Array, aad: Uint8Array, sealed: Uint8Array): Uint8Array | null {
    if (sealed.length < AEAD_TAG_LENGTH || nonce.length !== AEAD_NONCE_LENGTH) return null;
    const n = sealed.length - AEAD_TAG_LENGTH;
    const w = this.openSpace ??= new Workspace(MAX_DATAGRAM_SIZE);
    // The ciphertext and the received tag both land in the input buffer; the tag sits past inputAll.
    const input = w.fit(n);
    input.set(sealed, BLOCK);
    // Decrypting with the same pass that yields the one-time key is one noble call instead of two; the
    // plaintext stays in the workspace and is handed out only once the tag has verified.
    w.run(this.key, nonce);
    w.mac(aad, w.inputData, w.tag);
    if (!tagsEqual(w.tag, input, BLOCK + n)) {
      w.outputData.fill(0); // no unauthenticated plaintext left behind
      return null;
    }
    return w.outputData;
  }
}

/** ChaCha20-Poly1305 on @noble/ciphers: always available, no native code. */
export const nobleBackend: AeadBackend = {
  name: "noble",
  createKey: (key) => new NobleKey(key),
};
