import { X509Certificate, createHash, timingSafeEqual } from "node:crypto";
import http from "node:http";
import https from "node:https";
import { isIP } from "node:net";
import { performance } from "node:perf_hooks";
import type { Duplex } from "node:stream";
import tls from "node:tls";
import createDebug from "debug";
import { FastnetError } from "../protocol/errors.js";
import { CID_LENGTH, EXPORTER_LABEL, EXPORTER_LENGTH, PROTOCOL_VERSION, exporterContext } from "../protocol/version.js";
import { formatFingerprint, parseFingerprint } from "./fingerprint.js";
import {
  MessageReader,
  RESET_TOKEN_LENGTH,
  decodeBase64,
  encodeHandshakeMessage,
  parseClientHello,
  parseServerResponse,
  type ClientHello,
  type TransportParams,
} from "./handshake-messages.js";
import { DEFAULT_HANDSHAKE_PATH, DEV_CERTIFICATE_HEADER, FASTNET_UPGRADE } from "./handshake-server.js";

const log = createDebug("fastnet:handshake");
/** The ServerReject code of a full server (and the HTTP status of a busy one). */
const SERVICE_UNAVAILABLE = 503;

/** SERVER_BUSY errors of a server that refused the session because it is full (maxSessions). */
const fullServerRejects = new WeakSet<object>();

/**
 * True for the SERVER_BUSY of a full server (its ServerReject 503), as opposed to a 503 to the HTTP
 * upgrade (a handshake queue over its bound, a transient burst): connect() does not retry it.
 */
export function isFullServerReject(err: unknown): boolean {
  return typeof err === "object" && err !== null && fullServerRejects.has(err);
}

export interface HandshakeOptions {
  /** Server base URL, "http://host:port" (or https: the upgrade then runs over TLS too); a path in it is prefixed to `path`. */
  url: string;
  /** Upgrade path (default "/.fastnet"). */
  path?: string;
  /** ClientHello to send once TLS is up. */
  hello: Omit<ClientHello, "v">;
  /** Trust anchors replacing the default CA store, as in node:tls. */
  ca?: string | string[] | Buffer;
  /** Verify the certificate chain and name (default true). false without a pin accepts any certificate. */
  rejectUnauthorized?: boolean;
  /** SHA-256 of the server certificate's DER; when given, this pin replaces chain and name verification. */
  fingerprint?: Uint8Array;
  /**
   * With no `fingerprint`, pin the dev certificate the server announces in its 101 response: the same
   * trust as the fingerprint of a matchmaking response, for seat reservations that carry none.
   */
  pinAnnouncedFingerprint?: boolean;
  /** SNI and name to verify; defaults to the URL's host when that is a DNS name. Ignored for IP literals. */
  servername?: string;
  /** Everything up to the server's answer must happen within this. */
  timeoutMs: number;
}

/** What the server granted, the keys it implies, and a handle on the still-open TLS connection. */
export interface ClientHandshake {
  accept: {
    cid: Uint8Array;
    udpPort: number;
    /** accept.udpHost, or else the host the client connected to. */
    udpHost: string;
    resetToken: Uint8Array;
    params: TransportParams;
  };
  /** EXPORTER_LENGTH bytes exported from TLS with the CID as context. */
  keyingMaterial: Uint8Array;
  /** From writing the hello to reading the answer. */
  rttMs: number;
  /** TLS version negotiated, e.g. "TLSv1.3". */
  protocol: string;
  /** Destroys the TLS connection (the server then sees its pending handshake close). */
  close(): void;
  /** Resolves when the TLS connection ends, normally when the server calls finish() after the UDP bind. */
  closed: Promise<void>;
}

/**
 * Verify codes node reports from OpenSSL's chain verification (plus its own name check). Any other TLS error is a
 * protocol or transport failure, so it becomes HANDSHAKE_FAILED; an unknown verify code still fails, only under
 * the less specific code.
 */
const CERT_ERROR_CODES = new Set([
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_CRL",
  "UNABLE_TO_DECRYPT_CERT_SIGNATURE",
  "UNABLE_TO_DECRYPT_CRL_SIGNATURE",
  "UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY",
  "CERT_SIGNATURE_FAILURE",
  "CRL_SIGNATURE_FAILURE",
  "CERT_NOT_YET_VALID",
  "CERT_HAS_EXPIRED",
  "CRL_NOT_YET_VALID",
  "CRL_HAS_EXPIRED",
  "ERROR_IN_CERT_NOT_BEFORE_FIELD",
  "ERROR_IN_CERT_NOT_AFTER_FIELD",
  "ERROR_IN_CRL_LAST_UPDATE_FIELD",
  "ERROR_IN_CRL_NEXT_UPDATE_FIELD",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "CERT_CHAIN_TOO_LONG",
  "CERT_REVOKED",
  "INVALID_CA",
  "PATH_LENGTH_EXCEEDED",
  "INVALID_PURPOSE",
  "CERT_UNTRUSTED",
  "CERT_REJECTED",
  "HOSTNAME_MISMATCH",
  "ERR_TLS_CERT_ALTNAME_INVALID",
]);

/**
 * Name check of node:tls, except that IP literals are matched by OpenSSL (X509_check_ip) against the IP SANs:
 * node 22.23.1+ runs the host through domainToASCII before its IP test, which turns "::1" into "" and so fails
 * every IPv6 literal (nodejs/node#64144).
 */
function checkServerIdentity(hostname: string, cert: tls.PeerCertificate): Error | undefined {
  if (isIP(hostname) === 0) return tls.checkServerIdentity(hostname, cert);
  if (new X509Certificate(cert.raw).checkIP(hostname) !== undefined) return undefined;
  const err = new Error(`IP: ${hostname} is not in the cert's list: ${cert.subjectaltname ?? "(no subject alternative names)"}`);
  return Object.assign(err, { code: "ERR_TLS_CERT_ALTNAME_INVALID" });
}

/**
 * Upgrades an HTTP connection to fastnet/2, runs TLS 1.3 over it, sends the ClientHello and reads the answer.
 * Rejects with FastnetError: CERTIFICATE_REJECTED, HANDSHAKE_FAILED, HANDSHAKE_TIMEOUT, SERVER_BUSY or INVALID_OPTION;
 * on any failure every socket and timer it made is gone.
 */
export async function performHandshake(o: HandshakeOptions): Promise<ClientHandshake> {
  let url: URL;
  try {
    url = new URL(o.url);
  } catch {
    throw new FastnetError("INVALID_OPTION", `url is not a valid URL: ${JSON.stringify(o.url)}`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new FastnetError("INVALID_OPTION", `url must be http://host:port or https://host:port, got ${o.url}`);
  }
  // https: the upgrade request itself runs over TLS (matchmaking on an https server); fastnet's own
  // TLS 1.3 handshake then runs inside it, as over plain http.
  const secure = url.protocol === "https:";
  if (!(o.timeoutMs > 0)) throw new FastnetError("INVALID_OPTION", `timeoutMs must be positive, got ${o.timeoutMs}`);
  const host = url.hostname.replace(/^\[(.*)\]$/, "$1"); // WHATWG keeps IPv6 brackets; sockets want them off
  const port = url.port === "" ? (secure ? 443 : 80) : Number(url.port);
  const path = url.pathname.replace(/\/+$/, "") + (o.path ?? DEFAULT_HANDSHAKE_PATH);
  let pin = o.fingerprint !== undefined ? parseFingerprint(o.fingerprint) : undefined;
  const servername = o.servername !== undefined && isIP(o.servername) === 0 ? o.servername : isIP(host) === 0 ? host : undefined;
  // Checked and encoded before any I/O: a hello the server would drop as malformed fails here, by name.
  let helloMsg: ClientHello;
  try {
    helloMsg = parseClientHello({ ...o.hello, v: PROTOCOL_VERSION });
  } catch (err) {
    throw new FastnetError("INVALID_OPTION", (err as Error).message.replace(/^invalid client hello/, "invalid hello option"));
  }
  const hello = encodeHandshakeMessage(helloMsg);

  return new Promise<ClientHandshake>((resolve, reject) => {
    let settled = false;
    let raw: Duplex | undefined;
    let socket: tls.TLSSocket | undefined;

    const fail = (err: FastnetError): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      log("handshake with %s failed: %s", o.url, err.message);
      req.destroy();
      socket?.destroy();
      raw?.destroy();
      reject(err);
    };

    const timer = setTimeout(
      () => fail(new FastnetError("HANDSHAKE_TIMEOUT", `handshake with ${o.url} timed out after ${o.timeoutMs} ms`)),
      o.timeoutMs,
    );

    const request = {
      hostname: host,
      port,
      path,
      method: "GET",
      agent: false, // a fresh connection that belongs to this handshake alone
      headers: { Connection: "Upgrade", Upgrade: FASTNET_UPGRADE },
    } as const;
    const req = secure
      ? https.request({ ...request, ca: o.ca, rejectUnauthorized: o.rejectUnauthorized ?? true, servername })
      : http.request(request);

    req.on("error", (err: NodeJS.ErrnoException) => {
      const message =
        err.code === "ECONNREFUSED"
          ? `connection to ${host}:${port} refused (ECONNREFUSED)`
          : `HTTP upgrade request to ${o.url} failed: ${err.message}${err.code ? ` (${err.code})` : ""}`;
      fail(new FastnetError("HANDSHAKE_FAILED", message, { cause: err }));
    });

    req.on("response", (res) => {
      res.resume();
      if (res.statusCode === 503) {
        fail(new FastnetError("SERVER_BUSY", `server ${o.url} is busy (HTTP 503), try again later`));
      } else {
        fail(new FastnetError("HANDSHAKE_FAILED", `expected HTTP 101 from ${url.origin}${path}, got ${res.statusCode}`));
      }
    });

    req.on("upgrade", (res, upgraded, head) => {
      raw = upgraded;
      upgraded.on("error", (err) => log("upgraded socket error: %s", err.message));
      if (settled) {
        upgraded.destroy();
        return;
      }
      if (res.headers.upgrade?.trim().toLowerCase() !== FASTNET_UPGRADE) {
        fail(new FastnetError("HANDSHAKE_FAILED", `server upgraded to ${JSON.stringify(res.headers.upgrade)}, not ${FASTNET_UPGRADE}`));
        return;
      }
      if (head.length > 0) upgraded.unshift(head);
      const announced = res.headers[DEV_CERTIFICATE_HEADER];
      if (pin === undefined && o.pinAnnouncedFingerprint && typeof announced === "string") {
        try {
          pin = parseFingerprint(announced);
        } catch {
          log("ignoring a malformed %s header", DEV_CERTIFICATE_HEADER);
        }
      }
      const verify = pin === undefined && o.rejectUnauthorized !== false;
      if (pin === undefined && !verify) log("rejectUnauthorized is false and no pin is set: the server certificate is not verified");
      socket = tls.connect({
        socket: upgraded,
        // The name to verify, stated outright: node would otherwise fall back to the wrapped socket's private _host,
        // or to "localhost" for a socket that has none.
        host: servername ?? host,
        servername,
        minVersion: "TLSv1.3",
        ca: o.ca,
        rejectUnauthorized: verify,
        checkServerIdentity,
      });
      onTls(socket);
    });

    const onTls = (t: tls.TLSSocket): void => {
      const reader = new MessageReader();
      let sentAt = 0;
      let resolveClosed!: () => void;
      const closed = new Promise<void>((r) => (resolveClosed = r));

      t.on("error", (err: NodeJS.ErrnoException) => {
        if (settled) {
          log("TLS error after the handshake: %s", err.message);
          return;
        }
        const code = err.code ?? "";
        if (CERT_ERROR_CODES.has(code)) {
          const check = code === "ERR_TLS_CERT_ALTNAME_INVALID" ? "name" : "CA";
          fail(new FastnetError("CERTIFICATE_REJECTED", `certificate rejected by ${check} verification: ${err.message} (${code})`, { cause: err }));
        } else {
          // OpenSSL's messages carry file and line; its short reason reads better.
          const reason = (err as { reason?: unknown }).reason;
          const text = typeof reason === "string" ? reason : err.message;
          fail(new FastnetError("HANDSHAKE_FAILED", `TLS with ${o.url} failed: ${text}${code ? ` (${code})` : ""}`, { cause: err }));
        }
      });

      t.on("secureConnect", () => {
        if (pin !== undefined) {
          // The pin is checked before the hello goes out, so nothing of ours reaches an impostor.
          const der = t.getPeerX509Certificate()?.raw;
          const presented = der ? new Uint8Array(createHash("sha256").update(der).digest()) : undefined;
          if (!presented || !timingSafeEqual(presented, pin)) {
            fail(
              new FastnetError(
                "CERTIFICATE_REJECTED",
                `certificate fingerprint mismatch: pinned ${formatFingerprint(pin)} but server presented ${presented ? formatFingerprint(presented) : "no certificate"}`,
              ),
            );
            return;
          }
        } else if (!t.authorized) {
          log("continuing with an unverified certificate (%s) as rejectUnauthorized is false", t.authorizationError);
        }
        sentAt = performance.now();
        t.write(hello);
      });

      const onEnd = (): void => {
        resolveClosed();
        fail(new FastnetError("HANDSHAKE_FAILED", `server ${o.url} closed the TLS connection before answering`));
      };
      t.on("end", onEnd);
      t.on("close", onEnd);

      t.on("data", (chunk: Buffer) => {
        if (settled) {
          log("ignoring %d unexpected bytes after the answer", chunk.length);
          t.destroy();
          return;
        }
        let answer;
        try {
          const messages = reader.push(chunk);
          if (messages.length === 0) return;
          if (messages.length > 1) throw new FastnetError("HANDSHAKE_FAILED", "server sent more than one answer");
          answer = parseServerResponse(messages[0]);
        } catch (err) {
          fail(err as FastnetError);
          return;
        }
        if ("error" in answer) {
          const code = answer.code !== undefined ? ` (code ${answer.code})` : "";
          // 503: the server is full (maxSessions): SERVER_BUSY, never a reason to try another path,
          // and not retried (a full server does not empty in the seconds a retry waits).
          const named = answer.code === SERVICE_UNAVAILABLE ? "SERVER_BUSY" : "HANDSHAKE_FAILED";
          const err = new FastnetError(named, `server rejected the handshake: ${answer.error}${code}`);
          if (named === "SERVER_BUSY") fullServerRejects.add(err);
          fail(err);
          return;
        }
        const rttMs = performance.now() - sentAt;
        const cid = decodeBase64(answer.cid, CID_LENGTH, "cid");
        const resetToken = decodeBase64(answer.resetToken, RESET_TOKEN_LENGTH, "resetToken");
        const keys = t.exportKeyingMaterial(EXPORTER_LENGTH, EXPORTER_LABEL, Buffer.from(exporterContext(cid)));
        settled = true;
        clearTimeout(timer);
        log("accepted by %s: udp %s:%d, rtt %d ms", o.url, answer.udpHost ?? host, answer.udpPort, rttMs.toFixed(1));
        resolve({
          accept: { cid, udpPort: answer.udpPort, udpHost: answer.udpHost ?? host, resetToken, params: answer.params },
          keyingMaterial: new Uint8Array(keys),
          rttMs,
          protocol: t.getProtocol() ?? "unknown",
          close: () => t.destroy(),
          closed,
        });
      });
    };

    req.end();
  });
}
