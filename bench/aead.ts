/**
 * AEAD micro benchmark: per-op seal and open time for each available backend at a small (64 B) and a
 * full-datagram (1184 B = 1200 minus a 16-byte tag) payload, and the time to reject a forged packet (one
 * tag bit flipped: "bad ns", not part of "both ns"). Usage: node --import tsx bench/aead.ts [--json]
 * With --json the last stdout line is {"bench":"aead","results":[{backend,payload,seal_ns,open_ns,bad_ns}]}.
 */
import { randomBytes } from "node:crypto";
import { AEAD_TAG_LENGTH, type AeadKey } from "../src/protocol/aead.js";
import { availableAeadBackends } from "../src/node/aead-select.js";

const PAYLOADS = [64, 1184];
const WARMUP_OPS = 2_000;
const BATCH_OPS = 500;
const BUDGET_NS = 250_000_000n; // per (backend, payload, operation): 18 measurements stay within a few seconds

interface Result { backend: string; payload: number; seal_ns: number; open_ns: number; bad_ns: number }

let sink = 0; // consumed results, so the JIT cannot drop the work

/** Median ns/op over batches of `op` run until the time budget is spent. */
function measure(op: () => void): number {
  for (let i = 0; i < WARMUP_OPS; i++) op();
  const perOp: number[] = [];
  const start = process.hrtime.bigint();
  let now = start;
  while (now - start < BUDGET_NS) {
    const t0 = now;
    for (let i = 0; i < BATCH_OPS; i++) op();
    now = process.hrtime.bigint();
    perOp.push(Number(now - t0) / BATCH_OPS);
  }
  perOp.sort((a, b) => a - b);
  return perOp[perOp.length >> 1]!;
}

function bench(key: AeadKey, payload: number): { seal: number; open: number; bad: number } {
  const nonce = randomBytes(12);
  const aad = randomBytes(16);
  const plaintext = randomBytes(payload);
  const out = new Uint8Array(payload + AEAD_TAG_LENGTH);
  const seal = measure(() => { sink ^= key.sealInto(out, 0, nonce, aad, plaintext); });
  const open = measure(() => { sink ^= key.open(nonce, aad, out)?.[0] ?? 1; });
  const forged = out.slice();
  forged[payload]! ^= 1; // first tag byte
  const bad = measure(() => { sink ^= key.open(nonce, aad, forged)?.[0] ?? 1; });
  return { seal, open, bad };
}

const results: Result[] = [];
for (const backend of availableAeadBackends()) {
  const key = backend.createKey(randomBytes(32));
  for (const payload of PAYLOADS) {
    const { seal, open, bad } = bench(key, payload);
    results.push({ backend: backend.name, payload, seal_ns: Math.round(seal), open_ns: Math.round(open), bad_ns: Math.round(bad) });
  }
}

const fmt = (s: string | number, w: number) => String(s).padStart(w);
console.log(`${"backend".padEnd(8)}${fmt("payload", 8)}${fmt("seal ns", 10)}${fmt("open ns", 10)}${fmt("both ns", 10)}${fmt("x fastest", 11)}${fmt("bad ns", 10)}`);
for (const payload of PAYLOADS) {
  const rows = results.filter((r) => r.payload === payload);
  const best = Math.min(...rows.map((r) => r.seal_ns + r.open_ns));
  for (const r of rows.sort((a, b) => a.seal_ns + a.open_ns - (b.seal_ns + b.open_ns))) {
    const both = r.seal_ns + r.open_ns;
    console.log(`${r.backend.padEnd(8)}${fmt(payload, 8)}${fmt(r.seal_ns, 10)}${fmt(r.open_ns, 10)}${fmt(both, 10)}${fmt((both / best).toFixed(2), 11)}${fmt(r.bad_ns, 10)}`);
  }
}
if (sink === 0x7fffffff) console.log(""); // keeps `sink` observable
if (process.argv.includes("--json")) console.log(JSON.stringify({ bench: "aead", results }));
