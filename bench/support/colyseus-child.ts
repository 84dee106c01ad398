/**
 * For the Colyseus server children (bench/support/room-server.ts, migration-server.ts): a @colyseus/core
 * `Server` (greet off) with one room, on 127.0.0.1 with an OS-chosen port, reported "ready" over IPC.
 */
import type { AddressInfo } from "node:net";
import { Server, type Room } from "@colyseus/core";
import { WebSocketTransport } from "@colyseus/ws-transport";
import { FastnetTransport, type FastnetTransportOptions } from "../../src/index.js";
import type { ChildMessage } from "./child-server.js";

const HOST = "127.0.0.1";

/**
 * The transport a child's command line names: "fastnet" or "ws-transport" (anything else throws);
 * `fastnetOptions` for the fastnet one (the default options without).
 */
export function transportOfKind(kind: string | undefined, fastnetOptions: FastnetTransportOptions = {}): FastnetTransport | WebSocketTransport {
  if (kind === "fastnet") return new FastnetTransport(fastnetOptions);
  if (kind === "ws-transport") return new WebSocketTransport();
  throw new Error(`unknown transport ${String(kind)}`);
}

/** Starts the server with `room` defined as `roomName` on `transport`, then sends "ready" (port, UDP port, AEAD). */
export async function listenColyseus(
  transport: FastnetTransport | WebSocketTransport,
  roomName: string,
  room: new () => Room,
  send: ((msg: ChildMessage) => void) | null,
): Promise<Server> {
  const server = new Server({ transport, greet: false });
  server.define(roomName, room);
  await server.listen(0, HOST);

  if (transport instanceof FastnetTransport) {
    send?.({ type: "ready", port: transport.engine.port, udpPort: transport.engine.udpPort, aead: transport.engine.aeadBackend });
  } else {
    const port = (transport.server!.address() as AddressInfo).port;
    send?.({ type: "ready", port, udpPort: 0 });
  }
  return server;
}
