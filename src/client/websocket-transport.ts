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
 * The SDK's own WebSocketTransport (send, close semantics, `isOpen`), for the WebSocket path. Its
 * socket is always `ws` (what the SDK itself uses in Node without a global WebSocket) rather than
 * Node's global WebSocket, for two reasons: a failed connection then says why ("self-signed
 * certificate", "Unexpected server response: 503", ECONNREFUSED) where the global one only reports
 * "network error or non-101 status code" and never closes; and `wss://` verifies with the client's
 * `tls` settings (trust anchors, servername), as its matchmaking requests and fastnet handshake do.
 */
export class SdkWebSocketTransport extends WebSocketTransport {
  constructor(
    events: TransportEvents,
    private readonly tls?: WebSocketTls,
  ) {
    super(events);
  }

  override connect(url: string, headers?: Record<string, string>): void {
    const { ca, rejectUnauthorized, servername } = this.tls ?? {};
    // `ws` hands `servername` on to tls.connect (its types omit it).
    const options: NodeWebSocket.ClientOptions & { servername?: string } = url.startsWith("wss:")
      ? { headers, ca, rejectUnauthorized, servername }
      : { headers };
    const ws = new NodeWebSocket(url, this.protocols, options);
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
