/**
 * Counting hooks for bench/support/packet-path.ts, loaded with `--import` into a process (the echo
 * server child) or imported by the harness itself. Counts, from the moment they are installed:
 * timers armed / cleared / refreshed (global setTimeout, clearTimeout, Timeout#refresh), microtasks
 * queued with queueMicrotask, setImmediate calls, UDP datagrams sent and received (node:dgram) and
 * TCP writes (net.Socket#write), plus GCs (PerformanceObserver) and the process CPU and heap.
 * `snapshot()` returns them; with COUNT_HOOKS_OUT set, the IPC message
 * {type:"count-hooks"} appends one JSON snapshot line there.
 * Bench-only: wraps globals, never loaded by the library or the tests.
 */
import dgram from "node:dgram";
import { appendFileSync } from "node:fs";
import net from "node:net";
import { PerformanceObserver } from "node:perf_hooks";

export interface Counts {
  setTimeout: number;
  timerFired: number;
  sentByTimer: number;
  clearTimeout: number;
  refresh: number;
  queueMicrotask: number;
  setImmediate: number;
  udpSend: number;
  udpRecv: number;
  tcpWrite: number;
  gc: number;
  heapUsed: number;
  cpuUs: number;
}

const c = { setTimeout: 0, clearTimeout: 0, refresh: 0, queueMicrotask: 0, setImmediate: 0, udpSend: 0, udpRecv: 0, tcpWrite: 0, gc: 0, timerFired: 0, sentByTimer: 0 };
/** setTimeout delays asked for (ms, rounded), by value: the driver's timer is the only one per packet. */
export const timerDelays = new Map<number, number>();

const g = globalThis as unknown as Record<string, (...a: unknown[]) => unknown>;
const origSetTimeout = g.setTimeout!;
const origClearTimeout = g.clearTimeout!;
const origQueueMicrotask = g.queueMicrotask!;
const origSetImmediate = g.setImmediate!;
g.setTimeout = function (...a: unknown[]) {
  c.setTimeout++;
  const ms = Math.round(Number(a[1] ?? 0));
  timerDelays.set(ms, (timerDelays.get(ms) ?? 0) + 1);
  const fn = a[0] as (...x: unknown[]) => unknown;
  if (typeof fn === "function") {
    a[0] = function (this: unknown, ...x: unknown[]) {
      c.timerFired++;
      const sent = c.udpSend;
      try {
        return fn.apply(this, x);
      } finally {
        c.sentByTimer += c.udpSend - sent;
      }
    };
  }
  return origSetTimeout.apply(this, a);
};
g.clearTimeout = function (...a: unknown[]) {
  c.clearTimeout++;
  return origClearTimeout.apply(this, a);
};
g.queueMicrotask = function (...a: unknown[]) {
  c.queueMicrotask++;
  return origQueueMicrotask.apply(this, a);
};
g.setImmediate = function (...a: unknown[]) {
  c.setImmediate++;
  return origSetImmediate.apply(this, a);
};
const probe = origSetTimeout(() => undefined, 0) as NodeJS.Timeout;
const timeoutProto = Object.getPrototypeOf(probe) as { refresh: (...a: unknown[]) => unknown };
origClearTimeout(probe);
const origRefresh = timeoutProto.refresh;
timeoutProto.refresh = function (...a: unknown[]) {
  c.refresh++;
  return origRefresh.apply(this, a);
};
const udpProto = dgram.Socket.prototype as unknown as Record<string, (...a: unknown[]) => unknown>;
const origSend = udpProto.send!;
udpProto.send = function (...a: unknown[]) {
  c.udpSend++;
  return origSend.apply(this, a);
};
const origEmit = udpProto.emit!;
udpProto.emit = function (ev: unknown, ...a: unknown[]) {
  if (ev === "message") c.udpRecv++;
  return origEmit.call(this, ev, ...a);
};
const netProto = net.Socket.prototype as unknown as Record<string, (...a: unknown[]) => unknown>;
const origWrite = netProto.write!;
netProto.write = function (...a: unknown[]) {
  c.tcpWrite++;
  return origWrite.apply(this, a);
};
new PerformanceObserver((list) => {
  c.gc += list.getEntries().length;
}).observe({ entryTypes: ["gc"] });

export function snapshot(): Counts {
  const cpu = process.cpuUsage();
  return { ...c, heapUsed: process.memoryUsage().heapUsed, cpuUs: cpu.user + cpu.system };
}

const out = process.env.COUNT_HOOKS_OUT;
// An IPC message, not a signal: Colyseus shuts its server down on SIGUSR2 (nodemon's restart signal).
if (out) {
  process.on("message", (msg: { type?: string }) => {
    if (msg?.type === "count-hooks") appendFileSync(out, JSON.stringify({ ...snapshot(), delays: Object.fromEntries(timerDelays) }) + "\n");
  });
}
