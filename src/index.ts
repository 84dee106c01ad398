/**
 * colyseus-fastnet, server entry: the Colyseus transport (FastnetTransport), and the encrypted UDP
 * engine it is built on (FastnetServer, sessions). The SDK client lives in "colyseus-fastnet/client".
 *
 * Every type a public signature here names is exported too (test/public-types.test.ts), and no name
 * is one @colyseus/core or @colyseus/sdk exports: the engine's close codes are `FastnetCloseCode`, its
 * endpoint options `FastnetEndpointOptions`.
 */
export { FastnetTransport, type FastnetTransportOptions, type FastnetTransportEvents, type PeerAddress } from "./server/fastnet-transport.js";
export { FastnetServerClient, type LatencySetting } from "./server/server-client.js";
export { WebSocketPath, type WebSocketOptions, type WebSocketStats, type WebSocketPathHost } from "./server/websocket-path.js";
export { WebSocketRoomClient, type WebSocketClientCounters, type WebSocketSendLimits } from "./server/websocket-client.js";
export { FastnetServer, type FastnetServerOptions, type SessionInfo, type EndpointStats, type DevCertificateInfo, type MigrationEvent } from "./node/server.js";
export { FastnetSession, ReadyState, type SessionEvents, type SessionIo } from "./node/session.js";
export { connect, FastnetClientSession, type ConnectOptions, type RebindOptions } from "./node/client.js";
export { generateDevCertificate, loadOrCreateDevCertificate, type DevCertificate, type DevCertificateOptions, type StoredDevCertificate } from "./node/dev-certificate.js";
export { certificateFingerprint, formatFingerprint, parseFingerprint } from "./node/fingerprint.js";
export { availableAeadBackends, selectAeadBackend } from "./node/aead-select.js";
export type { ClientHello } from "./node/handshake-messages.js";
export type { UpgradeTaker } from "./node/handshake-server.js";
export { FastnetError, type FastnetErrorCode } from "./protocol/errors.js";
export { FastnetOptionError } from "./node/option-keys.js";
export { CloseCode as FastnetCloseCode, type TransportParams, type Received as ReceiveVerdict } from "./protocol/connection.js";
export {
  DEFAULT_SESSION_OPTIONS,
  DEFAULT_ENDPOINT_OPTIONS,
  type SessionOptions,
  type EndpointOptions as FastnetEndpointOptions,
} from "./protocol/options.js";
export { PROTOCOL_VERSION } from "./protocol/version.js";
export type { PathAddress } from "./protocol/migration.js";
export type { ConnectionStats, DropCounters } from "./protocol/stats.js";
export type { AeadBackend, AeadBackendName, AeadKey } from "./protocol/aead.js";
