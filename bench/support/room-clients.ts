/**
 * Client sides of bench/room.ts: one @colyseus/sdk Room per transport, joined to the child's "bench"
 * room, all behind the same small interface so the measuring loop is identical for every transport.
 *   fastnet       FastnetClient (this package), pins the dev certificate the seat reservation publishes
 *   ws-transport  the SDK's default `new Client(url)`: its WebSocketTransport, which uses
 *                 `globalThis.WebSocket` when there is one (Node 22: undici's WebSocket), else `ws`
 */
import { Client, type Room } from "@colyseus/sdk";
import { FastnetClient } from "../../src/client.js";
import { selectAeadBackend } from "../../src/index.js";
import { withTimeout } from "./rtt-clients.js";

/** A joined room on a Colyseus server in a child process. */
export interface RoomClient {
  /** Which WebSocket implementation (ws-transport) or AEAD/transport (fastnet) the client uses. */
  readonly detail: string;
  /** `room.send("ping", payload)`; the answer comes back through `onPong`. */
  send(payload: Uint8Array): void;
  /** Set by the measuring loop: called with the payload of each "pong". */
  onPong: ((payload: unknown) => void) | null;
  /** Set by the measuring loop: called when the room fails, drops or closes under it. */
  onFail: ((err: Error) => void) | null;
  /** The first failure, kept so a failure between blocks is not missed. */
  failed: Error | null;
  /** Leaves the room; bounded by its own timeout. */
  close(): Promise<void>;
}

const HOST = "127.0.0.1";

export type RoomTransportName = "fastnet" | "ws-transport";

export async function openRoomClient(name: RoomTransportName, port: number, timeoutMs: number): Promise<RoomClient> {
  const endpoint = `http://${HOST}:${port}`;
  const sdk = name === "fastnet" ? new FastnetClient(endpoint) : new Client(endpoint);
  const room: Room = await withTimeout(sdk.joinOrCreate("bench"), timeoutMs, `${name}: joinOrCreate("bench")`);
  let detail: string;
  if (name === "fastnet") {
    // The client's AEAD is "auto" (the session does not expose it): the same pick as selectAeadBackend("auto").
    detail = `FastnetClient, AEAD ${selectAeadBackend("auto").name}`;
  } else {
    const ws = (room.connection.transport as unknown as { ws?: object }).ws;
    const impl = ws && (globalThis as { WebSocket?: Function }).WebSocket && ws instanceof (globalThis as { WebSocket: Function }).WebSocket ? "globalThis.WebSocket (undici)" : "ws package";
    detail = `SDK Client, ${impl}`;
  }

  let closing = false;
  const client: RoomClient = {
    detail,
    onPong: null,
    onFail: null,
    failed: null,
    send: (payload) => room.send("ping", payload),
    close: async () => {
      if (closing) return;
      closing = true;
      await withTimeout(room.leave(true), timeoutMs, `${name}: leave`).catch(() => undefined);
    },
  };
  const fail = (err: Error): void => {
    client.failed ??= err;
    client.onFail?.(err);
  };
  room.onMessage("pong", (payload: unknown) => client.onPong?.(payload));
  room.onError((code, message) => fail(new Error(`${name}: room error ${code}${message ? `: ${message}` : ""}`)));
  room.onDrop((code, reason) => {
    if (!closing) fail(new Error(`${name}: connection dropped (code ${code}${reason ? `, ${reason}` : ""})`));
  });
  room.onLeave((code, reason) => {
    if (!closing) fail(new Error(`${name}: left the room (code ${code}${reason ? `, ${reason}` : ""})`));
  });
  return client;
}
