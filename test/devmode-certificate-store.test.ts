/** The dev certificate kept on disk: reused, shared by processes starting together, replaced when unusable. */
import assert from "node:assert/strict";
import { chmod, mkdtemp, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { generateDevCertificate, loadOrCreateDevCertificate } from "../src/node/dev-certificate.js";

describe("loadOrCreateDevCertificate", () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "fastnet-devcert-"));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("creates once, then reuses; loads started together agree on one certificate", async () => {
    const all = await Promise.all(Array.from({ length: 4 }, () => loadOrCreateDevCertificate(dir)));
    assert.equal(all.filter((c) => c.created).length, 1, "exactly one of the concurrent loads generated it");
    for (const c of all) assert.equal(c.fingerprintHex, all[0]!.fingerprintHex);
    const again = await loadOrCreateDevCertificate(dir);
    assert.equal(again.created, false);
    assert.equal(again.fingerprintHex, all[0]!.fingerprintHex);
    assert.equal((await stat(again.keyPath)).mode & 0o777, 0o600);
  });

  it("puts a loosened key back to 0600", async () => {
    const first = await loadOrCreateDevCertificate(dir);
    await chmod(first.keyPath, 0o644);
    const again = await loadOrCreateDevCertificate(dir);
    assert.equal(again.created, false);
    assert.equal((await stat(again.keyPath)).mode & 0o777, 0o600);
  });

  it("replaces a certificate that expires within a day, or whose key does not match", async () => {
    const first = await loadOrCreateDevCertificate(dir);
    const short = await generateDevCertificate({ validityDays: 0.5 });
    await writeFile(first.certPath, short.cert);
    await writeFile(first.keyPath, short.key);
    const renewed = await loadOrCreateDevCertificate(dir);
    assert.equal(renewed.created, true);
    assert.notEqual(renewed.fingerprintHex, short.fingerprintHex);
    const other = await generateDevCertificate();
    await writeFile(renewed.keyPath, other.key);
    const again = await loadOrCreateDevCertificate(dir);
    assert.equal(again.created, true, "a key that does not match the certificate is not used");
  });
});
