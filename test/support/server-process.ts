/**
 * A Colyseus server with FastnetTransport in its own process, for tests where the process boundary
 * is the point (devMode restarts, several processes on one Redis). Configured by environment:
 * PORT (default 0), HOST (default 127.0.0.1), DEVMODE=1, REDIS_URL (RedisPresence + RedisDriver),
 * PUBLIC_ADDRESS. Prints one line `READY {"port":..,"processId":..,"fingerprint":..}` on stdout when
 * listening. Rooms: "echo" (echoes "echo" messages, keeps seats 30 s on a drop) and "hold" (same,
 * created by the "reserve" message of an echo room's client: see below). Exits on SIGTERM through
 * Colyseus' graceful shutdown.
 */
import { Room, Server, matchMaker, type Client } from "@colyseus/core";
import { FastnetTransport } from "../../src/index.js";

class EchoRoom extends Room {
  override onCreate(): void {
    this.onMessage("echo", (client, msg) => client.send("echo", msg));
    // A seat made on the server, as a lobby would hand it to a player: a fresh "echo" room's reservation.
    this.onMessage("reserve", async (client) => {
      const room = await matchMaker.createRoom("echo", {});
      client.send("reservation", await matchMaker.reserveSeatFor(room, {}));
    });
    this.onMessage("where", (client) => client.send("where", { processId: matchMaker.processId, roomId: this.roomId }));
  }

  override async onDrop(client: Client): Promise<void> {
    await this.allowReconnection(client, 30);
  }
}

const port = Number(process.env.PORT ?? 0);
const host = process.env.HOST ?? "127.0.0.1";
const devMode = process.env.DEVMODE === "1";

async function main(): Promise<void> {
  let presence: unknown;
  let driver: unknown;
  if (process.env.REDIS_URL) {
    const { RedisPresence } = await import("@colyseus/redis-presence");
    const { RedisDriver } = await import("@colyseus/redis-driver");
    presence = new RedisPresence(process.env.REDIS_URL);
    driver = new RedisDriver(process.env.REDIS_URL);
  }
  const transport = new FastnetTransport();
  const server = new Server({
    transport,
    devMode,
    greet: false,
    presence: presence as never,
    driver: driver as never,
    publicAddress: process.env.PUBLIC_ADDRESS,
  });
  server.define("echo", EchoRoom);
  await server.listen(port, host);
  const fp = transport.engine.fingerprint;
  process.stdout.write(
    `READY ${JSON.stringify({ port: transport.engine.port, processId: matchMaker.processId, fingerprint: fp ? Buffer.from(fp).toString("hex") : null })}\n`,
  );
}

main().catch((err: unknown) => {
  process.stderr.write(`server-process failed: ${(err as Error)?.stack ?? String(err)}\n`);
  process.exit(1);
});
