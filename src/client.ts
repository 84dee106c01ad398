/**
 * colyseus-fastnet/client: the @colyseus/sdk Client over fastnet (FastnetClient), and the engine's
 * client side for direct use.
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
export { FastnetClientTransport, type ClientPath, type PathChoice } from "./client/client-transport.js";
export { connect, FastnetClientSession, type ConnectOptions } from "./node/client.js";
export { FastnetSession, ReadyState, type SessionEvents } from "./node/session.js";
export { FastnetError, type FastnetErrorCode } from "./protocol/errors.js";
export { FastnetOptionError } from "./node/option-keys.js";
export { CloseCode } from "./protocol/connection.js";
export type { ConnectionStats } from "./protocol/stats.js";
