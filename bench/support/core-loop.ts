/**
 * The sans-IO core alone: two Connections in one process exchange one message at a time, no sockets.
 * Shows what the protocol costs per round trip, apart from Node's UDP path. Not part of the test suite.
 *   node --import tsx bench/support/core-loop.ts [payload] [rounds]
 */
import { randomFillSync } from "node:crypto";
import { performance } from "node:perf_hooks";
import { selectAeadBackend } from "../../src/node/aead-select.js";
import { Connection } from "../../src/protocol/connection.js";
import { CID_LENGTH } from "../../src/protocol/version.js";

const payload = Number(process.argv[2] ?? 32);
const rounds = Number(process.argv[3] ?? 200_000);
const aead = selectAeadBackend((process.env.FASTNET_AEAD as "sodium" | "node" | "noble" | undefined) ?? "auto");
const km = randomFillSync(new Uint8Array(64));
const cid = randomFillSync(new Uint8Array(CID_LENGTH));
const mk = (role: "client" | "server"): Connection =>
  new Connection({ role, cid, keyingMaterial: km, aead, now: performance.now(), random: randomFillSync, alloc: Buffer.allocUnsafe, initialRttMs: 1 });
const c = mk("client");
const s = mk("server");
s.handleDatagram(c.pollTransmit(performance.now())!, performance.now());
c.handleDatagram(s.pollTransmit(performance.now())!, performance.now()); // the answer to the bind opens the client
while (s.pollEvent()) {}
while (c.pollEvent()) {}
const msg = new Uint8Array(payload);
function roundTrip(): void {
  c.send(msg);
  let d = c.pollTransmit(performance.now());
  s.handleDatagram(d!, performance.now());
  for (let ev = s.pollEvent(); ev; ev = s.pollEvent()) if (ev.type === "message") s.send(ev.data);
  while ((d = s.pollTransmit(performance.now()))) c.handleDatagram(d, performance.now());
  while (c.pollEvent()) {}
  while ((d = c.pollTransmit(performance.now()))) s.handleDatagram(d, performance.now());
}
for (let i = 0; i < 20_000; i++) roundTrip();
const t0 = performance.now();
for (let i = 0; i < rounds; i++) roundTrip();
const us = ((performance.now() - t0) * 1000) / rounds;
console.log(`${aead.name} payload ${payload}: ${us.toFixed(2)} us per round trip (core only, both sides)`);
