/** colyseus-fastnet/client: connect to a fastnet server from Node. */
export { connect, FastnetClientSession, type ConnectOptions } from "./node/client.js";
export { FastnetSession, ReadyState, type SessionEvents } from "./node/session.js";
export { FastnetError, type FastnetErrorCode } from "./protocol/errors.js";
export { CloseCode } from "./protocol/connection.js";
export type { ConnectionStats } from "./protocol/stats.js";
