/**
 * colyseus-fastnet/client: the @colyseus/sdk Client over fastnet (FastnetClient), and the engine's
 * client side for direct use.
 *
 * Every type a public signature here names is exported too (test/public-types.test.ts), and no name
 * is one @colyseus/core or @colyseus/sdk exports: the engine's close codes are `FastnetCloseCode`.
 */
export {
  FastnetClient,
  FastnetJoinError,
  FastnetRoom,
  fastnetCodeOf,
  pathOf,
  transportOf,
  type FastnetClientOptions,
  type LatencyOptions,
} from "./client/fastnet-client.js";
export {
  FastnetClientTransport,
  type ClientPath,
  type ClientTransportContext,
  type PathChoice,
  type TransportEvents,
} from "./client/client-transport.js";
export { SdkWebSocketTransport, type WebSocketTls } from "./client/websocket-transport.js";
export { connect, FastnetClientSession, type ConnectOptions, type RebindOptions } from "./node/client.js";
export { FastnetSession, ReadyState, type SessionEvents, type SessionIo } from "./node/session.js";
export { FastnetError, type FastnetErrorCode } from "./protocol/errors.js";
export { FastnetOptionError } from "./node/option-keys.js";
export { CloseCode as FastnetCloseCode, type Received as ReceiveVerdict } from "./protocol/connection.js";
export type { SessionOptions, EndpointOptions as FastnetEndpointOptions } from "./protocol/options.js";
export type { ConnectionStats, DropCounters } from "./protocol/stats.js";
export type { AeadBackendName } from "./protocol/aead.js";
