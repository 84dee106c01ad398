import assert from "node:assert/strict";
import { createHmac, randomBytes } from "node:crypto";
import fc from "fast-check";
import { AEAD_TAG_LENGTH } from "../src/protocol/aead.js";
import { nobleBackend } from "../src/protocol/aead-noble.js";
import { availableAeadBackends } from "../src/node/aead-select.js";
import {
  derivePacketProtection, hkdfExpandLabel, nextSecret, PacketCipher, splitExportedSecrets,
} from "../src/protocol/key-schedule.js";

const bytes = (n: number): Uint8Array => Uint8Array.from(randomBytes(n));

/** RFC 5869 HKDF-Expand written out with HMAC-SHA256, independent of @noble/hashes. */
function referenceExpandLabel(secret: Uint8Array, label: string, length: number): Uint8Array {
  const fullLabel = Buffer.from("fastnet " + label, "ascii");
  const info = Buffer.concat([Buffer.from([length >> 8, length & 0xff, fullLabel.length]), fullLabel, Buffer.from([0])]);
  const blocks: Buffer[] = [];
  let t = Buffer.alloc(0);
  for (let i = 1; blocks.length * 32 < length; i++) {
    t = createHmac("sha256", secret).update(t).update(info).update(Buffer.from([i])).digest();
    blocks.push(t);
  }
  return Uint8Array.from(Buffer.concat(blocks).subarray(0, length));
}

/** iv XOR pn as a big-endian uint64 in the last 8 bytes, computed with BigInt. */
function referenceNonce(iv: Uint8Array, pn: number): Uint8Array {
  const pnBytes = new Uint8Array(12);
  new DataView(pnBytes.buffer).setBigUint64(4, BigInt(pn));
  return iv.map((b, i) => b ^ pnBytes[i]!);
}

describe("key schedule", () => {
  it("splits the 64 exported bytes: first half client→server, and rejects other lengths", () => {
    const exported = bytes(64);
    const original = exported.slice();
    const { clientToServer, serverToClient } = splitExportedSecrets(exported);
    assert.deepEqual(clientToServer, exported.subarray(0, 32));
    assert.deepEqual(serverToClient, exported.subarray(32));
    exported.fill(0); // the secrets are copies, unaffected by reuse of the caller's buffer
    assert.deepEqual(clientToServer, original.subarray(0, 32));
    assert.deepEqual(serverToClient, original.subarray(32));
    assert.throws(() => splitExportedSecrets(bytes(63)), RangeError);
    assert.throws(() => splitExportedSecrets(bytes(65)), RangeError);
  });

  it("hkdfExpandLabel matches an independent HMAC-SHA256 HKDF-Expand", () => {
    const secret = bytes(32);
    for (const [label, length] of [["key", 32], ["iv", 12], ["ku", 32], ["multi block", 100], ["x", 1]] as const) {
      assert.deepEqual(hkdfExpandLabel(secret, label, length), referenceExpandLabel(secret, label, length), label);
    }
    // The label and the requested length are both bound into the output.
    assert.notDeepEqual(hkdfExpandLabel(secret, "key", 32).subarray(0, 12), hkdfExpandLabel(secret, "iv", 12));
    assert.notDeepEqual(hkdfExpandLabel(secret, "key", 32).subarray(0, 16), hkdfExpandLabel(secret, "key", 16));
  });

  it("hkdfExpandLabel rejects labels over 255 bytes and impossible lengths", () => {
    const secret = bytes(32);
    assert.equal(hkdfExpandLabel(secret, "a".repeat(247), 32).length, 32); // "fastnet " + 247 = 255
    assert.throws(() => hkdfExpandLabel(secret, "a".repeat(248), 32), RangeError);
    assert.throws(() => hkdfExpandLabel(secret, "key", 255 * 32 + 1), RangeError);
    assert.throws(() => hkdfExpandLabel(secret, "key", -1), RangeError);
  });

  it("derives a 32-byte key and 12-byte iv, different per direction", () => {
    const { clientToServer, serverToClient } = splitExportedSecrets(bytes(64));
    const c2s = derivePacketProtection(clientToServer);
    const s2c = derivePacketProtection(serverToClient);
    assert.equal(c2s.key.length, 32);
    assert.equal(c2s.iv.length, 12);
    assert.deepEqual(c2s.key, referenceExpandLabel(clientToServer, "key", 32));
    assert.deepEqual(c2s.iv, referenceExpandLabel(clientToServer, "iv", 12));
    assert.notDeepEqual(c2s.key, s2c.key);
    assert.notDeepEqual(c2s.iv, s2c.iv);
  });

  it("nextSecret is the \"ku\" label and differs from its input", () => {
    const secret = bytes(32);
    assert.deepEqual(nextSecret(secret), referenceExpandLabel(secret, "ku", 32));
    assert.notDeepEqual(nextSecret(secret), secret);
  });
});

describe("PacketCipher", () => {
  it("builds the nonce as iv XOR the 64-bit big-endian packet number", () => {
    const c = new PacketCipher(nobleBackend, bytes(32));
    assert.deepEqual(c.nonce(0), c.iv);
    for (const pn of [0, 1, 2 ** 32 + 5, 2 ** 53 - 1]) assert.deepEqual(c.nonce(pn), referenceNonce(c.iv, pn), `pn ${pn}`);
    const n1 = c.nonce(1);
    assert.deepEqual(n1.subarray(0, 11), c.iv.subarray(0, 11));
    assert.equal(n1[11], c.iv[11]! ^ 1);
    const big = c.nonce(2 ** 32 + 5);
    assert.equal(big[7], c.iv[7]! ^ 1);
    assert.equal(big[11], c.iv[11]! ^ 5);
    assert.equal(c.nonce(0), c.nonce(1), "the nonce buffer is reused");
  });

  it("property: nonce matches the BigInt reference for every safe packet number", () => {
    const c = new PacketCipher(nobleBackend, bytes(32));
    fc.assert(fc.property(fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }), (pn) => {
      assert.deepEqual(c.nonce(pn), referenceNonce(c.iv, pn));
    }), { numRuns: 500 });
  });

  it("rejects packet numbers that are negative, fractional or beyond 2^53-1", () => {
    const c = new PacketCipher(nobleBackend, bytes(32));
    for (const pn of [-1, 1.5, 2 ** 53, Number.NaN]) {
      assert.throws(() => c.nonce(pn), RangeError);
      assert.equal(c.open(pn, new Uint8Array(0), bytes(32)), null);
    }
    assert.throws(() => new PacketCipher(nobleBackend, bytes(31)), RangeError);
  });

  for (const backend of availableAeadBackends()) {
    it(`round-trips a packet and rejects a wrong packet number (${backend.name})`, () => {
      const secret = bytes(32);
      const sender = new PacketCipher(backend, secret);
      const receiver = new PacketCipher(nobleBackend, secret); // the peer may use another backend
      const aad = bytes(9), pt = bytes(300);
      const out = new Uint8Array(400);
      const n = sender.seal(out, 9, 2 ** 32 + 5, aad, pt);
      assert.equal(n, 300 + AEAD_TAG_LENGTH);
      const sealed = out.subarray(9, 9 + n);
      assert.deepEqual(receiver.open(2 ** 32 + 5, aad, sealed)?.slice(), pt);
      assert.equal(receiver.open(2 ** 32 + 4, aad, sealed), null);
      assert.equal(receiver.open(5, aad, sealed), null);
    });
  }

  it("next() ratchets key and iv, identically on both peers", () => {
    const secret = bytes(32);
    const client = new PacketCipher(nobleBackend, secret);
    const server = new PacketCipher(availableAeadBackends()[0]!, secret);
    const c1 = client.next(), s1 = server.next();
    assert.equal(c1.backend, nobleBackend);
    assert.deepEqual(c1.secret, nextSecret(secret));
    assert.notDeepEqual(c1.iv, client.iv);
    assert.deepEqual(c1.iv, s1.iv);

    const aad = bytes(4), pt = bytes(50), out = new Uint8Array(66);
    c1.seal(out, 0, 7, aad, pt);
    assert.deepEqual(s1.open(7, aad, out)?.slice(), pt);
    assert.equal(server.open(7, aad, out), null, "the old key phase cannot open the new one");
    // A different key, not only a different iv: the same nonce under the old phase gives another ciphertext.
    const old = new Uint8Array(66);
    client.key.sealInto(old, 0, c1.nonce(7), aad, pt);
    assert.notDeepEqual(old, out);

    let c = client, s = server;
    for (let i = 0; i < 3; i++) { c = c.next(); s = s.next(); }
    assert.deepEqual(c.secret, s.secret);
    c.seal(out, 0, 1, aad, pt);
    assert.deepEqual(s.open(1, aad, out)?.slice(), pt);
  });
});
