import { randomFillSync } from "node:crypto";
import type http from "node:http";
import { generateDevCertificate, loadOrCreateDevCertificate } from "./dev-certificate.js";
import type { PathAddress } from "../protocol/migration.js";
import type { EndpointOptions, SessionOptions } from "../protocol/options.js";
import type { UpgradeTaker } from "./handshake-server.js";
import type { ClientHello } from "./handshake-messages.js";
import type { FastnetSession } from "./session.js";

/** The options and public types of FastnetServer (server.ts re-exports them), and what listen() derives from the options. */

export interface FastnetServerOptions extends Partial<SessionOptions>, Partial<EndpointOptions> {
  /**
   * PEM certificate chain and key. Without them listen() uses the dev certificate kept in
   * `devCertificateDir` (a self-signed one, made there on first use and reused across restarts).
   */
  tls?: { cert: string | Buffer; key: string | Buffer };
  /**
   * Where the dev certificate is kept when no `tls` is given (default `.fastnet` under the working
   * directory): restarts and every process started with the same directory present the same
   * certificate, so clients' pins keep working. `false`: a new in-memory certificate per listen().
   */
  devCertificateDir?: string | false;
  /** An existing HTTP server to run the handshake on (it is not listened on by us). */
  server?: http.Server;
  /** UDP port; defaults to the TCP port number. */
  udpPort?: number;
  /** UDP bind address; defaults to the host given to listen(), else all interfaces. */
  udpHost?: string;
  /** Address clients should send UDP to, when it differs from what they connected to (NAT, proxies). */
  publicAddress?: string;
  /** UDP port clients should send to, when a port mapping puts it elsewhere than the bound one. */
  publicPort?: number;
  /** Server id placed in every connection ID (QUIC-LB layout), 0 to 3 bytes (default none). */
  serverId?: Uint8Array;
  /** Upgrade path of the handshake (default "/.fastnet"). */
  handshakePath?: string;
  /**
   * What a WebSocket client is told when it reaches this server with no other 'upgrade' listener to
   * take it: it gets a WebSocket close 1008 with this reason (at most 123 bytes are sent).
   */
  webSocketRefusal?: string;
  /** Offered every Upgrade that is no fastnet handshake before it is refused (see HandshakeServerOptions.otherUpgrade). */
  otherUpgrade?: UpgradeTaker;
  /**
   * Secret behind stateless reset tokens and the keyed tag in every connection ID; it must survive a
   * restart for clients to learn of it at once. Default: derived from `tls.key` when given, else from
   * the stored dev certificate's key, else (`devCertificateDir: false`) random per process.
   */
  statelessResetKey?: string | Uint8Array;
  /** Stateless resets sent per second at most (default 100). */
  statelessResetsPerSecond?: number;
  /** Addresses validated at once per session (default 3). */
  maxCandidatePaths?: number;
  /** Migrations a session may start per `migrationWindowMs` (default 30 per 10 s). */
  maxMigrations?: number;
  migrationWindowMs?: number;
  /**
   * Decides whether a handshake may proceed, before a session is created (e.g. a seat reservation check).
   * Throw or reject to refuse: the client's connect fails with the error's message.
   */
  verifyHello?: (hello: ClientHello, remoteAddress: string) => void | Promise<void>;
}

/** Information about the client that opened a session. */
export interface SessionInfo {
  hello: ClientHello;
  /** The UDP address the session was bound from. */
  remoteAddress: string;
  /** The TCP peer of the handshake's HTTP Upgrade request (a reverse proxy, if there is one). */
  handshakeAddress: string;
  /** Proxy headers of the Upgrade request (see PendingHandshake.upgradeHeaders); never from the hello. */
  upgradeHeaders: Readonly<Record<string, string>>;
}

/** A validated move of a session to a new peer address. */
export interface MigrationEvent {
  session: FastnetSession;
  from: PathAddress;
  to: PathAddress;
}

/** Default `devCertificateDir`, relative to the working directory. */
export const DEFAULT_DEV_CERTIFICATE_DIR = ".fastnet";

/** Where a stored dev certificate is (see FastnetServer.devCertificate). */
export interface DevCertificateInfo {
  certPath: string;
  keyPath: string;
  /** True when this listen() generated it, false when it reused the stored one. */
  created: boolean;
  validTo: Date;
}

/**
 * The secret behind reset tokens and CID tags: `statelessResetKey`, else the TLS key (stable across
 * restarts), else random. Strings count as their UTF-8 bytes.
 */
export function longLivedSecret(options: FastnetServerOptions): Uint8Array {
  const given = options.statelessResetKey ?? options.tls?.key;
  if (given !== undefined && given.length > 0) return typeof given === "string" ? new TextEncoder().encode(given) : Uint8Array.from(given);
  return randomFillSync(new Uint8Array(32));
}

/**
 * The certificate listen() serves: the given `tls` one, else the dev certificate stored in
 * `devCertificateDir` (made there on first use), else (`devCertificateDir: false`) a new in-memory one.
 * `fingerprint` is what clients pin (null with `tls`); `stored` says where a stored one is.
 */
export async function serverCertificate(
  options: FastnetServerOptions,
): Promise<{ cert: string; key: string; fingerprint: Uint8Array | null; stored: DevCertificateInfo | null }> {
  const cert = options.tls?.cert?.toString();
  const key = options.tls?.key?.toString();
  if (cert && key) return { cert, key, fingerprint: null, stored: null };
  const dir = options.devCertificateDir ?? DEFAULT_DEV_CERTIFICATE_DIR;
  if (dir === false) {
    const dev = await generateDevCertificate();
    return { cert: dev.cert, key: dev.key, fingerprint: dev.fingerprint, stored: null };
  }
  const dev = await loadOrCreateDevCertificate(dir);
  const stored = { certPath: dev.certPath, keyPath: dev.keyPath, created: dev.created, validTo: dev.validTo };
  return { cert: dev.cert, key: dev.key, fingerprint: dev.fingerprint, stored };
}
