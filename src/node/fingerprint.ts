import { X509Certificate, createHash } from "node:crypto";
import { FastnetError } from "../protocol/errors.js";

/** Length of a SHA-256 certificate fingerprint in bytes. */
export const FINGERPRINT_LENGTH = 32;

/** SHA-256 of a certificate's DER encoding, given its PEM (the value WebTransport's serverCertificateHashes pins). */
export function certificateFingerprint(pem: string): Uint8Array {
  return derFingerprint(new X509Certificate(pem).raw);
}

/** SHA-256 of DER bytes. */
export function derFingerprint(der: Uint8Array): Uint8Array {
  return new Uint8Array(createHash("sha256").update(der).digest());
}

/**
 * Normalises a pinned fingerprint: "AB:CD:.." (colons optional, any case), raw bytes,
 * or the number[] form Colyseus uses for serverCertificateHashes. Throws INVALID_OPTION unless it is 32 bytes.
 */
export function parseFingerprint(fp: string | Uint8Array | number[]): Uint8Array {
  let bytes: Uint8Array;
  if (typeof fp === "string") {
    const hex = fp.trim().replace(/:/g, "");
    if (!/^[0-9a-fA-F]*$/.test(hex) || hex.length % 2 !== 0) {
      throw new FastnetError("INVALID_OPTION", `fingerprint must be hex bytes like "AB:CD:…", got ${JSON.stringify(fp)}`);
    }
    bytes = new Uint8Array(Buffer.from(hex, "hex"));
  } else if (fp instanceof Uint8Array) {
    bytes = new Uint8Array(fp);
  } else if (Array.isArray(fp)) {
    if (!fp.every((b) => Number.isInteger(b) && b >= 0 && b <= 255)) {
      throw new FastnetError("INVALID_OPTION", "fingerprint array must hold integers 0..255");
    }
    bytes = Uint8Array.from(fp);
  } else {
    throw new FastnetError("INVALID_OPTION", `fingerprint must be a string, Uint8Array or number[], got ${typeof fp}`);
  }
  if (bytes.length !== FINGERPRINT_LENGTH) {
    throw new FastnetError(
      "INVALID_OPTION",
      `fingerprint must be ${FINGERPRINT_LENGTH} bytes (SHA-256), got ${bytes.length}`,
    );
  }
  return bytes;
}

/** Uppercase colon-separated hex, the format of node's X509Certificate.fingerprint256. */
export function formatFingerprint(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0").toUpperCase()).join(":");
}
