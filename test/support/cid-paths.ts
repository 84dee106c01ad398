/**
 * Which connection IDs each network path carried, seen at the sockets (test instrumentation): every
 * datagram a client hands to its current socket is filed under that socket, every datagram the
 * server sends under the client socket bound at its destination. Unlinkable migration means one CID per path, and
 * no CID on two paths.
 */
import assert from "node:assert/strict";
import type { FastnetClientSession, FastnetServer } from "../../src/index.js";
import { CID_OFFSET } from "../../src/protocol/packet-header.js";
import { CID_LENGTH } from "../../src/protocol/version.js";
import { tapClientSends, tapServerSends } from "./migration-net.js";

/** Path ("address:port" of the client end) → CIDs seen on it, in hex, with datagram counts per direction. */
export type CidsByPath = Map<string, { cids: Set<string>; up: number; down: number }>;

const cidHex = (d: Uint8Array): string => Buffer.from(d.subarray(CID_OFFSET, CID_OFFSET + CID_LENGTH)).toString("hex");

/** Starts recording; returns the live map. */
export function recordCidsByPath(client: FastnetClientSession, server: FastnetServer): CidsByPath {
  const paths: CidsByPath = new Map();
  const note = (path: string, d: Uint8Array, dir: "up" | "down"): void => {
    let p = paths.get(path);
    if (!p) paths.set(path, (p = { cids: new Set(), up: 0, down: 0 }));
    p.cids.add(cidHex(d));
    p[dir]++;
  };
  // A path is one client socket: the OS may hand a freed port to a later socket, which is a new path.
  const socketPath = new WeakMap<object, string>();
  const pathAt = new Map<string, string>();
  tapClientSends(client, (d) => {
    const socket = client.socket!;
    let path = socketPath.get(socket);
    if (path === undefined) {
      const a = socket.address();
      const at = `${a.address}:${a.port}`;
      path = pathAt.has(at) ? `${at} (socket ${paths.size + 1})` : at;
      socketPath.set(socket, path);
      pathAt.set(at, path);
    }
    note(path, d, "up");
  });
  tapServerSends(server, (d, port, address) => {
    const at = `${address}:${port}`;
    note(pathAt.get(at) ?? at, d, "down");
  });
  return paths;
}

/** Each path carried exactly one CID (both directions), and no two paths share one. */
export function assertUnlinkable(paths: CidsByPath, minPaths: number): void {
  assert.ok(paths.size >= minPaths, `${paths.size} paths seen, expected at least ${minPaths}`);
  const owner = new Map<string, string>();
  for (const [path, p] of paths) {
    assert.equal(p.cids.size, 1, `path ${path} carried ${p.cids.size} CIDs (${[...p.cids].join(", ")}; ${p.up} up, ${p.down} down)`);
    const [cid] = p.cids;
    assert.equal(owner.get(cid!), undefined, `CID ${cid} seen on ${owner.get(cid!)} and on ${path}`);
    owner.set(cid!, path);
  }
}
