import assert from "node:assert/strict";
import { X509Certificate, createPrivateKey } from "node:crypto";
import { once } from "node:events";
import type { AddressInfo } from "node:net";
import tls from "node:tls";
import { generateDevCertificate, type DevCertificate } from "../src/node/dev-certificate.js";
import { certificateFingerprint, formatFingerprint, parseFingerprint } from "../src/node/fingerprint.js";
import { FastnetError } from "../src/protocol/errors.js";

const DAY_MS = 24 * 60 * 60 * 1000;

/** Connects to a TLS server that presents `served` and returns how node judged it, trusting only `ca`. */
async function tlsCheck(
  served: DevCertificate,
  connect: Omit<tls.ConnectionOptions, "port">,
): Promise<{ authorized: boolean; error?: string; protocol: string | null }> {
  const server = tls.createServer({ cert: served.cert, key: served.key, minVersion: "TLSv1.3" }, (s) => s.end());
  server.listen(0, connect.host ?? "127.0.0.1");
  await once(server, "listening");
  try {
    const socket = tls.connect({ ...connect, port: (server.address() as AddressInfo).port, minVersion: "TLSv1.3" });
    try {
      return await new Promise((resolve) => {
        socket.once("secureConnect", () => resolve({ authorized: socket.authorized, protocol: socket.getProtocol() }));
        socket.once("error", (err: NodeJS.ErrnoException) =>
          resolve({ authorized: false, error: err.code ?? err.message, protocol: null }),
        );
      });
    } finally {
      socket.destroy();
    }
  } finally {
    server.close();
    await once(server, "close");
  }
}

describe("generateDevCertificate", () => {
  let dev: DevCertificate;
  before(async () => {
    dev = await generateDevCertificate();
  });

  it("makes a self-signed ECDSA P-256 certificate whose key is PKCS#8 PEM and matches it", () => {
    assert.match(dev.cert, /^-----BEGIN CERTIFICATE-----\n[A-Za-z0-9+/=\n]+\n-----END CERTIFICATE-----\n$/);
    assert.match(dev.key, /^-----BEGIN PRIVATE KEY-----\n/);
    const x = new X509Certificate(dev.cert);
    const key = createPrivateKey(dev.key);
    assert.equal(key.asymmetricKeyType, "ec");
    assert.equal(key.asymmetricKeyDetails?.namedCurve, "prime256v1");
    assert.ok(x.checkPrivateKey(key));
    assert.ok(x.verify(x.publicKey), "self-signature verifies");
    assert.equal(x.subject, "CN=localhost");
    assert.equal(x.issuer, x.subject);
    assert.equal(x.ca, false);
    assert.deepEqual(x.keyUsage, ["1.3.6.1.5.5.7.3.1"]); // node reports the extended key usage here: serverAuth
  });

  it("defaults to localhost, 127.0.0.1 and ::1 and a 14-day validity that has already begun", () => {
    const x = new X509Certificate(dev.cert);
    assert.equal(x.subjectAltName, "DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1");
    const from = Date.parse(x.validFrom);
    const to = Date.parse(x.validTo);
    assert.equal(to - from, 14 * DAY_MS);
    assert.ok(from <= Date.now() && Date.now() < to);
    assert.ok(x.checkHost("localhost"));
    assert.ok(x.checkIP("127.0.0.1"));
    assert.ok(x.checkIP("::1"));
  });

  it("reports the SHA-256 of the DER as bytes and in X509Certificate.fingerprint256 form", () => {
    const x = new X509Certificate(dev.cert);
    assert.equal(dev.fingerprintHex, x.fingerprint256);
    assert.equal(dev.fingerprint.length, 32);
    assert.deepEqual(dev.fingerprint, certificateFingerprint(dev.cert));
    assert.equal(formatFingerprint(dev.fingerprint), dev.fingerprintHex);
  });

  it("uses a fresh random positive 16-byte serial and key each time", async () => {
    const again = await generateDevCertificate();
    const a = new X509Certificate(dev.cert);
    const b = new X509Certificate(again.cert);
    assert.equal(a.serialNumber.length, 32);
    assert.notEqual(a.serialNumber, b.serialNumber);
    assert.ok(parseInt(a.serialNumber[0]!, 16) < 8, "high bit clear: a positive INTEGER");
    assert.notEqual(dev.fingerprintHex, again.fingerprintHex);
    assert.notEqual(dev.key, again.key);
  });

  it("honours commonName, altNames (DNS and IPv4/IPv6 literals) and validityDays", async () => {
    const c = await generateDevCertificate({
      commonName: "game.example",
      altNames: ["game.example", "*.game.example", "10.1.2.3", "2001:db8::7", "::ffff:192.0.2.1"],
      validityDays: 3,
    });
    const x = new X509Certificate(c.cert);
    assert.equal(x.subject, "CN=game.example");
    assert.equal(
      x.subjectAltName,
      "DNS:game.example, DNS:*.game.example, IP Address:10.1.2.3, IP Address:2001:DB8:0:0:0:0:0:7, IP Address:0:0:0:0:0:FFFF:C000:201",
    );
    assert.ok(x.checkHost("a.game.example"));
    assert.equal(Date.parse(x.validTo) - Date.parse(x.validFrom), 3 * DAY_MS);
    assert.equal(x.checkIP("127.0.0.1"), undefined);
  });

  it("rejects a non-positive validity", async () => {
    await assert.rejects(generateDevCertificate({ validityDays: 0 }), RangeError);
  });

  it("serves as its own trust anchor in node:tls (ca: cert) over IPv4 and IPv6", async () => {
    const v4 = await tlsCheck(dev, { host: "127.0.0.1", ca: dev.cert });
    assert.deepEqual(v4, { authorized: true, protocol: "TLSv1.3" });
    // node 22.23.1+ fails IPv6 literals in tls.checkServerIdentity (nodejs/node#64144), so the IP SAN is
    // matched with OpenSSL's X509_check_ip here, as the handshake client does.
    const v6 = await tlsCheck(dev, {
      host: "::1",
      ca: dev.cert,
      checkServerIdentity: (host, cert) =>
        new X509Certificate(cert.raw).checkIP(host) ? undefined : new Error(`${host} not in the certificate`),
    });
    assert.deepEqual(v6, { authorized: true, protocol: "TLSv1.3" });
    const byName = await tlsCheck(dev, { host: "127.0.0.1", servername: "localhost", ca: dev.cert });
    assert.equal(byName.authorized, true);
  });

  it("is refused without itself as ca, with another certificate as ca, and for a name it does not carry", async () => {
    const other = await generateDevCertificate();
    assert.equal((await tlsCheck(dev, { host: "127.0.0.1" })).error, "DEPTH_ZERO_SELF_SIGNED_CERT");
    const wrongCa = await tlsCheck(dev, { host: "127.0.0.1", ca: other.cert });
    assert.equal(wrongCa.authorized, false);
    assert.ok(wrongCa.error);
    const wrongName = await tlsCheck(dev, { host: "127.0.0.1", servername: "elsewhere.example", ca: dev.cert });
    assert.equal(wrongName.error, "ERR_TLS_CERT_ALTNAME_INVALID");
  });
});

describe("fingerprint helpers", () => {
  const bytes = Uint8Array.from({ length: 32 }, (_, i) => (i * 37 + 5) & 0xff);
  const hex = formatFingerprint(bytes);

  it("formats as uppercase colon-separated hex", () => {
    assert.equal(hex.length, 32 * 3 - 1);
    assert.match(hex, /^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
    assert.equal(hex.slice(0, 8), "05:2A:4F");
  });

  it("parses hex with or without colons in any case, raw bytes, and Colyseus' number[]", () => {
    assert.deepEqual(parseFingerprint(hex), bytes);
    assert.deepEqual(parseFingerprint(hex.toLowerCase()), bytes);
    assert.deepEqual(parseFingerprint(hex.replace(/:/g, "")), bytes);
    assert.deepEqual(parseFingerprint(` ${hex} `), bytes);
    assert.deepEqual(parseFingerprint(Array.from(bytes)), bytes);
    const copy = parseFingerprint(bytes);
    assert.deepEqual(copy, bytes);
    assert.notEqual(copy, bytes, "returns a copy the caller cannot mutate behind our back");
  });

  it("throws INVALID_OPTION on a wrong length or malformed input", () => {
    const bad: unknown[] = [
      hex.slice(0, -3),
      hex + ":00",
      "",
      "zz".repeat(32),
      "abc",
      new Uint8Array(31),
      new Array(33).fill(0),
      [...new Array(31).fill(0), 256],
      [...new Array(31).fill(0), 1.5],
      42,
    ];
    for (const fp of bad) {
      assert.throws(
        () => parseFingerprint(fp as string),
        (err: unknown) => err instanceof FastnetError && err.code === "INVALID_OPTION",
        `should refuse ${String(fp)}`,
      );
    }
    assert.throws(() => parseFingerprint(new Uint8Array(20)), /32 bytes \(SHA-256\), got 20/);
  });
});
