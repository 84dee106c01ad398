import assert from "node:assert/strict";
import { createHmac, randomFillSync } from "node:crypto";
import { availableAeadBackends } from "../src/node/aead-select.js";
import { CidAuthority, deriveCidKey } from "../src/protocol/cid.js";
import { Connection } from "../src/protocol/connection.js";
import { PacketCipher, derivePacketProtection, splitExportedSecrets } from "../src/protocol/key-schedule.js";
import { AckFrame, newConnectionIdFrameSize, walkFrames, writeNewConnectionIdFrame } from "../src/protocol/frames.js";
import { PacketType, parseHeader, writeHeader, type ParsedHeader } from "../src/protocol/packet-header.js";
import { deriveResetKey, statelessResetToken } from "../src/protocol/stateless-reset.js";
import { CID_LENGTH, EXPORTER_LABEL, PROTOCOL_VERSION, exporterContext } from "../src/protocol/version.js";

/**
 * The test vectors printed in docs/protocol.md §9. A second implementation that reproduces these bytes
 * has the CID layout and tag, the reset token, the key schedule, nonce, header and AEAD right.
 */
const hex = (b: Uint8Array): string => Buffer.from(b).toString("hex");
const unhex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s.replace(/ /g, ""), "hex"));
const keyingMaterial = Uint8Array.from({ length: 64 }, (_, i) => i);
const secret = new TextEncoder().encode("fastnet test vector");
const serverId = Uint8Array.of(0x2a);
const nonce = unhex("10 32 54 76 98 ba");
// STREAM frame: offset 0, length 6, data = varint 5 + "hello"
const payload = Uint8Array.from([0x03, 0x00, 0x06, 0x05, 0x68, 0x65, 0x6c, 0x6c, 0x6f]);
const expected = {
  cidKey: "ffcea3fba3438230a02a50489e6533a720a8152a7bd7aef80568328d8a12b3b8",
  resetKey: "161e97b9cbbcae3f35aa33d3182f1fc463cbd507ffb46297f07a3fea1cc17f4d",
  cid: "0b2a1032547698bafce98cbe",
  token: "47ac82a1102db7dbbdc2f11b75b25acd",
  key: "e75d319e1e5463ad346d386b658cee298d3a5df11627de211a6090314bf6d959",
  iv: "0ede768e56417f72a35d3d0d",
  nonce: "0ede768e56417f72a35d3d08",
  packet: "400b2a1032547698bafce98cbe054736f2eb5d0f6c98694bc832062b5610f2691f89c3d65e8dfe",
  // A spare: NEW_CONNECTION_ID sequence 1, server to client, packet number 1, under CID sequence 0.
  cid1: "0b2aa1b2c3d4e5f6e0d72c68",
  token1: "e397b1502331d5346b21341eaf5edd0d",
  ncidFrame: "08010b2aa1b2c3d4e5f6e0d72c68e397b1502331d5346b21341eaf5edd0d",
  s2cKey: "713066f635b90cc539ad17609625deaae6284e9f01542cca19e3541be0227fbe",
  s2cIv: "57e163c48b94f0a43ba81577",
  s2cNonce1: "57e163c48b94f0a43ba81576",
  ncidPacket: "400b2a1032547698bafce98cbe01f6ba5d7041d95e73010bfef3306fb7b240d3216a18482c200fb7353ca0bd1faea6437af97431d6298a9cffbedfab",
  // §9.4: IMMEDIATE_ACK, then the STREAM frame of §9.2, client to server, packet number 1.
  immediateAckFrames: "0a0300060568656c6c6f",
  c2sNonce1: "0ede768e56417f72a35d3d0c",
  immediateAckPacket: "400b2a1032547698bafce98cbe0147e55d32adf88cd8338bef01e4ab1c11cd14678a707fb766fea7",
};

/** Seals `frames` as a client Data packet with a 1-byte packet number `pn` under the vector's keys. */
function sealClientPacket(backend: ReturnType<typeof availableAeadBackends>[number], pn: number, frames: Uint8Array): Uint8Array {
  const cipher = new PacketCipher(backend, splitExportedSecrets(keyingMaterial).clientToServer);
  const out = new Uint8Array(1 + CID_LENGTH + 1 + frames.length + 16);
  const h = writeHeader(out, PacketType.Data, 0, unhex(expected.cid), pn, 1);
  cipher.seal(out, h, pn, out.subarray(0, h), frames);
  return out;
}

/** The largest packet number acknowledged by a server packet of the vector's session, or null without an ACK. */
function ackedBy(backend: ReturnType<typeof availableAeadBackends>[number], packet: Uint8Array): number | null {
  const h: ParsedHeader = { type: PacketType.Data, keyPhase: 0, pnLength: 1, truncatedPn: 0, headerLength: 0 };
  assert.ok(parseHeader(packet, h));
  const cipher = new PacketCipher(backend, splitExportedSecrets(keyingMaterial).serverToClient);
  const frames = cipher.open(h.truncatedPn, packet.subarray(0, h.headerLength), packet.subarray(h.headerLength));
  assert.ok(frames, "the server's packet opens under s2c");
  let largest: number | null = null;
  const ignore = (): void => {};
  walkFrames(frames, { onPing: ignore, onAck: (a) => (largest ??= a.largest), onStream: ignore, onDatagram: ignore, onClose: ignore, onPathChallenge: ignore, onPathResponse: ignore }, new AckFrame(), { ackEliciting: false });
  return largest;
}

/** The documented CID with `n` as its nonce: config octet, server id, nonce, then the tag (filled in by the authority). */
function vectorCid(n = nonce): Uint8Array {
  const authority = new CidAuthority(deriveCidKey(secret), serverId);
  return authority.generate((out) => out.set(n, 1 + serverId.length));
}

describe("wire test vector (docs/protocol.md §9)", () => {
  const { clientToServer } = splitExportedSecrets(keyingMaterial);
  const cid = unhex(expected.cid);

  it("version 2: exporter label and context", () => {
    assert.equal(PROTOCOL_VERSION, 2);
    assert.equal(EXPORTER_LABEL, "EXPERIMENTAL fastnet v2");
    assert.equal(CID_LENGTH, 12);
    assert.equal(hex(exporterContext(cid)), "02" + expected.cid);
  });

  it("derives the documented CID key, CID, tag and reset token (checked against node:crypto too)", () => {
    assert.equal(hex(deriveCidKey(secret)), expected.cidKey);
    assert.equal(hex(deriveResetKey(secret)), expected.resetKey);
    assert.equal(hex(vectorCid()), expected.cid);
    assert.equal(hex(statelessResetToken(deriveResetKey(secret), cid)), expected.token);
    // An independent HMAC implementation gives the same bytes.
    const cidKey = createHmac("sha256", "fastnet cid v2").update(secret).digest();
    const resetKey = createHmac("sha256", "fastnet stateless reset v2").update(secret).digest();
    assert.equal(hex(cidKey), expected.cidKey);
    assert.equal(hex(resetKey), expected.resetKey);
    const tag = createHmac("sha256", cidKey).update(cid.subarray(0, 8)).digest().subarray(0, 4);
    assert.equal(hex(tag), expected.cid.slice(16));
    assert.equal(createHmac("sha256", resetKey).update(cid).digest().subarray(0, 16).toString("hex"), expected.token);
  });

  it("verifies the documented CID, and nothing with one bit changed or under another key or server id", () => {
    const authority = new CidAuthority(deriveCidKey(secret), serverId);
    assert.equal(authority.verify(cid, 0), true);
    for (let bit = 0; bit < CID_LENGTH * 8; bit++) {
      const flipped = cid.slice();
      flipped[bit >> 3]! ^= 1 << (bit & 7);
      assert.equal(authority.verify(flipped, 0), false, `bit ${bit}`);
    }
    assert.equal(new CidAuthority(deriveCidKey(new TextEncoder().encode("another")), serverId).verify(cid, 0), false);
    assert.equal(new CidAuthority(deriveCidKey(secret), Uint8Array.of(0x2b)).verify(cid, 0), false);
  });

  it("derives the documented key, IV and nonce", () => {
    const { key, iv } = derivePacketProtection(clientToServer);
    assert.equal(hex(key), expected.key);
    assert.equal(hex(iv), expected.iv);
    assert.equal(hex(new PacketCipher(availableAeadBackends()[0]!, clientToServer).nonce(5)), expected.nonce);
  });

  it("encodes the documented NEW_CONNECTION_ID frame for the spare CID", () => {
    const cid1 = vectorCid(unhex("a1 b2 c3 d4 e5 f6"));
    assert.equal(hex(cid1), expected.cid1);
    const token1 = statelessResetToken(deriveResetKey(secret), cid1);
    assert.equal(hex(token1), expected.token1);
    const frame = new Uint8Array(newConnectionIdFrameSize(1));
    assert.equal(writeNewConnectionIdFrame(frame, 0, 1, cid1, token1), frame.length);
    assert.equal(hex(frame), expected.ncidFrame);
    const { serverToClient } = splitExportedSecrets(keyingMaterial);
    const { key, iv } = derivePacketProtection(serverToClient);
    assert.equal(hex(key), expected.s2cKey);
    assert.equal(hex(iv), expected.s2cIv);
    assert.equal(hex(new PacketCipher(availableAeadBackends()[0]!, serverToClient).nonce(1)), expected.s2cNonce1);
  });

  for (const backend of availableAeadBackends()) {
    it(`seals the documented NEW_CONNECTION_ID packet with the ${backend.name} backend; a client opens it and holds the spare`, () => {
      const { serverToClient } = splitExportedSecrets(keyingMaterial);
      const cipher = new PacketCipher(backend, serverToClient);
      const frame = unhex(expected.ncidFrame);
      const out = new Uint8Array(1 + CID_LENGTH + 1 + frame.length + 16);
      const h = writeHeader(out, PacketType.Data, 0, cid, 1, 1);
      cipher.seal(out, h, 1, out.subarray(0, h), frame);
      assert.equal(hex(out), expected.ncidPacket);
      const client = new Connection({ role: "client", cid, keyingMaterial, aead: backend, now: 0, random: randomFillSync, resetToken: unhex(expected.token) });
      client.pollTransmit(0); // the bind
      assert.equal(client.handleDatagram(unhex(expected.ncidPacket), 0), 2);
      assert.equal(client.state, "open");
      assert.equal(client.spareCids, 1);
      assert.equal(client.switchCid(), true);
      assert.equal(hex(client.cid), expected.cid1);
    });

    it(`seals the documented packet with the ${backend.name} backend`, () => {
      const cipher = new PacketCipher(backend, clientToServer);
      const out = new Uint8Array(1 + CID_LENGTH + 1 + payload.length + 16);
      const h = writeHeader(out, PacketType.Data, 0, cid, 5, 1);
      cipher.seal(out, h, 5, out.subarray(0, h), payload);
      assert.equal(hex(out), expected.packet);
    });

    it(`seals the documented IMMEDIATE_ACK packet with the ${backend.name} backend; a server acknowledges it at once, the same packet without the frame after its maxAckDelayMs (5 ms)`, () => {
      const frames = unhex(expected.immediateAckFrames);
      assert.equal(hex(new PacketCipher(backend, clientToServer).nonce(1)), expected.c2sNonce1);
      assert.equal(hex(sealClientPacket(backend, 1, frames)), expected.immediateAckPacket);
      for (const immediate of [true, false]) {
        const server = new Connection({ role: "server", cid, keyingMaterial, aead: backend, now: 0, random: randomFillSync });
        const client = new Connection({ role: "client", cid, keyingMaterial, aead: backend, now: 0, random: randomFillSync });
        assert.equal(server.handleDatagram(client.pollTransmit(0)!, 0), 2); // the Bind, packet number 0
        while (server.pollTransmit(0) !== null); // its answer (ACK, challenge, spare CIDs)
        const packet = immediate ? unhex(expected.immediateAckPacket) : sealClientPacket(backend, 1, frames.subarray(1));
        assert.equal(server.handleDatagram(packet, 10), 2);
        const events = [server.pollEvent(), server.pollEvent()];
        assert.equal(events[1]?.type === "message" && new TextDecoder().decode(events[1].data), "hello");
        assert.equal(server.pollTimeout(), immediate ? 10 : 15, "the ACK is due at once with IMMEDIATE_ACK, after maxAckDelayMs without");
        const reply = server.pollTransmit(immediate ? 10 : 15);
        assert.ok(reply, "the server sends its ACK when due");
        assert.equal(ackedBy(backend, reply), 1);
      }
    });

    it(`a server connection on ${backend.name} opens the documented packet and delivers "hello"`, () => {
      const server = new Connection({ role: "server", cid, keyingMaterial, aead: backend, now: 0, random: randomFillSync });
      const client = new Connection({ role: "client", cid, keyingMaterial, aead: backend, now: 0, random: randomFillSync });
      // A server opens on the client's Bind (packet number 0) only; the vector's packet number 5 comes after.
      assert.equal(server.handleDatagram(client.pollTransmit(0)!, 0), 2);
      assert.deepEqual(server.pollEvent(), { type: "open" });
      assert.equal(server.handleDatagram(unhex(expected.packet), 0), 2);
      const ev = server.pollEvent();
      assert.equal(ev?.type, "message");
      assert.equal(ev?.type === "message" && new TextDecoder().decode(ev.data), "hello");
    });
  }
});
