/**
 * A minimal reverse proxy for tests: a TCP relay on loopback that adds one header line to the first
 * HTTP request of each connection (as a reverse proxy adds `X-Forwarded-For`) and then pipes both ways.
 */
import net from "node:net";

export class HeaderProxy {
  private readonly server: net.Server;
  private readonly sockets = new Set<net.Socket>();

  /** Forwards to `127.0.0.1:targetPort`, adding `headerLine` (e.g. "X-Forwarded-For: 203.0.113.7"). */
  constructor(
    private readonly targetPort: number,
    private readonly headerLine: string,
  ) {
    this.server = net.createServer((client) => this.onClient(client));
  }

  async listen(): Promise<number> {
    await new Promise<void>((resolve) => this.server.listen(0, "127.0.0.1", resolve));
    return (this.server.address() as net.AddressInfo).port;
  }

  private onClient(client: net.Socket): void {
    const upstream = net.connect(this.targetPort, "127.0.0.1");
    for (const s of [client, upstream]) {
      this.sockets.add(s);
      s.on("error", () => {});
      s.once("close", () => {
        this.sockets.delete(s);
        client.destroy();
        upstream.destroy();
      });
    }
    let head = Buffer.alloc(0);
    const onData = (chunk: Buffer): void => {
      head = Buffer.concat([head, chunk]);
      const eol = head.indexOf("\r\n");
      if (eol < 0) return;
      client.off("data", onData);
      // After the request line: the request's own headers follow, the added one among them.
      upstream.write(Buffer.concat([head.subarray(0, eol + 2), Buffer.from(`${this.headerLine}\r\n`), head.subarray(eol + 2)]));
      client.pipe(upstream);
      upstream.pipe(client);
    };
    client.on("data", onData);
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
