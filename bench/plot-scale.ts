/**
 * Plots bench/scale.ts results as two SVG line charts (no dependency: the SVG is written here):
 *   <outDir>/scale-cpu.svg  clients vs. server CPU per delivered message (µs)
 *   <outDir>/scale-p99.svg  clients vs. client-observed input->echo latency p99 (ms, log scale), with the 50 ms line
 * one line per row (fastnet, ws-transport, fastnet-unreliable); a hollow marker is a saturated step.
 *
 * Usage: node --import tsx bench/plot-scale.ts <file> [outDir]
 *   <file>   the output of `npm run bench:scale -- --json` (its last JSON line is used) or that JSON alone
 *   outDir   default docs/img
 */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

interface Point {
  transport: string;
  clients: number;
  cpu_us_per_msg: number;
  lat_p99_ms: number;
  saturated?: string | null;
}

const COLORS: Record<string, string> = { fastnet: "#1f77b4", "ws-transport": "#d62728", "fastnet-unreliable": "#2ca02c" };
const W = 640;
const H = 400;
const M = { left: 70, right: 20, top: 40, bottom: 90 };

/** The scale results in `text`: its last line that parses as {"bench":"scale",...}. */
export function readResults(text: string): Point[] {
  const lines = text.trim().split("\n").reverse();
  for (const line of lines) {
    try {
      const v = JSON.parse(line) as { bench?: string; results?: Point[] };
      if (v.bench === "scale" && Array.isArray(v.results)) return v.results;
    } catch {
      // not the JSON line
    }
  }
  throw new Error('no {"bench":"scale",...} JSON line found');
}

/** A "nice" upper bound for an axis: 1, 2 or 5 times a power of ten, at least `v`. */
function niceMax(v: number): number {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

const esc = (s: string): string => s.replace(/&/g, "&amp;").replace(/</g, "&lt;");

/**
 * One line chart: x = clients, y = `value` of each point, per transport. With `log`, the y axis is
 * logarithmic from 1 to the next power of ten (latencies span milliseconds to seconds).
 */
export function chart(points: Point[], title: string, yLabel: string, value: (p: Point) => number, threshold?: { y: number; label: string }, log = false): string {
  const series = [...new Set(points.map((p) => p.transport))];
  const xMax = niceMax(Math.max(...points.map((p) => p.clients)));
  const top = Math.max(...points.map(value).filter(Number.isFinite), threshold?.y ?? 0);
  const yMax = log ? 10 ** Math.max(1, Math.ceil(Math.log10(top))) : niceMax(top * 1.05);
  const frac = (y: number): number => (log ? Math.log10(Math.max(1, Math.min(y, yMax))) / Math.log10(yMax) : Math.min(y, yMax) / yMax);
  const px = (x: number): number => M.left + (x / xMax) * (W - M.left - M.right);
  const py = (y: number): number => H - M.bottom - frac(y) * (H - M.top - M.bottom);
  const yTicks = log ? Array.from({ length: Math.log10(yMax) + 1 }, (_, i) => 10 ** i) : Array.from({ length: 6 }, (_, i) => (yMax * i) / 5);
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`);
  out.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  out.push(`<text x="${W / 2}" y="22" text-anchor="middle" font-size="14">${esc(title)}</text>`);
  for (const y of yTicks) {
    out.push(`<line x1="${M.left}" x2="${W - M.right}" y1="${py(y)}" y2="${py(y)}" stroke="#ddd"/>`);
    out.push(`<text x="${M.left - 6}" y="${py(y) + 4}" text-anchor="end">${+y.toPrecision(3)}</text>`);
  }
  for (let i = 0; i <= 5; i++) {
    const x = (xMax * i) / 5;
    out.push(`<text x="${px(x)}" y="${H - M.bottom + 16}" text-anchor="middle">${Math.round(x)}</text>`);
  }
  out.push(`<line x1="${M.left}" x2="${M.left}" y1="${M.top}" y2="${H - M.bottom}" stroke="black"/>`);
  out.push(`<line x1="${M.left}" x2="${W - M.right}" y1="${H - M.bottom}" y2="${H - M.bottom}" stroke="black"/>`);
  out.push(`<text x="${(M.left + W - M.right) / 2}" y="${H - M.bottom + 34}" text-anchor="middle">clients in one server process</text>`);
  out.push(`<text transform="translate(18 ${(M.top + H - M.bottom) / 2}) rotate(-90)" text-anchor="middle">${esc(yLabel)}</text>`);
  if (threshold) {
    out.push(`<line x1="${M.left}" x2="${W - M.right}" y1="${py(threshold.y)}" y2="${py(threshold.y)}" stroke="#888" stroke-dasharray="6 4"/>`);
    out.push(`<text x="${W - M.right - 4}" y="${py(threshold.y) - 5}" text-anchor="end" fill="#555">${esc(threshold.label)}</text>`);
  }
  series.forEach((name, i) => {
    const color = COLORS[name] ?? "#555";
    const pts = points.filter((p) => p.transport === name && Number.isFinite(value(p))).sort((a, b) => a.clients - b.clients);
    out.push(`<polyline fill="none" stroke="${color}" stroke-width="2" points="${pts.map((p) => `${px(p.clients).toFixed(1)},${py(value(p)).toFixed(1)}`).join(" ")}"/>`);
    for (const p of pts) {
      const fill = p.saturated ? "white" : color;
      out.push(`<circle cx="${px(p.clients).toFixed(1)}" cy="${py(value(p)).toFixed(1)}" r="4" fill="${fill}" stroke="${color}" stroke-width="2"><title>${esc(`${name} ${p.clients}: ${value(p)}${p.saturated ? ` (saturated: ${p.saturated})` : ""}`)}</title></circle>`);
    }
    const lx = M.left + i * 190;
    const ly = H - 22;
    out.push(`<line x1="${lx}" x2="${lx + 24}" y1="${ly}" y2="${ly}" stroke="${color}" stroke-width="2"/>`);
    out.push(`<text x="${lx + 30}" y="${ly + 4}">${esc(name)}</text>`);
  });
  out.push(`<text x="${W - M.right}" y="${H - 6}" text-anchor="end" fill="#555" font-size="10">hollow marker: saturated step </text>`);
  out.push(`</svg>`);
  return out.join("\n") + "\n";
}

function main(): void {
  const [file, outDir = "docs/img"] = process.argv.slice(2);
  if (!file) throw new Error("usage: plot-scale.ts <bench:scale output or JSON> [outDir]");
  const points = readResults(readFileSync(file, "utf8"));
  mkdirSync(outDir, { recursive: true });
  writeFileSync(join(outDir, "scale-cpu.svg"), chart(points, "Server CPU per delivered message (user+sys)", "µs per message", (p) => p.cpu_us_per_msg));
  writeFileSync(
    join(outDir, "scale-p99.svg"),
    chart(points, "Input→echo latency p99, client-observed", "ms (log scale)", (p) => p.lat_p99_ms, { y: 50, label: "50 ms" }, true),
  );
  console.log(`wrote ${join(outDir, "scale-cpu.svg")} and ${join(outDir, "scale-p99.svg")} (${points.length} points)`);
}

main();
