/**
 * Takes the README's screenshot of the arena in a browser: starts the arena server in this process,
 * opens the page in headless Chromium, lets three UDP bots join, plays a little (keyboard and chat),
 * and writes docs/img/arena.png (or the path given as the first argument).
 *
 *   node --import tsx examples/arena/screenshot.ts [out.png]
 *
 * Everything runs on loopback with OS-chosen ports; the process exits once all of it is closed.
 */
import { mkdir } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { Browser, Page } from "playwright-core";
import { startBots, type ArenaBot } from "./bot.js";
import { launchChromium } from "./chromium.js";
import { startArenaServer, type ArenaServer } from "./server.js";

const OUT = path.resolve(process.argv[2] ?? fileURLToPath(new URL("../../docs/img/arena.png", import.meta.url)));
const BOTS = 3;
/** Waits (at most this long) for a picture worth taking: every chat line in, every RTT measured, the players apart. */
const SCENE_WAIT_MS = 5000;
const SPREAD_DISTANCE = 45;

/** Holds `key` for `ms`. */
async function hold(page: Page, key: string, ms: number): Promise<void> {
  await page.keyboard.down(key);
  await new Promise((resolve) => setTimeout(resolve, ms));
  await page.keyboard.up(key);
}

/** What each bot says, so the chat shows a conversation (the bots' own chatter is switched off). */
const BOT_LINES = ["anyone else on UDP?", "that coin is mine", "lag? what lag"];

let arena: ArenaServer | undefined;
let bots: ArenaBot[] = [];
let browser: Browser | undefined;
try {
  arena = await startArenaServer({ port: 0, host: "127.0.0.1" });
  const url = `http://127.0.0.1:${arena.port}/`;
  browser = await launchChromium();
  const page = await browser.newPage({ viewport: { width: 1240, height: 700 } });
  page.on("pageerror", (err) => console.error(`page error: ${err.message}`));
  // The page joins first, then the bots: they spawn at random places, and the picture is taken while
  // they are still apart (once they have all run to the same coin, they bunch up).
  await page.goto(`${url}?name=you%20(browser)`);
  await page.waitForFunction(() => (globalThis as unknown as { arena?: { phase: string } }).arena?.phase === "joined", null, { timeout: 10_000 });
  bots = await startBots(url, BOTS, { chatEveryMs: 600_000 });
  bots.forEach((bot, i) => bot.room?.send("chat", { text: BOT_LINES[i % BOT_LINES.length] }));
  await page.fill("#chat-input", "hello from the browser, over WebSocket");
  await page.press("#chat-input", "Enter");
  await hold(page, "ArrowRight", 400);
  await hold(page, "KeyS", 300);
  await page
    .waitForFunction(
      ([minDistance, minChats]) => {
        const arena = (globalThis as unknown as { arena: { chats: unknown[]; players(): { x: number; y: number; rtt: number }[] } }).arena;
        const players = arena.players();
        return (
          arena.chats.length >= minChats &&
          players.every((p) => p.rtt > 0) &&
          players.every((a, i) => players.every((b, j) => i === j || Math.hypot(a.x - b.x, a.y - b.y) >= minDistance))
        );
      },
      [SPREAD_DISTANCE, BOTS + 1] as const,
      { timeout: SCENE_WAIT_MS, polling: 50 },
    )
    .catch(() => console.log("no moment with every player apart and measured; taking the screenshot anyway"));
  await mkdir(path.dirname(OUT), { recursive: true });
  await page.screenshot({ path: OUT });
  console.log(`wrote ${OUT}`);
} finally {
  await browser?.close();
  await Promise.all(bots.map((b) => b.stop()));
  await arena?.server.gracefullyShutdown(false);
}
