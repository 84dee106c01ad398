/**
 * Plots bench/loss.ts results as an SVG line chart (no dependency: the SVG is written here, as in
 * bench/plot-scale.ts): loss % vs. reliable ping->pong round trip p99 (ms), one line per transport, each
 * point labelled with its value; the state age p99 of each transport (fastnet `@unreliable`, ws-transport
 * reliable positions) as a dashed line beside them.
 *
 * Usage: node --import tsx bench/plot-loss.ts <file> [out.svg]
 *   <file>    the output of `npm run bench:loss -- --json` (its last {"bench":"loss",...} line) or that JSON alone
 *   out.svg   default docs/img/loss.svg
 */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";

interface Row {
  transport: string;
  loss_pct: number;
  rel_p99_ms: number | null;
  state_age_p99_ms: number | null;
  positions?: string;
}

interface Series {
  name: string;
  color: string;
  dash?: string;
  points: { x: number; y: number }[];
}

const W = 640;
const H = 400;
const M = { left: 70, right: 45, top: 40, bottom: 90 };

/** The loss results in `text`: its last line that parses as {"bench":"loss",...}. */
function readResults(text: string): Row[] {
  for (const line of text.trim().split("\n").reverse()) {
    try {
      const v = JSON.parse(line) as { bench?: string; results?: Row[] };
      if (v.bench === "loss" && Array.isArray(v.results)) return v.results;
    } catch {
      // not the JSON line
    }
  }
  throw new Error('no {"bench":"loss",...} JSON line found');
}

/** A "nice" upper bound for an axis: 1, 2 or 5 times a power of ten, at least `v`. */
function niceMax(v: number): number {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 1.5, 2, 3, 4, 5, 6, 8, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

const esc = (s: string): string => s.replace(/&/g, "&amp;").replace(/</g, "&lt;");

function chart(series: Series[], title: string): string {
  const all = series.flatMap((s) => s.points);
  const xMax = niceMax(Math.max(...all.map((p) => p.x)));
  const yMax = niceMax(Math.max(...all.map((p) => p.y)) * 1.05);
  const px = (x: number): number => M.left + (x / xMax) * (W - M.left - M.right);
  const py = (y: number): number => H - M.bottom - (Math.min(y, yMax) / yMax) * (H - M.top - M.bottom);
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`);
  out.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  out.push(`<text x="${W / 2}" y="22" text-anchor="middle" font-size="14">${esc(title)}</text>`);
  for (let i = 0; i <= 5; i++) {
    const y = (yMax * i) / 5;
    out.push(`<line x1="${M.left}" x2="${W - M.right}" y1="${py(y)}" y2="${py(y)}" stroke="#ddd"/>`);
    out.push(`<text x="${M.left - 6}" y="${py(y) + 4}" text-anchor="end">${+y.toPrecision(3)}</text>`);
  }
  const xs = [...new Set(all.map((p) => p.x))].sort((a, b) => a - b);
  for (const x of xs) out.push(`<text x="${px(x)}" y="${H - M.bottom + 16}" text-anchor="middle">${x}</text>`);
  out.push(`<line x1="${M.left}" x2="${M.left}" y1="${M.top}" y2="${H - M.bottom}" stroke="black"/>`);
  out.push(`<line x1="${M.left}" x2="${W - M.right}" y1="${H - M.bottom}" y2="${H - M.bottom}" stroke="black"/>`);
  out.push(`<text x="${(M.left + W - M.right) / 2}" y="${H - M.bottom + 34}" text-anchor="middle">random packet loss, % (each direction, UDP and TCP)</text>`);
  out.push(`<text transform="translate(18 ${(M.top + H - M.bottom) / 2}) rotate(-90)" text-anchor="middle">p99, ms</text>`);
  series.forEach((s, i) => {
    const pts = [...s.points].sort((a, b) => a.x - b.x);
    out.push(`<polyline fill="none" stroke="${s.color}" stroke-width="2"${s.dash ? ` stroke-dasharray="${s.dash}"` : ""} points="${pts.map((p) => `${px(p.x).toFixed(1)},${py(p.y).toFixed(1)}`).join(" ")}"/>`);
    for (const p of pts) {
      out.push(`<circle cx="${px(p.x).toFixed(1)}" cy="${py(p.y).toFixed(1)}" r="4" fill="${s.color}"><title>${esc(`${s.name} at ${p.x} %: ${p.y} ms`)}</title></circle>`);
      if (!s.dash) out.push(`<text x="${(px(p.x) + 6).toFixed(1)}" y="${(py(p.y) - 6).toFixed(1)}" fill="${s.color}" font-size="10">${+p.y.toPrecision(3)}</text>`);
    }
    const lx = M.left + (i % 2) * 280;
    const ly = H - 38 + Math.floor(i / 2) * 18;
    out.push(`<line x1="${lx}" x2="${lx + 24}" y1="${ly}" y2="${ly}" stroke="${s.color}" stroke-width="2"${s.dash ? ` stroke-dasharray="${s.dash}"` : ""}/>`);
    out.push(`<text x="${lx + 30}" y="${ly + 4}">${esc(s.name)}</text>`);
  });
  out.push(`</svg>`);
  return out.join("\n") + "\n";
}

function main(): void {
  const [file, outFile = "docs/img/loss.svg"] = process.argv.slice(2);
  if (!file) throw new Error("usage: plot-loss.ts <bench:loss output or JSON> [out.svg]");
  const rows = readResults(readFileSync(file, "utf8"));
  const pick = (transport: string, v: (r: Row) => number | null): { x: number; y: number }[] =>
    rows.filter((r) => r.transport === transport && typeof v(r) === "number").map((r) => ({ x: r.loss_pct, y: v(r)! }));
  const series: Series[] = [
    { name: "fastnet: reliable ping RTT p99", color: "#1f77b4", points: pick("fastnet", (r) => r.rel_p99_ms) },
    { name: "ws-transport: reliable ping RTT p99", color: "#d62728", points: pick("ws-transport", (r) => r.rel_p99_ms) },
    { name: "fastnet: @unreliable state age p99", color: "#2ca02c", dash: "6 4", points: pick("fastnet", (r) => r.state_age_p99_ms) },
    { name: "ws-transport: reliable state age p99", color: "#ff7f0e", dash: "6 4", points: pick("ws-transport", (r) => r.state_age_p99_ms) },
  ].filter((s) => s.points.length > 0);
  mkdirSync(dirname(outFile), { recursive: true });
  writeFileSync(outFile, chart(series, "Under random loss: reliable round trip and state age, p99 (8 clients, 50 ms)"));
  console.log(`wrote ${outFile} (${rows.length} rows)`);
}

main();
