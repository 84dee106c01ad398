import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import fc from "fast-check";
import { AEAD_TAG_LENGTH, type AeadBackend } from "../src/protocol/aead.js";
import { nobleBackend } from "../src/protocol/aead-noble.js";
import { FastnetError } from "../src/protocol/errors.js";
import { nodeCryptoAvailable, nodeCryptoBackend } from "../src/node/aead-node-crypto.js";
import { availableAeadBackends, selectAeadBackend } from "../src/node/aead-select.js";
import { loadSodiumBackend, sodiumUnavailableReason } from "../src/node/aead-sodium.js";

const hex = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s.replace(/\s+/g, ""), "hex"));
const bytes = (n: number): Uint8Array => Uint8Array.from(randomBytes(n));

function seal(backend: AeadBackend, key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, pt: Uint8Array): Uint8Array {
  const out = new Uint8Array(pt.length + AEAD_TAG_LENGTH);
  assert.equal(backend.createKey(key).sealInto(out, 0, nonce, aad, pt), out.length);
  return out;
}

/** Copies an open() result, which may alias a scratch buffer. */
const copy = (v: Uint8Array | null): Uint8Array | null => (v ? v.slice() : null);

const backends = availableAeadBackends();

// RFC 8439 §2.8.2.
const rfc282 = {
  key: hex("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f"),
  nonce: hex("07000000 4041424344454647"),
  aad: hex("50515253c0c1c2c3c4c5c6c7"),
  plaintext: new TextEncoder().encode(
    "Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it."),
  sealed: hex(`
    d31a8d34648e60db7b86afbc53ef7ec2 a4aded51296e08fea9e2b5a736ee62d6
    3dbea45e8ca9671282fafb69da92728b 1a71de0a9e060b2905d6a5b67ecd3b36
    92ddbd7f2d778b8c9803aee328091b58 fab324e4fad675945585808b4831d7bc
    3ff4def08e4b7a9de576d26586cec64b 6116
    1ae10b594f09e26a7e902ecbd0600691`),
};

// RFC 8439 Appendix A.5 (decryption); the plaintext ends with UTF-8 curly quotes exactly as in the RFC.
const rfcA5 = {
  key: hex("1c9240a5eb55d38af333888604f6b5f0 473917c1402b80099dca5cbc207075c0"),
  nonce: hex("000000000102030405060708"),
  aad: hex("f33388860000000000004e91"),
  plaintext: new TextEncoder().encode(
    "Internet-Drafts are draft documents valid for a maximum of six months and may be updated, replaced, " +
    "or obsoleted by other documents at any time. It is inappropriate to use Internet-Drafts as reference " +
    "material or to cite them other than as /\u201cwork in progress./\u201d"),
  sealed: hex(`
    64a0861575861af460f062c79be643bd 5e805cfd345cf389f108670ac76c8cb2
    4c6cfc18755d43eea09ee94e382d26b0 bdb7b73c321b0100d4f03b7f355894cf
    332f830e710b97ce98c8a84abd0b9481 14ad176e008d33bd60f982b1ff37c855
    9797a06ef4f0ef61c186324e2b350638 3606907b6a7c02b0f9f6157b53c867e4
    b9166c767b804d46a59b5216cde7a4e9 9040c5a40433225ee282a1b0a06c523e
    af4534d7f83fa1155b0047718cbc546a 0d072b04b3564eea1b422273f548271a
    0bb2316053fa76991955ebd63159434e cebb4e466dae5a1073a6727627097a10
    49e617d91d361094fa68f0ff77987130 305beaba2eda04df997b714d6c6f2c29
    a6ad5cb4022b02709b
    eead9d67890cbb22392336fea1851f38`),
};

describe("AEAD backends", () => {
  it("offers noble and node:crypto here, noble last", () => {
    const names = backends.map((b) => b.name);
    assert.ok(nodeCryptoAvailable());
    assert.ok(names.includes("node"));
    assert.equal(names.at(-1), "noble");
    const order = ["sodium", "node", "noble"];
    assert.deepEqual([...names].sort((a, b) => order.indexOf(a) - order.indexOf(b)), names);
  });

  it("reports sodium-native either loaded or with a reason", () => {
    const sodium = loadSodiumBackend();
    if (sodium) {
      assert.equal(sodium.name, "sodium");
      assert.equal(backends[0], sodium);
      assert.equal(sodiumUnavailableReason(), null);
    } else {
      assert.match(sodiumUnavailableReason() ?? "", /sodium-native/);
    }
  });

  for (const backend of backends) {
    describe(backend.name, () => {
      it("matches the RFC 8439 §2.8.2 test vector", () => {
        const { key, nonce, aad, plaintext, sealed } = rfc282;
        assert.equal(plaintext.length, 114);
        assert.deepEqual(seal(backend, key, nonce, aad, plaintext), sealed);
        assert.deepEqual(copy(backend.createKey(key).open(nonce, aad, sealed)), plaintext);
      });

      it("matches the RFC 8439 Appendix A.5 decryption vector", () => {
        const { key, nonce, aad, plaintext, sealed } = rfcA5;
        assert.equal(sealed.length, 265 + AEAD_TAG_LENGTH);
        assert.deepEqual(copy(backend.createKey(key).open(nonce, aad, sealed)), plaintext);
        assert.deepEqual(seal(backend, key, nonce, aad, plaintext), sealed);
      });

      it("returns null for a tampered ciphertext, tag, aad or nonce", () => {
        const key = bytes(32), nonce = bytes(12), aad = bytes(13), pt = bytes(100);
        const sealed = seal(backend, key, nonce, aad, pt);
        const k = backend.createKey(key);
        assert.deepEqual(copy(k.open(nonce, aad, sealed)), pt);
        for (const i of [0, 50, 99, 100, 115]) { // ciphertext bytes, then tag bytes
          const bad = sealed.slice();
          bad[i]! ^= 0x01;
          assert.equal(k.open(nonce, aad, bad), null, `flipped byte ${i}`);
        }
        const badAad = aad.slice(); badAad[0]! ^= 0x80;
        assert.equal(k.open(nonce, badAad, sealed), null);
        assert.equal(k.open(nonce, aad.subarray(1), sealed), null);
        const badNonce = nonce.slice(); badNonce[11]! ^= 0x01;
        assert.equal(k.open(badNonce, aad, sealed), null);
        // A failure must not break the key for the next genuine packet.
        assert.deepEqual(copy(k.open(nonce, aad, sealed)), pt);
      });

      it("returns null, without throwing, for input shorter than the tag or a malformed nonce", () => {
        const k = backend.createKey(bytes(32));
        for (let n = 0; n < AEAD_TAG_LENGTH; n++) assert.equal(k.open(bytes(12), new Uint8Array(0), bytes(n)), null);
        assert.equal(k.open(bytes(11), new Uint8Array(0), bytes(40)), null);
      });

      it("returns null under the wrong key", () => {
        const nonce = bytes(12), aad = bytes(8), pt = bytes(64);
        const sealed = seal(backend, bytes(32), nonce, aad, pt);
        assert.equal(backend.createKey(bytes(32)).open(nonce, aad, sealed), null);
      });

      it("seals at a non-zero offset without touching the surrounding bytes", () => {
        const key = bytes(32), nonce = bytes(12), aad = bytes(5), pt = bytes(77);
        const out = new Uint8Array(200).fill(0xaa);
        const n = backend.createKey(key).sealInto(out, 41, nonce, aad, pt);
        assert.equal(n, 77 + AEAD_TAG_LENGTH);
        assert.deepEqual(out.subarray(41, 41 + n), seal(backend, key, nonce, aad, pt));
        assert.ok(out.subarray(0, 41).every((b) => b === 0xaa));
        assert.ok(out.subarray(41 + n).every((b) => b === 0xaa));
        assert.deepEqual(copy(backend.createKey(key).open(nonce, aad, out.subarray(41, 41 + n))), pt);
      });

      it("rejects a bad key length and an output buffer that is too small", () => {
        assert.throws(() => backend.createKey(bytes(31)), RangeError);
        const k = backend.createKey(bytes(32));
        assert.throws(() => k.sealInto(new Uint8Array(20), 0, bytes(12), new Uint8Array(0), bytes(5)), RangeError);
        assert.throws(() => k.sealInto(new Uint8Array(40), 20, bytes(12), new Uint8Array(0), bytes(5)), RangeError);
      });

      it("keeps the key private and opens inputs larger than a datagram", () => {
        const key = bytes(32), nonce = bytes(12), aad = bytes(3), pt = bytes(5000);
        const sealed = seal(backend, key, nonce, aad, pt);
        const k = backend.createKey(key);
        key.fill(0); // must not affect the bound key
        assert.deepEqual(copy(k.open(nonce, aad, sealed)), pt);
        const small = bytes(10);
        const sealedSmall = new Uint8Array(26);
        k.sealInto(sealedSmall, 0, nonce, aad, small);
        assert.deepEqual(copy(k.open(nonce, aad, sealedSmall)), small);
      });

      it("opens a run of packets of repeated and changing lengths with one key, a forgery among them", () => {
        // The sodium backend reuses its plaintext view while the length repeats: every open must still
        // return exactly that packet's plaintext, of its own length.
        const key = bytes(32), nonce = bytes(12), aad = bytes(5);
        const k = backend.createKey(key);
        for (const size of [32, 32, 0, 32, 1184, 1184, 7, 32, 32]) {
          const pt = bytes(size);
          const sealed = seal(backend, key, nonce, aad, pt);
          assert.deepEqual(copy(k.open(nonce, aad, sealed)), pt, `size ${size}`);
          sealed[0]! ^= 1;
          assert.equal(k.open(nonce, aad, sealed), null, `forged size ${size}`);
        }
      });
    });
  }

  it("agrees across backends: each seals identically and opens what the others sealed", () => {
    for (const size of [0, 1, 64, 1000, 1184]) {
      const key = bytes(32), nonce = bytes(12), aad = bytes(size % 20), pt = bytes(size);
      const sealedBy = backends.map((b) => seal(b, key, nonce, aad, pt));
      for (const s of sealedBy) assert.deepEqual(s, sealedBy[0], `size ${size}`);
      for (const opener of backends) {
        for (const s of sealedBy) assert.deepEqual(copy(opener.createKey(key).open(nonce, aad, s)), pt, `${opener.name} size ${size}`);
      }
    }
  });

  it("property: random inputs seal byte-identically on every backend and open on every other", () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.uint8Array({ minLength: 12, maxLength: 12 }),
        fc.uint8Array({ maxLength: 64 }),
        fc.uint8Array({ maxLength: 1184 }),
        (key, nonce, aad, pt) => {
          const sealedBy = backends.map((b) => seal(b, key, nonce, aad, pt));
          for (const s of sealedBy) assert.deepEqual(s, sealedBy[0]);
          for (const opener of backends) {
            const k = opener.createKey(key);
            for (const s of sealedBy) assert.deepEqual(copy(k.open(nonce, aad, s)), pt);
          }
        },
      ),
      { numRuns: 200 },
    );
  });
});

describe("selectAeadBackend", () => {
  it("auto picks the fastest available backend", () => {
    assert.equal(selectAeadBackend("auto"), backends[0]);
    assert.equal(selectAeadBackend("auto", [nodeCryptoBackend, nobleBackend]), nodeCryptoBackend);
  });

  it("returns a forced backend that is available", () => {
    for (const b of backends) assert.equal(selectAeadBackend(b.name).name, b.name);
    assert.equal(selectAeadBackend("noble"), nobleBackend);
  });

  it("throws BACKEND_UNAVAILABLE naming the backend and the reason", () => {
    const only = [nobleBackend];
    const check = (pref: Parameters<typeof selectAeadBackend>[0], list: AeadBackend[], pattern: RegExp) =>
      assert.throws(() => selectAeadBackend(pref, list), (err: unknown) => {
        assert.ok(err instanceof FastnetError);
        assert.equal(err.code, "BACKEND_UNAVAILABLE");
        assert.match(err.message, pattern);
        return true;
      });
    check("sodium", only, /"sodium".*sodium-native/);
    check("node", only, /"node".*chacha20-poly1305/);
    check("noble", [nodeCryptoBackend], /"noble"/);
    check("auto", [], /no AEAD backend/);
    check("openssl" as never, backends, /"openssl".*no such backend/);
  });
});
