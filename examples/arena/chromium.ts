/**
 * Headless Chromium for the arena's screenshot script and the browser tests: the system's browser
 * (Debian's `chromium`) driven by playwright-core, which downloads no browser of its own.
 */
import { existsSync } from "node:fs";
import { chromium, type Browser } from "playwright-core";

/** The browser binary: CHROMIUM_PATH, else Debian's. */
export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";

/**
 * Flags for a quiet, self-contained headless run: no sandbox (tests run as root in containers), no
 * GPU, no QUIC (nothing here speaks HTTP/3), and no first-run, sync, update or background traffic.
 */
const FLAGS = [
  "--headless=new",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/**
 * Launches headless Chromium. Each launch gets a fresh, empty profile (playwright creates a temporary
 * user-data-dir and deletes it on close), so no state leaks between runs.
 */
export async function launchChromium(): Promise<Browser> {
  if (!existsSync(CHROMIUM_PATH)) {
    throw new Error(`no Chromium at ${CHROMIUM_PATH}: install it (apt-get install chromium) or set CHROMIUM_PATH`);
  }
  return chromium.launch({ executablePath: CHROMIUM_PATH, headless: true, args: FLAGS });
}
