import NodeWebSocket from "ws";
import { WebSocketTransport } from "@colyseus/sdk/transport/WebSocketTransport";
import type { TransportEvents } from "./client-transport.js";

/** Certificate verification of a `wss://` room connection, as FastnetClient's `tls` option. */
export interface WebSocketTls {
  ca?: string | string[] | Buffer;
  rejectUnauthorized?: boolean;
  servername?: string;
}

/**
 * The room URL the SDK built for fastnet, as the same room over Colyseus' standard WebSocket path of
 * the dual-stack server: `fastnet://host:port/<processId>/<roomId>?..` becomes `ws://..` (and
 * `fastnets://` `wss://`); path and query (sessionId, reconnectionToken, skipHandshake) are kept.
 */
export function webSocketUrl(url: string): string {
  const m = /^fastnet(s?):\/\//.exec(url);
  if (!m) throw new TypeError(`not a fastnet room URL: ${url}`);
  return `ws${m[1]}://${url.slice(m[0].length)}`;
}

/**
 * The SDK's own WebSocketTransport (event wiring, close semantics, `isOpen`), for the WebSocket path.
 * One addition: a `wss://` connection with `tls` settings runs through `ws` with those settings
 * (node:https options), because the global WebSocket takes no trust anchors; the matchmaking requests
 * of the same FastnetClient verify with the same settings.
 */
export class SdkWebSocketTransport extends WebSocketTransport {
  constructor(
    events: TransportEvents,
    private readonly tls?: WebSocketTls,
  ) {
    super(events);
  }

  override connect(url: string, headers?: Record<string, string>): void {
    if (!this.tls || !url.startsWith("wss:")) {
      super.connect(url, headers);
      return;
    }
    const { ca, rejectUnauthorized, servername } = this.tls;
    // `ws` hands `servername` on to tls.connect (its types omit it).
    const tlsOptions: NodeWebSocket.ClientOptions & { servername?: string } = { headers, ca, rejectUnauthorized, servername };
    const ws = new NodeWebSocket(url, this.protocols, tlsOptions);
    ws.binaryType = "arraybuffer";
    ws.onopen = (ev) => this.events.onopen?.(ev);
    ws.onmessage = (ev) => this.events.onmessage?.(ev);
    ws.onclose = (ev) => this.events.onclose?.(ev);
    ws.onerror = (ev) => this.events.onerror?.(ev);
    this.ws = ws;
  }

  /** Bytes queued on the socket and not yet sent. */
  get bufferedAmount(): number {
    return this.ws?.bufferedAmount ?? 0;
  }

  /** Closes without waiting for the peer and without any further event (an abandoned attempt). */
  abandon(): void {
    const ws = this.ws;
    if (!ws) return;
    ws.onopen = ws.onmessage = ws.onclose = null;
    // The socket may still report an error while it goes: swallow it.
    ws.onerror = () => {};
    try {
      ws.close();
    } catch {
      // already closed
    }
  }
}
