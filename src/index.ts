/**
 * colyseus-fastnet, server entry: the Colyseus transport (FastnetTransport), and the encrypted UDP
 * engine it is built on (FastnetServer, sessions). The SDK client lives in "colyseus-fastnet/client".
 */
export { FastnetTransport, type FastnetTransportOptions } from "./server/fastnet-transport.js";
export { FastnetServerClient } from "./server/server-client.js";
export { WebSocketPath, type WebSocketOptions, type WebSocketStats } from "./server/websocket-path.js";
export { WebSocketRoomClient } from "./server/websocket-client.js";
export { FastnetServer, type FastnetServerOptions, type SessionInfo, type EndpointStats, type DevCertificateInfo } from "./node/server.js";
export { FastnetSession, ReadyState, type SessionEvents } from "./node/session.js";
export { connect, FastnetClientSession, type ConnectOptions } from "./node/client.js";
export { generateDevCertificate, loadOrCreateDevCertificate, type DevCertificate, type StoredDevCertificate } from "./node/dev-certificate.js";
export { certificateFingerprint, formatFingerprint, parseFingerprint } from "./node/fingerprint.js";
export { availableAeadBackends, selectAeadBackend } from "./node/aead-select.js";
export { FastnetError, type FastnetErrorCode } from "./protocol/errors.js";
export { FastnetOptionError } from "./node/option-keys.js";
export { CloseCode, type TransportParams } from "./protocol/connection.js";
export { DEFAULT_SESSION_OPTIONS, DEFAULT_ENDPOINT_OPTIONS, type SessionOptions, type EndpointOptions } from "./protocol/options.js";
export type { ConnectionStats, DropCounters } from "./protocol/stats.js";
export type { AeadBackend, AeadBackendName } from "./protocol/aead.js";
