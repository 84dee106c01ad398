import assert from "node:assert/strict";
import { nobleBackend } from "../src/protocol/aead-noble.js";
import { AEAD_TAG_LENGTH } from "../src/protocol/aead.js";
import { PacketKeys } from "../src/protocol/packet-keys.js";

const HEADER = 4;
const km = Uint8Array.from({ length: 64 }, (_, i) => i * 7 + 1);

/** Seals `text` as packet `pn` with `from`'s send key; returns header + ciphertext. */
function seal(from: PacketKeys, pn: number, text: string): Uint8Array {
  const plain = new TextEncoder().encode(text);
  const out = new Uint8Array(HEADER + plain.length + AEAD_TAG_LENGTH);
  out.set([0x40 | from.sendPhase, pn >> 16, pn >> 8, pn]);
  from.seal(out, HEADER, pn, plain);
  return out;
}

function open(to: PacketKeys, pkt: Uint8Array, pn: number, now: number): string | null {
  const phase = pkt[0]! & 1;
  const plain = to.open(pn, phase, pkt.subarray(0, HEADER), pkt.subarray(HEADER), now);
  return plain === null ? null : new TextDecoder().decode(plain);
}

describe("PacketKeys", () => {
  it("each side opens what the other sealed, and not its own packets", () => {
    const client = new PacketKeys(nobleBackend, km, "client");
    const server = new PacketKeys(nobleBackend, km, "server");
    assert.equal(open(server, seal(client, 0, "hello"), 0, 0), "hello");
    assert.equal(open(client, seal(server, 0, "back"), 0, 0), "back");
    assert.equal(open(client, seal(client, 1, "self"), 1, 0), null, "directions use different keys");
    const forged = seal(client, 2, "x");
    forged[forged.length - 1]! ^= 1;
    assert.equal(open(server, forged, 2, 0), null);
  });

  it("openPacket opens a whole datagram like open, for any header length and size, and refuses what does not fit", () => {
    const client = new PacketKeys(nobleBackend, km, "client");
    const server = new PacketKeys(nobleBackend, km, "server");
    const text = (n: number) => "x".repeat(n);
    for (const [pn, len] of [[0, 5], [1, 5], [2, 900], [3, 1], [4, 5]] as const) {
      const pkt = seal(client, pn, text(len));
      const header = pkt.slice(0, HEADER);
      const viaOpen = open(server, pkt.slice(), pn, 0);
      const plain = server.openPacket(pn, pkt[0]! & 1, pkt, HEADER, 0);
      assert.equal(plain === null ? null : new TextDecoder().decode(plain), text(len), `packet ${pn}`);
      assert.equal(viaOpen, text(len));
      assert.deepEqual(pkt.subarray(0, HEADER), header, "the datagram itself is left as it was");
      // A longer header over the same bytes: the AAD differs, so it must not authenticate.
      assert.equal(server.openPacket(pn, pkt[0]! & 1, pkt, HEADER + 1, 0), null);
    }
    const forged = seal(client, 5, "y");
    forged[2]! ^= 1;
    assert.equal(server.openPacket(5, forged[0]! & 1, forged, HEADER, 0), null, "a changed header fails");
    assert.equal(server.openPacket(6, 0, new Uint8Array(1201), HEADER, 0), null, "longer than any datagram");
    assert.equal(server.openPacket(6, 0, new Uint8Array(HEADER), HEADER, 0), null, "nothing after the header");
  });

  it("a key update is followed by the peer and confirmed by an acknowledgement", () => {
    const client = new PacketKeys(nobleBackend, km, "client");
    const server = new PacketKeys(nobleBackend, km, "server");
    assert.equal(client.canUpdate, true);
    client.rotateSend();
    assert.equal(client.sendGeneration, 1);
    assert.equal(client.sendPhase, 1);
    assert.equal(client.canUpdate, false, "unconfirmed: no second update yet");
    client.onSent(5, 1000);
    assert.equal(open(server, seal(client, 5, "new key"), 5, 10), "new key");
    server.onAccepted(5, 10, 100);
    assert.equal(server.sendGeneration, 1, "the peer follows with its own send key");
    assert.equal(server.updates, 1);
    assert.equal(open(client, seal(server, 0, "reply"), 0, 10), "reply");
    client.onAccepted(0, 10, 100);
    assert.equal(client.sendGeneration, 1, "already there: no second update");
    client.onAcked(4);
    assert.equal(client.canUpdate, false, "an ACK of an older packet confirms nothing");
    client.onAcked(5);
    assert.equal(client.canUpdate, true);
  });

  it("keeps the previous receive key for 3 PTO, then drops it", () => {
    const client = new PacketKeys(nobleBackend, km, "client");
    const server = new PacketKeys(nobleBackend, km, "server");
    const late = seal(client, 3, "old"); // sealed before the update, delivered after
    client.rotateSend();
    assert.equal(open(server, seal(client, 4, "new"), 4, 1000), "new");
    server.onAccepted(4, 1000, 100);
    assert.equal(server.discardAt, 1300);
    assert.equal(open(server, late, 3, 1100), "old", "a reordered packet under the old key still opens");
    server.discardOld(1299);
    assert.equal(open(server, late, 3, 1299), "old");
    server.discardOld(1300);
    assert.equal(server.discardAt, Infinity);
    assert.equal(open(server, late, 3, 1300), null);
  });

  it("does not derive the next key again within a PTO of an update (no derivation per flipped packet)", () => {
    const client = new PacketKeys(nobleBackend, km, "client");
    const server = new PacketKeys(nobleBackend, km, "server");
    client.rotateSend();
    client.onSent(0, 1000);
    assert.equal(open(server, seal(client, 0, "gen1"), 0, 1000), "gen1");
    server.onAccepted(0, 1000, 100);
    client.onAcked(0);
    client.rotateSend(); // generation 2, phase 0 again
    const early = seal(client, 1, "gen2");
    assert.equal(open(server, early, 1, 1050), null, "the next key does not exist yet");
    assert.equal(open(server, early, 1, 1100), "gen2", "one PTO later it does");
  });

  it("onSent says when the update interval is reached", () => {
    const keys = new PacketKeys(nobleBackend, km, "client");
    assert.equal(keys.onSent(0, 3), false);
    assert.equal(keys.onSent(1, 3), false);
    assert.equal(keys.onSent(2, 3), true);
    keys.rotateSend();
    assert.equal(keys.onSent(3, 3), false, "the count restarts with the new key");
  });
});
