import type { Client } from "@colyseus/core";

/**
 * Which server-side Client each connection (`ref`) was made for, across both paths.
 *
 * On a reconnection Colyseus keeps the old `Client` object (the one the room's `onJoin` saw and an
 * application may have kept) and moves the new connection onto it: `previousClient.ref =
 * newClient.ref`, `previousClient.state = RECONNECTED`. Core's `enqueueClientRaw` then drops every
 * message sent through the old object (it buffers only before JOINED, and the old object's buffer is
 * gone), and anything the old object did through its own connection would go to the dead one. Our
 * clients therefore act through `currentClient(this)`: the Client the live connection belongs to.
 */
const owners = new WeakMap<object, Client>();

/** Records `client` as the Client that `ref` (its own connection) was made for. */
export function ownRef(ref: object, client: Client): void {
  owners.set(ref, client);
}

/**
 * The Client that `client`'s current connection belongs to: `client` itself, unless Colyseus moved a
 * reconnection's connection onto it (then the replacement, following further reconnections, on
 * either path: a fastnet player may come back over WebSocket and the other way round).
 */
export function currentClient(client: Client): Client {
  let current = client;
  // Each hop reaches a newer Client; the bound only guards against a cycle nobody should build.
  for (let hops = 0; hops < 64; hops++) {
    const owner = owners.get(current.ref as object);
    if (owner === undefined || owner === current) return current;
    current = owner;
  }
  return current;
}
