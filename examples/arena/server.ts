/**
 * The arena server: Colyseus over fastnet (encrypted UDP). Matchmaking and the TLS 1.3 handshake run
 * on TCP PORT, game traffic on UDP PORT. The same TCP port serves the browser view (public/, at `/`)
 * and Colyseus' standard WebSocket room connections, so browser players join the rooms the UDP
 * players are in.
 *
 * `Server` comes from the `colyseus` meta-package, as in most Colyseus projects; FastnetTransport goes where
 * its WebSocket transport would.
 *
 * Alone: `node --import tsx examples/arena/server.ts` (PORT, default 2567; HOST, default 127.0.0.1),
 * then point bots at it: `ENDPOINT=http://127.0.0.1:2567 node --import tsx examples/arena/bot.ts`.
 */
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { Server } from "colyseus";
import express from "express";
import { FastnetTransport } from "../../src/index.js";
import { ArenaRoom } from "./room.js";

export interface ArenaServer {
  server: Server;
  transport: FastnetTransport;
  port: number;
  host: string;
}

/** The browser page: index.html, arena.js, style.css. */
const PUBLIC_DIR = fileURLToPath(new URL("./public/", import.meta.url));
/** Where the page loads the SDK from (public/index.html names it). */
export const SDK_BUNDLE_PATH = "/vendor/colyseus.js";

/**
 * The `@colyseus/sdk` browser build (a UMD bundle defining the global `Colyseus`, schema decoder
 * included), served from node_modules: the page needs no CDN, and it is the SDK version the server
 * was tested with.
 */
function sdkBrowserBundle(): string {
  const pkg = createRequire(import.meta.url).resolve("@colyseus/sdk/package.json");
  return path.join(path.dirname(pkg), "dist", "colyseus.js");
}

/** Mounts the browser view on Colyseus' Express app: the SDK bundle and public/ (index.html at `/`). */
function serveBrowserView(app: express.Application): void {
  const bundle = sdkBrowserBundle();
  app.get(SDK_BUNDLE_PATH, (_req, res) => res.sendFile(bundle));
  app.use(express.static(PUBLIC_DIR));
}

export async function startArenaServer(options: { port?: number; host?: string } = {}): Promise<ArenaServer> {
  const port = options.port ?? Number(process.env.PORT ?? 2567);
  const host = options.host ?? process.env.HOST ?? "127.0.0.1";
  const transport = new FastnetTransport();
  // We stop on SIGINT/SIGTERM ourselves (bots first, then the server), so Colyseus installs no
  // signal handler of its own, and it prints no banner.
  const server = new Server({ transport, greet: false, gracefullyShutdown: false, express: serveBrowserView });
  server.define("arena", ArenaRoom);
  await server.listen(port, host);
  return { server, transport, port: transport.engine.port, host };
}

/** Stops on the first SIGINT/SIGTERM: rooms close their clients (4001), then the sockets close. */
export function stopOnSignal(stop: () => Promise<void>): void {
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (stopping) {
      // A second Ctrl-C while shutting down: give up waiting.
      process.exit(130);
    }
    stopping = true;
    console.log(`\n${signal}: shutting down`);
    stop().catch((err: unknown) => {
      console.error(err);
      process.exit(1);
    });
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
}

const isMain = process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href;
if (isMain) {
  const { server, transport, port, host } = await startArenaServer();
  console.log(`arena server: matchmaking and browser view http://${host}:${port}/, UDP ${transport.engine.udpPort}`);
  stopOnSignal(() => server.gracefullyShutdown(false));
}
