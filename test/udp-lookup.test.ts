import assert from "node:assert/strict";
import { cachedLiteralCount, literalLookup } from "../src/node/udp-lookup.js";

/** Calls literalLookup; says whether the callback ran before it returned. */
function lookup(host: string): Promise<{ sync: boolean; err: unknown; address: string; family: number }> {
  return new Promise((resolve) => {
    let returned = false;
    literalLookup(host, 0, (err, address, family) => resolve({ sync: !returned, err, address, family }));
    returned = true;
  });
}

describe("literalLookup (dgram's lookup for session addresses)", () => {
  it("answers IP literals synchronously with their family, the first time and from its cache", async () => {
    for (let i = 0; i < 2; i++) {
      assert.deepEqual(await lookup("127.0.0.1"), { sync: true, err: null, address: "127.0.0.1", family: 4 });
      assert.deepEqual(await lookup("::1"), { sync: true, err: null, address: "::1", family: 6 });
    }
  });

  it("hands names to dns.lookup (asynchronously) and never caches them", async () => {
    const before = cachedLiteralCount();
    const r = await lookup("localhost");
    assert.equal(r.sync, false);
    assert.equal(r.err, null);
    assert.ok(r.family === 4 || r.family === 6);
    assert.equal(cachedLiteralCount(), before);
  });

  it("keeps its cache bounded however many addresses send", async () => {
    for (let i = 0; i < 10_000; i++) {
      const host = `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
      const r = await lookup(host);
      assert.equal(r.family, 4);
      assert.ok(cachedLiteralCount() <= 4096, `cache size ${cachedLiteralCount()}`);
    }
  });
});
