/**
 * A TCP relay for tests: forwards every connection to a loopback port, and can make the connections
 * it carries go silent without closing them (a network path that died: nothing arrives, no FIN, no
 * RST), while new connections through it work, as after a switch to another network.
 */
import { once } from "node:events";
import net from "node:net";

interface Flow {
  client: net.Socket;
  upstream: net.Socket;
  dead: boolean;
  /** The connection began with a WebSocket upgrade request. */
  webSocket: boolean;
}

export class TcpRelay {
  private readonly server = net.createServer((client) => this.onConnection(client));
  private readonly flows = new Set<Flow>();

  constructor(private readonly targetPort: number) {}

  /** Listens on 127.0.0.1 at an OS-chosen port, and returns it. */
  async listen(): Promise<number> {
    this.server.listen(0, "127.0.0.1");
    await once(this.server, "listening");
    return (this.server.address() as net.AddressInfo).port;
  }

  /** Connections carried so far (open or not). */
  connections = 0;

  /**
   * Every WebSocket connection open now goes silent both ways, closes included; later connections and
   * other (keep-alive HTTP) connections are not affected: a fetch pool's idle connection that died too
   * would stall the next request on it, which is not what these tests are about.
   */
  killWebSocketFlows(): void {
    for (const flow of this.flows) if (flow.webSocket) flow.dead = true;
  }

  /** Destroys every connection and stops listening. */
  async close(): Promise<void> {
    for (const flow of this.flows) {
      flow.client.destroy();
      flow.upstream.destroy();
    }
    this.flows.clear();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private onConnection(client: net.Socket): void {
    this.connections++;
    const upstream = net.connect(this.targetPort, "127.0.0.1");
    const flow: Flow = { client, upstream, dead: false, webSocket: false };
    this.flows.add(flow);
    client.once("data", (first: Buffer) => {
      flow.webSocket = /^upgrade:\s*websocket\s*$/im.test(first.toString("latin1"));
    });
    const pipe = (from: net.Socket, to: net.Socket) => {
      from.on("data", (data) => {
        if (!flow.dead) to.write(data);
      });
      from.on("close", () => {
        if (flow.dead) return; // a dead path carries no FIN either
        to.destroy();
        this.flows.delete(flow);
      });
      from.on("error", () => from.destroy());
    };
    pipe(client, upstream);
    pipe(upstream, client);
  }
}
