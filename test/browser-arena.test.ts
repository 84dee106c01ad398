/**
 * The arena in a real browser: Debian's headless Chromium (driven by playwright-core) opens the page
 * the arena server serves at `/`, whose plain @colyseus/sdk browser build joins over WebSocket the
 * room in which Node FastnetClient bots play over UDP. Both sides see each other, `@unreliable`
 * positions included, chat flows both ways, and closing the page makes the room see the player leave.
 */
import assert from "node:assert/strict";
import type { Browser, BrowserContext, Page } from "playwright-core";
import type { Room as SdkRoom } from "@colyseus/sdk";
import { startBots, type ArenaBot } from "../examples/arena/bot.js";
import { launchChromium } from "../examples/arena/chromium.js";
import { startArenaServer, type ArenaServer } from "../examples/arena/server.js";
import type { ArenaState, ChatMessage } from "../examples/arena/state.js";
import { waitFor, within } from "./support/colyseus-harness.js";

/** What arena.js exposes as `window.arena` (the part the tests read). */
interface PageView {
  phase: string;
  sessionId: string | null;
  room: { roomId: string } | null;
  chats: ChatMessage[];
  players(): { sessionId: string; name: string; x: number; y: number; path: string; rtt: number; connected: boolean }[];
}
type PagePlayer = ReturnType<PageView["players"]>[number];
/**
 * The page's `window.arena`: named only inside the functions given to page.evaluate and
 * page.waitForFunction, which run in the page.
 */
declare const arena: PageView;

/** The bound: each side sees the other, positions moving, within 2 s of the page's join. */
const SEE_EACH_OTHER_MS = 2000;
const BOTS = 2;

describe("Arena in a browser (headless Chromium, WebSocket) with UDP bots", function () {
  this.timeout(20_000);

  let browser: Browser | undefined;
  let context: BrowserContext | undefined;
  let server: ArenaServer | undefined;
  let bots: ArenaBot[] = [];
  let pageErrors: string[] = [];

  before(async () => {
    browser = await within(launchChromium(), 15_000, "launch chromium");
  });

  after(async () => {
    await browser?.close();
    browser = undefined;
  });

  beforeEach(async () => {
    pageErrors = [];
    server = await within(startArenaServer({ port: 0, host: "127.0.0.1" }), 10_000, "arena server listen");
    // The bots' own chatter is off (one line per 10 minutes at most): the chat test says what it expects.
    bots = await within(startBots(endpoint(), BOTS, { chatEveryMs: 600_000 }), 10_000, "bots join");
    context = await browser!.newContext();
  });

  afterEach(async () => {
    await context?.close();
    context = undefined;
    await Promise.all(bots.map((b) => b.stop()));
    bots = [];
    await server?.server.gracefullyShutdown(false);
    server = undefined;
  });

  function endpoint(): string {
    return `http://127.0.0.1:${server!.port}`;
  }

  /** Opens the arena page as `name` and waits for its join; fails on any error the page throws. */
  async function openPage(name: string): Promise<{ page: Page; sessionId: string }> {
    const page = await context!.newPage();
    page.on("pageerror", (err) => pageErrors.push(err.message));
    const response = await page.goto(`${endpoint()}/?name=${encodeURIComponent(name)}`);
    assert.equal(response?.status(), 200, "the server serves the page at /");
    await page.waitForFunction(() => arena.phase !== "connecting", null, { timeout: 10_000 });
    const phase = await page.evaluate(() => arena.phase);
    assert.equal(phase, "joined", `the page joined the arena (status: ${await page.textContent("#status")})`);
    const sessionId = await page.evaluate(() => arena.sessionId);
    assert.ok(sessionId);
    return { page, sessionId };
  }

  function botRoom(i: number): SdkRoom<unknown, ArenaState> {
    const room = bots[i]!.room;
    assert.ok(room, `bot ${i} is in the room`);
    return room as SdkRoom<unknown, ArenaState>;
  }

  it("joins the bots' room over WebSocket; each side sees the other and its @unreliable position move within 2 s", async () => {
    const { page, sessionId } = await openPage("chromium");
    const joinedAt = performance.now();

    // Same room, and the server knows which path each player is on.
    assert.equal(await page.evaluate(() => arena.room?.roomId), botRoom(0).roomId, "the page is in the bots' room");
    assert.equal(server!.transport.webSocket?.stats.joins, 1, "the page's connection is a WebSocket room connection");

    // Page side: every bot present, on UDP, and its position changes after the join (bots always move).
    const botIds = bots.map((_, i) => botRoom(i).sessionId);
    const firstSeen = await page.evaluate((ids) => ids.map((id) => arena.players().find((p) => p.sessionId === id) ?? null), botIds);
    firstSeen.forEach((p, i) => assert.ok(p, `the page sees bot ${i} at once (full state on join)`));
    await page.waitForFunction(
      (first) =>
        first.every((f) => {
          const now = arena.players().find((p) => p.sessionId === f!.sessionId);
          return now !== undefined && now.path === "UDP" && (now.x !== f!.x || now.y !== f!.y);
        }),
      firstSeen,
      { timeout: Math.max(SEE_EACH_OTHER_MS - (performance.now() - joinedAt), 1), polling: 10 },
    );

    // Bot side: the page's player is there, on WebSocket; the keyboard moves it, and the bots see it move.
    await waitFor(() => bots.every((_, i) => botRoom(i).state.players?.has(sessionId)), SEE_EACH_OTHER_MS, "the bots see the page's player");
    const start = botRoom(0).state.players.get(sessionId)!;
    const from = { x: start.x, y: start.y };
    for (const [i] of bots.entries()) assert.equal(botRoom(i).state.players.get(sessionId)!.path, "WebSocket");
    // Towards the middle, so the move is not clamped away at an edge.
    const key = from.x > 400 ? "ArrowLeft" : "ArrowRight";
    await page.keyboard.down(key);
    try {
      await waitFor(
        () =>
          bots.every((_, i) => {
            const p = botRoom(i).state.players.get(sessionId);
            return p !== undefined && Math.abs(p.x - from.x) >= 5;
          }),
        Math.max(SEE_EACH_OTHER_MS - (performance.now() - joinedAt), 1),
        "the bots see the page's player move",
        () => `from x=${from.x}, now ${bots.map((_, i) => botRoom(i).state.players.get(sessionId)?.x).join(", ")}`,
      );
    } finally {
      await page.keyboard.up(key);
    }
    assert.ok(performance.now() - joinedAt <= SEE_EACH_OTHER_MS, "both sides within 2 s of the join");

    // Each player's RTT, as the server measures it, reaches the page (once a second at most).
    await page.waitForFunction(() => arena.players().length === 3 && arena.players().every((p: PagePlayer) => p.rtt > 0), null, { timeout: 5000 });
    assert.deepEqual(pageErrors, []);
  });

  it("chat flows both ways between the page (typed and sent with Enter) and the UDP bots", async () => {
    const { page, sessionId } = await openPage("chatty");
    const received: ChatMessage[][] = bots.map(() => []);
    bots.forEach((_, i) => botRoom(i).onMessage("chat", (m: ChatMessage) => received[i]!.push(m)));

    // Page -> bots, through the chat box.
    const fromPage = `hello from chromium ${Math.random().toString(36).slice(2)}`;
    await page.fill("#chat-input", fromPage);
    await page.press("#chat-input", "Enter");
    await waitFor(
      () => received.every((list) => list.some((m) => m.text === fromPage)),
      5000,
      "every bot gets the page's chat line",
      () => JSON.stringify(received),
    );
    for (const list of received) assert.deepEqual(list.find((m) => m.text === fromPage), { from: "chatty", sessionId, text: fromPage });

    // Bot -> page: in the page's state and on screen.
    const fromBot = `hello from UDP ${Math.random().toString(36).slice(2)}`;
    botRoom(1).send("chat", { text: fromBot });
    await page.waitForFunction((text) => arena.chats.some((m) => m.text === text), fromBot, { timeout: 5000 });
    const line = await page.evaluate((text) => arena.chats.find((m) => m.text === text), fromBot);
    assert.deepEqual(line, { from: bots[1]!.name, sessionId: botRoom(1).sessionId, text: fromBot });
    assert.match((await page.textContent("#chat-log")) ?? "", new RegExp(`${bots[1]!.name}: ${fromBot}`));
    assert.deepEqual(pageErrors, []);
  });

  it("closing the page makes the room see the browser player leave (not merely drop)", async () => {
    const { page, sessionId } = await openPage("leaver");
    await waitFor(() => bots.every((_, i) => botRoom(i).state.players?.has(sessionId)), 5000, "the bots see the page's player");
    assert.equal(server!.transport.webSocket?.openCount, 1);

    await page.close();
    // A dropped player would stay in the state (connected: false) for its 20 s reconnection window;
    // the room removes a player only in onLeave.
    await waitFor(
      () => bots.every((_, i) => !botRoom(i).state.players.has(sessionId)),
      5000,
      "the room removes the page's player",
      () => `still there: ${JSON.stringify(botRoom(0).state.players.get(sessionId)?.toJSON())}`,
    );
    assert.equal(server!.transport.webSocket?.openCount, 0, "the WebSocket is closed");
    assert.equal(botRoom(0).state.players.size, BOTS, "the bots play on");
    assert.deepEqual(pageErrors, []);
  });
});

