import { createHash, generateKeyPair, randomBytes, sign, type KeyObject } from "node:crypto";
import { isIPv4, isIPv6 } from "node:net";
import { promisify } from "node:util";
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

const generateKeyPairAsync = promisify(generateKeyPair);

/**
 * Creates a self-signed ECDSA P-256 certificate for development and pinning.
 * It is usable both through its fingerprint and as its own trust anchor (`ca: cert` in node:tls).
 *
 * The DER is built here rather than with @peculiar/x509: that library pulls in tsyringe, which throws at import
 * time unless the process has loaded a global Reflect metadata polyfill, and a transport library must not
 * impose one on the server that embeds it. The certificate is small and fixed in shape, so a minimal encoder suffices.
 */
export async function generateDevCertificate(opts: DevCertificateOptions = {}): Promise<DevCertificate> {
  const commonName = opts.commonName ?? "localhost";
  const altNames = opts.altNames ?? ["localhost", "127.0.0.1", "::1"];
  const validityDays = opts.validityDays ?? 14;
  if (!(validityDays > 0 && Number.isFinite(validityDays))) {
    throw new RangeError(`validityDays must be a positive number, got ${validityDays}`);
  }

  const { publicKey, privateKey } = await generateKeyPairAsync("ec", { namedCurve: "P-256" });
  const spki = publicKey.export({ type: "spki", format: "der" });

  const serial = randomBytes(16);
  // Positive INTEGER whose first octet is non-zero, so the DER is minimal without a padding byte.
  serial[0] = (serial[0]! & 0x7f) | 0x01;

  // notAfter - notBefore is exactly validityDays: WebTransport refuses hash-pinned certificates valid for longer
  // than 14 days in total, so the backdating comes out of the validity instead of extending it.
  const notBefore = new Date(Date.now() - BACKDATE_MS);
  const notAfter = new Date(notBefore.getTime() + validityDays * DAY_MS);
  const name = seq(set(seq(oid("2.5.4.3"), utf8(commonName))));
  const tbs = seq(
    explicit(0, integer(Uint8Array.of(2))), // v3
    integer(serial),
    ECDSA_WITH_SHA256,
    name,
    seq(time(notBefore), time(notAfter)),
    name,
    spki,
    explicit(3, seq(...extensions(altNames, publicKey))),
  );
  const signature = sign("sha256", tbs, privateKey); // ECDSA signatures come out DER-encoded, as X.509 wants
  const der = seq(tbs, ECDSA_WITH_SHA256, bitString(signature));

  const fingerprint = derFingerprint(der);
  return {
    cert: pem("CERTIFICATE", der),
    key: privateKey.export({ type: "pkcs8", format: "pem" }).toString(),
    fingerprint,
    fingerprintHex: formatFingerprint(fingerprint),
  };
}

function extensions(altNames: string[], publicKey: KeyObject): Uint8Array[] {
  const sans = altNames.map((n) => {
    const host = n.replace(/%.*$/, ""); // a zone id is local to one host and has no place in a certificate
    if (isIPv4(host) || isIPv6(host)) return tlv(0x87, ipBytes(host)); // [7] iPAddress
    return tlv(0x82, Buffer.from(n, "ascii")); // [2] dNSName, IA5String
  });
  const jwk = publicKey.export({ format: "jwk" });
  const point = Buffer.concat([Uint8Array.of(4), Buffer.from(jwk.x!, "base64url"), Buffer.from(jwk.y!, "base64url")]);
  return [
    // basicConstraints, critical, cA FALSE (the default, so an empty SEQUENCE)
    extension("2.5.29.19", true, seq()),
    // keyUsage, critical: digitalSignature only, which is all a TLS 1.3 ECDSA server key does
    extension("2.5.29.15", true, tlv(0x03, Uint8Array.of(7, 0x80))),
    // extKeyUsage: serverAuth
    extension("2.5.29.37", false, seq(oid("1.3.6.1.5.5.7.3.1"))),
    extension("2.5.29.17", false, seq(...sans)),
    // subjectKeyIdentifier: SHA-1 of the public key (RFC 5280 §4.2.1.2 method 1)
    extension("2.5.29.14", false, octetString(createHash("sha1").update(point).digest())),
  ];
}

const ECDSA_WITH_SHA256 = seq(oid("1.2.840.10045.4.3.2"));

function extension(id: string, critical: boolean, value: Uint8Array): Uint8Array {
  return critical ? seq(oid(id), tlv(0x01, Uint8Array.of(0xff)), octetString(value)) : seq(oid(id), octetString(value));
}

// --- minimal DER encoder ---

function tlv(tag: number, content: Uint8Array): Uint8Array {
  const n = content.length;
  let len: number[];
  if (n < 0x80) len = [n];
  else {
    const bytes: number[] = [];
    for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
    len = [0x80 | bytes.length, ...bytes];
  }
  return Buffer.concat([Uint8Array.of(tag, ...len), content]);
}

function seq(...items: Uint8Array[]): Uint8Array {
  return tlv(0x30, Buffer.concat(items));
}

function set(...items: Uint8Array[]): Uint8Array {
  return tlv(0x31, Buffer.concat(items));
}

function explicit(n: number, inner: Uint8Array): Uint8Array {
  return tlv(0xa0 | n, inner);
}

function integer(bytes: Uint8Array): Uint8Array {
  return tlv(0x02, bytes);
}

function octetString(bytes: Uint8Array): Uint8Array {
  return tlv(0x04, bytes);
}

function bitString(bytes: Uint8Array): Uint8Array {
  return tlv(0x03, Buffer.concat([Uint8Array.of(0), bytes]));
}

function utf8(s: string): Uint8Array {
  return tlv(0x0c, Buffer.from(s, "utf8"));
}

function oid(dotted: string): Uint8Array {
  const parts = dotted.split(".").map(Number);
  const out = [40 * parts[0]! + parts[1]!];
  for (const p of parts.slice(2)) {
    const base128: number[] = [p & 0x7f];
    for (let v = p >>> 7; v > 0; v >>>= 7) base128.unshift(0x80 | (v & 0x7f));
    out.push(...base128);
  }
  return tlv(0x06, Uint8Array.from(out));
}

/** UTCTime through 2049, GeneralizedTime after (RFC 5280 §4.1.2.5). */
function time(d: Date): Uint8Array {
  const iso = d.toISOString(); // YYYY-MM-DDTHH:MM:SS.sssZ
  const digits = iso.slice(0, 19).replace(/[-:T]/g, "") + "Z";
  const year = d.getUTCFullYear();
  if (year >= 1950 && year < 2050) return tlv(0x17, Buffer.from(digits.slice(2), "ascii"));
  return tlv(0x18, Buffer.from(digits, "ascii"));
}

function ipBytes(ip: string): Uint8Array {
  if (isIPv4(ip)) return Uint8Array.from(ip.split(".").map(Number));
  // Expand "::" and an embedded IPv4 tail into eight 16-bit groups.
  let text = ip;
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4) {
    const [a, b, c, d] = v4[1]!.split(".").map(Number) as [number, number, number, number];
    text = text.slice(0, v4.index) + ((a << 8) | b).toString(16) + ":" + ((c << 8) | d).toString(16);
  }
  const [head, tail] = text.split("::") as [string, string | undefined];
  const h = head ? head.split(":") : [];
  const t = tail ? tail.split(":") : [];
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill("0"), ...t];
  const out = new Uint8Array(16);
  groups.forEach((g, i) => {
    const v = parseInt(g, 16);
    out[2 * i] = v >> 8;
    out[2 * i + 1] = v & 0xff;
  });
  return out;
}

function pem(label: string, der: Uint8Array): string {
  const b64 = Buffer.from(der).toString("base64").replace(/.{64}/g, "$&\n").replace(/\n$/, "");
  return `-----BEGIN ${label}-----\n${b64}\n-----END ${label}-----\n`;
}
