import { X509Certificate, createPrivateKey, webcrypto } from "node:crypto";
import { isIPv4, isIPv6 } from "node:net";
import { join, resolve } from "node:path";
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

/** A dev certificate kept on disk, with where it is and whether this call made it. */
export interface StoredDevCertificate extends DevCertificate {
  /** Absolute paths of the certificate (0644) and key (0600) files. */
  certPath: string;
  keyPath: string;
  /** True when this call generated it (none on disk, or the one there was expired, unreadable or mismatched). */
  created: boolean;
  /** End of its validity. */
  validTo: Date;
}

/** File names inside the dev certificate directory. */
export const DEV_CERT_FILE = "dev-cert.pem";
export const DEV_KEY_FILE = "dev-key.pem";
const LOCK_FILE = "dev-cert.lock";
/** A stored certificate with less validity left than this is replaced (a session may outlive the check). */
const MIN_REMAINING_MS = DAY_MS;
/** How long a process waits for another one holding the lock, and when a lock counts as abandoned. */
const LOCK_WAIT_MS = 10_000;
const LOCK_POLL_MS = 25;
const STALE_LOCK_MS = 30_000;

/**
 * The dev certificate stored in `dir` (created 0700 if missing), reused while it is valid for at least
 * another day and matches its key; otherwise a new one is generated and stored (key file mode 0600).
 * Restarts (devMode, `tsx watch`) and every process started in the same directory present the same
 * certificate, so a fingerprint a client pinned keeps working. Processes starting together take turns
 * through a lock file (created exclusively; one older than 30 s is treated as abandoned).
 */
export async function loadOrCreateDevCertificate(dir: string, opts: DevCertificateOptions = {}): Promise<StoredDevCertificate> {
  const { mkdir } = await import("node:fs/promises");
  const root = resolve(dir);
  await mkdir(root, { recursive: true, mode: 0o700 });
  const release = await acquireLock(join(root, LOCK_FILE));
  try {
    const certPath = join(root, DEV_CERT_FILE);
    const keyPath = join(root, DEV_KEY_FILE);
    const stored = await readStored(certPath, keyPath);
    if (stored) return { ...stored, certPath, keyPath, created: false };
    const dev = await generateDevCertificate(opts);
    // Each file is written aside and renamed over, so a reader never sees half a PEM.
    await writeAtomically(keyPath, dev.key, 0o600);
    await writeAtomically(certPath, dev.cert, 0o644);
    return { ...dev, certPath, keyPath, created: true, validTo: new Date(new X509Certificate(dev.cert).validTo) };
  } finally {
    await release();
  }
}

/** The stored pair if both files parse, belong together and stay valid long enough; else null. */
async function readStored(certPath: string, keyPath: string): Promise<(DevCertificate & { validTo: Date }) | null> {
  const { readFile, stat, chmod } = await import("node:fs/promises");
  let cert: string;
  let key: string;
  try {
    [cert, key] = await Promise.all([readFile(certPath, "utf8"), readFile(keyPath, "utf8")]);
  } catch {
    return null;
  }
  try {
    const x509 = new X509Certificate(cert);
    if (!x509.checkPrivateKey(createPrivateKey(key))) return null;
    const now = Date.now();
    const validTo = new Date(x509.validTo);
    if (new Date(x509.validFrom).getTime() > now || validTo.getTime() - now < MIN_REMAINING_MS) return null;
    // Someone loosened the key's mode (a copy, an editor): a private key stays private to its owner.
    if (((await stat(keyPath)).mode & 0o077) !== 0) await chmod(keyPath, 0o600);
    const fingerprint = derFingerprint(new Uint8Array(x509.raw));
    return { cert, key, fingerprint, fingerprintHex: formatFingerprint(fingerprint), validTo };
  } catch {
    return null;
  }
}

async function writeAtomically(path: string, text: string, mode: number): Promise<void> {
  const { writeFile, rename, chmod } = await import("node:fs/promises");
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(tmp, text, { mode });
  await chmod(tmp, mode); // the umask may have narrowed or (for 0600) nothing else: be explicit
  await rename(tmp, path);
}

/** Takes the lock file; resolves to its release. Waits at most LOCK_WAIT_MS, then fails naming the file. */
async function acquireLock(lockPath: string): Promise<() => Promise<void>> {
  const { open, stat, unlink } = await import("node:fs/promises");
  const deadline = Date.now() + LOCK_WAIT_MS;
  for (;;) {
    try {
      const handle = await open(lockPath, "wx", 0o600);
      await handle.writeFile(String(process.pid));
      await handle.close();
      return () => unlink(lockPath).catch(() => undefined);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    }
    const age = await stat(lockPath).then((s) => Date.now() - s.mtimeMs, () => 0);
    if (age > STALE_LOCK_MS) {
      await unlink(lockPath).catch(() => undefined);
      continue;
    }
    if (Date.now() > deadline) {
      throw new Error(`dev certificate: ${lockPath} is held by another process for more than ${LOCK_WAIT_MS} ms; remove it if no server is starting`);
    }
    await new Promise<void>((r) => setTimeout(r, LOCK_POLL_MS));
  }
}
