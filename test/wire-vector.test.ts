import assert from "node:assert/strict";
import { randomFillSync } from "node:crypto";
import { availableAeadBackends } from "../src/node/aead-select.js";
import { Connection } from "../src/protocol/connection.js";
import { PacketCipher, derivePacketProtection, splitExportedSecrets } from "../src/protocol/key-schedule.js";
import { PacketType, writeHeader } from "../src/protocol/packet-header.js";

/**
 * The sealed-packet test vector printed in docs/protocol.md ("Test vector"). A second implementation
 * that reproduces these bytes has the key schedule, nonce, header and AEAD right.
 */
const hex = (b: Uint8Array): string => Buffer.from(b).toString("hex");
const keyingMaterial = Uint8Array.from({ length: 64 }, (_, i) => i);
const cid = Uint8Array.from([0x07, 0x2a, 0x10, 0x32, 0x54, 0x76, 0x98, 0xba]);
// STREAM frame: offset 0, length 6, data = varint 5 + "hello"
const payload = Uint8Array.from([0x03, 0x00, 0x06, 0x05, 0x68, 0x65, 0x6c, 0x6c, 0x6f]);
const expected = {
  key: "e75d319e1e5463ad346d386b658cee298d3a5df11627de211a6090314bf6d959",
  iv: "0ede768e56417f72a35d3d0d",
  nonce: "0ede768e56417f72a35d3d08",
  packet: "40072a1032547698ba054736f2eb5d0f6c98698e00291d1bc0646adf96561eb65d7cf0",
};

describe("wire test vector (docs/protocol.md)", () => {
  const { clientToServer } = splitExportedSecrets(keyingMaterial);

  it("derives the documented key, IV and nonce", () => {
    const { key, iv } = derivePacketProtection(clientToServer);
    assert.equal(hex(key), expected.key);
    assert.equal(hex(iv), expected.iv);
    assert.equal(hex(new PacketCipher(availableAeadBackends()[0]!, clientToServer).nonce(5)), expected.nonce);
  });

  for (const backend of availableAeadBackends()) {
    it(`seals the documented packet with the ${backend.name} backend`, () => {
      const cipher = new PacketCipher(backend, clientToServer);
      const out = new Uint8Array(1 + 8 + 1 + payload.length + 16);
      const h = writeHeader(out, PacketType.Data, 0, cid, 5, 1);
      cipher.seal(out, h, 5, out.subarray(0, h), payload);
      assert.equal(hex(out), expected.packet);
    });

    it(`a server connection on ${backend.name} opens the documented packet and delivers "hello"`, () => {
      const server = new Connection({ role: "server", cid, keyingMaterial, aead: backend, now: 0, random: randomFillSync });
      const client = new Connection({ role: "client", cid, keyingMaterial, aead: backend, now: 0, random: randomFillSync });
      // A server opens on the client's Bind (packet number 0) only; the vector's packet number 5 comes after.
      assert.equal(server.handleDatagram(client.pollTransmit(0)!, 0), 2);
      assert.deepEqual(server.pollEvent(), { type: "open" });
      assert.equal(server.handleDatagram(Buffer.from(expected.packet, "hex"), 0), 2);
      const ev = server.pollEvent();
      assert.equal(ev?.type, "message");
      assert.equal(ev?.type === "message" && new TextDecoder().decode(ev.data), "hello");
    });
  }
});
