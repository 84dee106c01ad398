import { webcrypto } from "node:crypto";
import { isIPv4, isIPv6 } from "node:net";
import { derFingerprint, formatFingerprint } from "./fingerprint.js";

/** A generated certificate with its key and SHA-256 pin. */
export interface DevCertificate {
  /** Certificate, PEM. */
  cert: string;
  /** Private key, PEM PKCS#8. */
  key: string;
  /** SHA-256 of the certificate's DER. */
  fingerprint: Uint8Array;
  /** Same as `fingerprint`, "AB:CD:…" like X509Certificate.fingerprint256. */
  fingerprintHex: string;
}

export interface DevCertificateOptions {
  /** Subject and issuer CN (default "localhost"). */
  commonName?: string;
  /** Subject alternative names; IP literals become IP SANs, the rest DNS SANs (default localhost, 127.0.0.1, ::1). */
  altNames?: string[];
  /** Validity in days (default 14, the most WebTransport's serverCertificateHashes accepts). */
  validityDays?: number;
}

const DAY_MS = 24 * 60 * 60 * 1000;
// Backdating absorbs clock skew between the machine that makes the certificate and the one that checks it.
const BACKDATE_MS = 60 * 60 * 1000;
const ECDSA_P256 = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" } as const;

/**
 * Creates a self-signed ECDSA P-256 certificate for development and pinning, with @peculiar/x509.
 * It is usable both through its fingerprint and as its own trust anchor (`ca: cert` in node:tls).
 * The library is loaded on first use only, so servers with their own certificate never load it.
 */
export async function generateDevCertificate(opts: DevCertificateOptions = {}): Promise<DevCertificate> {
  const commonName = opts.commonName ?? "localhost";
  const altNames = opts.altNames ?? ["localhost", "127.0.0.1", "::1"];
  const validityDays = opts.validityDays ?? 14;
  if (!(validityDays > 0 && Number.isFinite(validityDays))) {
    throw new RangeError(`validityDays must be a positive number, got ${validityDays}`);
  }
  const x509 = await import("@peculiar/x509");
  // The library's typings name DOM's Crypto, absent from this project's lib; node's webcrypto is that API.
  const crypto = webcrypto as never;
  const keys = await webcrypto.subtle.generateKey(ECDSA_P256, true, ["sign", "verify"]);
  const serial = new Uint8Array(16);
  webcrypto.getRandomValues(serial);
  serial[0] = (serial[0]! & 0x7f) | 0x01; // positive, minimal DER
  // notAfter - notBefore is exactly validityDays: WebTransport refuses hash-pinned certificates valid for longer
  // than 14 days in total, so the backdating comes out of the validity instead of extending it.
  const notBefore = new Date(Date.now() - BACKDATE_MS);
  const notAfter = new Date(notBefore.getTime() + validityDays * DAY_MS);
  const sans = altNames.map((n) => {
    const host = n.replace(/%.*$/, ""); // a zone id is local to one host and has no place in a certificate
    if (isIPv4(host)) return { type: "ip" as const, value: host };
    if (isIPv6(host)) return { type: "ip" as const, value: ipv6WithoutDottedTail(host) };
    return { type: "dns" as const, value: n };
  });
  const cert = await x509.X509CertificateGenerator.createSelfSigned(
    {
      serialNumber: Buffer.from(serial).toString("hex"),
      name: [{ CN: [commonName] }],
      notBefore,
      notAfter,
      keys: keys as never,
      signingAlgorithm: ECDSA_P256,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        // digitalSignature is all a TLS 1.3 ECDSA server key does
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
        new x509.SubjectAlternativeNameExtension(sans),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey as never, false, crypto),
      ],
    },
    crypto,
  );
  const pkcs8 = await webcrypto.subtle.exportKey("pkcs8", keys.privateKey);
  const fingerprint = derFingerprint(new Uint8Array(cert.rawData));
  return {
    cert: cert.toString("pem") + "\n",
    key: pem("PRIVATE KEY", new Uint8Array(pkcs8)),
    fingerprint,
    fingerprintHex: formatFingerprint(fingerprint),
  };
}

/** "::ffff:192.0.2.1" → "::ffff:c000:201": @peculiar/x509 mis-encodes the dotted IPv4 tail of an IPv6 literal. */
function ipv6WithoutDottedTail(ip: string): string {
  const m = /^(.*:)(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(ip);
  if (!m) return ip;
  const [a, b, c, d] = [m[2], m[3], m[4], m[5]].map(Number) as [number, number, number, number];
  return `${m[1]}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
}

function pem(label: string, der: Uint8Array): string {
  const b64 = Buffer.from(der).toString("base64").replace(/.{64}/g, "$&\n").replace(/\n$/, "");
  return `-----BEGIN ${label}-----\n${b64}\n-----END ${label}-----\n`;
}
