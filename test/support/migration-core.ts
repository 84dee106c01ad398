/**
 * Direct drivers for two sans-IO Connections (no simulator): the tests decide which datagram reaches
 * which side and when, which is what path validation and stateless-reset tests need.
 */
import { Connection, type ConnectionEvent } from "../../src/protocol/connection.js";
import type { SessionOptions } from "../../src/protocol/options.js";
import { CID_LENGTH } from "../../src/protocol/version.js";
import { Prng, fastBackend } from "./sim-network.js";

export interface OpenPair {
  client: Connection;
  server: Connection;
  cid: Uint8Array;
  resetToken: Uint8Array;
  rng: Prng;
  /** Events each side produced so far (drained by `events`). */
  log: { client: ConnectionEvent[]; server: ConnectionEvent[] };
  now: number;
}

/**
 * Two connections with the same keys and CID (as a handshake would leave them), the client holding
 * `resetToken`; the bind and its answer have been exchanged, so both are open at `now`.
 */
export function openPair(seed: number, options: Partial<SessionOptions> = {}): OpenPair {
  const rng = new Prng(seed);
  const cid = rng.bytes(CID_LENGTH);
  cid[0] = CID_LENGTH - 1; // QUIC-LB config octet, config 0
  const keyingMaterial = rng.bytes(64);
  const resetToken = rng.bytes(16);
  const now = 1_000_000;
  const aead = fastBackend();
  const params = { maxMessageSize: 512 * 1024, receiveBufferBytes: 1024 * 1024, idleTimeoutMs: 10_000 };
  const clientRng = rng.fork();
  const serverRng = rng.fork();
  const client = new Connection({
    role: "client",
    cid,
    keyingMaterial,
    aead,
    now,
    random: (o) => void clientRng.fill(o),
    peerParams: params,
    options,
    resetToken,
    initialRttMs: 10,
  });
  const server = new Connection({
    role: "server",
    cid,
    keyingMaterial,
    aead,
    now,
    random: (o) => void serverRng.fill(o),
    peerParams: params,
    options,
    initialRttMs: 10,
  });
  const p: OpenPair = { client, server, cid, resetToken, rng, log: { client: [], server: [] }, now };
  const bind = client.pollTransmit(now)!;
  p.now += 5;
  server.handleDatagram(bind, p.now);
  transfer(p, "server");
  collect(p);
  if (client.state !== "open" || server.state !== "open") throw new Error("pair did not open");
  return p;
}

/** Drains `from`'s transmissions at `p.now`; delivers each to the peer unless `deliver` says no. Returns them. */
export function transfer(p: OpenPair, from: "client" | "server", deliver: (d: Uint8Array) => boolean = () => true): Uint8Array[] {
  const src = from === "client" ? p.client : p.server;
  const dst = from === "client" ? p.server : p.client;
  const out: Uint8Array[] = [];
  for (let d = src.pollTransmit(p.now); d !== null; d = src.pollTransmit(p.now)) {
    out.push(d);
    if (deliver(d)) dst.handleDatagram(d, p.now);
  }
  collect(p);
  return out;
}

/** Exchanges datagrams both ways until neither side has anything to send now. */
export function exchange(p: OpenPair, rounds = 50): void {
  for (let i = 0; i < rounds; i++) {
    const n = transfer(p, "client").length + transfer(p, "server").length;
    if (n === 0) return;
  }
}

/** Moves both sides' events into `p.log`. */
export function collect(p: OpenPair): void {
  for (let e = p.client.pollEvent(); e; e = p.client.pollEvent()) p.log.client.push(e);
  for (let e = p.server.pollEvent(); e; e = p.server.pollEvent()) p.log.server.push(e);
}

/** Runs `side`'s timers at `t` (and moves `p.now` there). */
export function tick(p: OpenPair, side: "client" | "server", t: number): void {
  p.now = Math.max(p.now, t);
  (side === "client" ? p.client : p.server).handleTimeout(p.now);
  collect(p);
}

export function eventsOf<T extends ConnectionEvent["type"]>(
  events: ConnectionEvent[],
  type: T,
): Extract<ConnectionEvent, { type: T }>[] {
  return events.filter((e): e is Extract<ConnectionEvent, { type: T }> => e.type === type);
}

export const sum = (ds: Uint8Array[]): number => ds.reduce((n, d) => n + d.length, 0);
