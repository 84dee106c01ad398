/**
 * Adapter contract: every internal of @colyseus/core, @colyseus/ws-transport and @colyseus/sdk that
 * src/server and src/client reach into (beyond their documented public API), checked by behaviour
 * where that is cheap, each failing with a message that names the internal, the installed version,
 * the version it was last verified with, and where colyseus-fastnet depends on it. When one of these
 * fails after an update, fix the adapter named in the message (and the peerDependencies range) before
 * anything else: the end-to-end tests will fail too, less legibly.
 */
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { AsyncLocalStorage } from "node:async_hooks";
import { EventEmitter } from "node:events";
import * as core from "@colyseus/core";
import { Room as ServerRoom, type Client as ServerClientType } from "@colyseus/core";
import * as sdk from "@colyseus/sdk";
import { WebSocketTransport } from "@colyseus/sdk/transport/WebSocketTransport";
import { WebSocketClient } from "@colyseus/ws-transport/WebSocketClient";
import { FastnetClient, FastnetClientTransport, FastnetJoinError, FastnetRoom, transportOf } from "../src/client.js";
import { FastnetError } from "../src/index.js";
import { ColyseusHarness, recordEvents, waitFor } from "./support/colyseus-harness.js";

const require = createRequire(import.meta.url);

/** The installed version of `name` (read from its package.json, found from its entry point). */
function installedVersion(name: string): string {
  let dir = dirname(require.resolve(name));
  for (;;) {
    const file = join(dir, "package.json");
    if (existsSync(file)) {
      const pkg = JSON.parse(readFileSync(file, "utf8")) as { name?: string; version?: string };
      if (pkg.name === name) return pkg.version ?? "?";
    }
    const up = dirname(dir);
    if (up === dir) return "?";
    dir = up;
  }
}

/** The versions these internals were last read and verified against (see the peerDependencies). */
const VERIFIED: Record<string, string> = {
  "@colyseus/core": "0.18.17",
  "@colyseus/sdk": "0.18.4",
  "@colyseus/ws-transport": "0.18.4",
};

/**
 * One internal: `check` runs it; any failure is rethrown naming `pkg@installed`, the internal, the
 * version it was verified with and `usedBy` (where colyseus-fastnet relies on it).
 */
function contract(pkg: string, internal: string, usedBy: string, check: () => void | Promise<void>): void {
  it(`${pkg}: ${internal}`, () => runContract(pkg, internal, usedBy, check));
}

async function runContract(pkg: string, internal: string, usedBy: string, check: () => void | Promise<void>): Promise<void> {
  try {
    await check();
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    throw new Error(
      `ADAPTER CONTRACT BROKEN: ${pkg}@${installedVersion(pkg)} changed the internal "${internal}" ` +
        `(verified with ${pkg}@${VERIFIED[pkg]}); colyseus-fastnet relies on it in ${usedBy}. Detail: ${why}`,
      { cause: err },
    );
  }
}

/** The getHttpEndpoint check, shared with the self-test below. */
function checkGetHttpEndpoint(): void {
  const get = (c: sdk.Client) => (c as unknown as { getHttpEndpoint(segments?: string): string }).getHttpEndpoint();
  assert.equal(typeof (sdk.Client.prototype as any).getHttpEndpoint, "function", "getHttpEndpoint exists");
  const u = new URL(get(new sdk.Client("https://example.com:2568/base")));
  assert.equal(`${u.protocol}//${u.host}`, "https://example.com:2568");
  const v = new URL(get(new FastnetClient("http://127.0.0.1:2567")));
  assert.equal(`${v.protocol}//${v.host}`, "http://127.0.0.1:2567");
}

/** An SDK transport that records what it is asked to do, and never touches the network. */
class RecordingTransport {
  readonly connects: Array<{ url: string; options: unknown }> = [];
  isOpen = false;
  constructor(readonly events: Record<string, ((ev: any) => void) | undefined>) {}
  connect(url: string, options?: unknown): void {
    this.connects.push({ url, options });
  }
  send(): void {}
  sendUnreliable(): void {}
  close(): void {}
}

/**
 * FastnetRoom's technique on a plain SDK Room: an own accessor on `connection` swaps the transport the
 * moment Room.connect assigns the Connection.
 */
function swapOnAssign(room: sdk.Room): { transports: RecordingTransport[]; assignments: number } {
  const seen = { transports: [] as RecordingTransport[], assignments: 0 };
  let connection: any;
  Object.defineProperty(room, "connection", {
    configurable: true,
    enumerable: true,
    get: () => connection,
    set: (c: any) => {
      seen.assignments++;
      connection = c;
      if (c) {
        const t = new RecordingTransport(c.events);
        c.transport = t;
        seen.transports.push(t);
      }
    },
  });
  return seen;
}

/** A FastnetClient whose rooms never connect: FastnetClientTransport.connect is stubbed while `run` runs. */
async function withStubbedTransportConnect<T>(run: (calls: Array<{ url: string; headers: unknown }>) => Promise<T> | T): Promise<T> {
  const calls: Array<{ url: string; headers: unknown }> = [];
  const original = FastnetClientTransport.prototype.connect;
  FastnetClientTransport.prototype.connect = function (url: string, headers?: Record<string, string>) {
    calls.push({ url, headers });
  };
  try {
    return await run(calls);
  } finally {
    FastnetClientTransport.prototype.connect = original;
  }
}

const SEAT = {
  name: "arena",
  roomId: "room1",
  sessionId: "sess1",
  processId: "proc1",
  fingerprint: Array.from({ length: 32 }, (_, i) => i),
};

describe("adapter contract: Colyseus internals colyseus-fastnet depends on", function () {
  this.timeout(20_000);

  describe("@colyseus/sdk (src/client)", () => {
    const SDK = "@colyseus/sdk";

    contract(
      SDK,
      "Room.connect assigns `this.connection = new Connection(options.protocol)` once, then wires `connection.events` and calls `connection.connect(url, headers)` through it",
      "src/client/fastnet-client.ts FastnetRoom (the connection swap)",
      () => {
        const room = new sdk.Room("arena");
        const seen = swapOnAssign(room);
        room.connect("fastnet://127.0.0.1:9/proc1/room1?sessionId=sess1", { protocol: "fastnet" }, { "x-h": "1" });
        assert.equal(seen.assignments, 1, "`connection` assigned once per connect");
        const t = seen.transports[0]!;
        assert.ok(room.connection.transport === (t as unknown), "the swapped transport stays the connection's");
        assert.equal(t.connects.length, 1, "connect goes through the swapped transport");
        assert.match(t.connects[0]!.url, /^fastnet:\/\/127\.0\.0\.1:9\/proc1\/room1\?sessionId=sess1/);
        assert.deepEqual(t.connects[0]!.options, { "x-h": "1" }, "the transport's second argument is the headers");
        for (const handler of ["onmessage", "onclose", "onerror"]) {
          assert.equal(typeof t.events[handler], "function", `the Room assigns events.${handler} on the object the transport was built with`);
        }
      },
    );

    contract(
      SDK,
      "Connection.reconnect({ reconnectionToken, skipHandshake }) reconnects the same transport instance with the token in the URL",
      "src/client/client-transport.ts (a transport must be connectable again; the SDK's automatic reconnection)",
      () => {
        const room = new sdk.Room("arena");
        const seen = swapOnAssign(room);
        room.connect("fastnet://127.0.0.1:9/proc1/room1?sessionId=sess1", { protocol: "fastnet" });
        room.connection.reconnect({ reconnectionToken: "tok", skipHandshake: true });
        assert.equal(seen.assignments, 1, "no new Connection on reconnect");
        const t = seen.transports[0]!;
        assert.equal(t.connects.length, 2);
        const url = new URL(t.connects[1]!.url);
        assert.equal(url.protocol, "fastnet:");
        assert.equal(url.searchParams.get("reconnectionToken"), "tok");
        assert.equal(url.searchParams.get("skipHandshake"), "true");
      },
    );

    contract(
      SDK,
      "a transport close before JOIN_ROOM rejects consumeSeatReservation with ServerError(code, reason)",
      "src/client/fastnet-client.ts consumeSeatReservation (the named fastnet cause is attached to that ServerError)",
      async () => {
        let created: sdk.Room | undefined;
        let seen: ReturnType<typeof swapOnAssign> | undefined;
        class Probe extends sdk.Client {
          protected override createRoom<T>(roomName: string, rootSchema?: any): sdk.Room<any, T> {
            const room = super.createRoom<T>(roomName, rootSchema);
            created = room;
            seen = swapOnAssign(room);
            return room;
          }
        }
        const pending = new Probe("http://127.0.0.1:9").consumeSeatReservation(SEAT as any);
        assert.ok(created, "createRoom ran synchronously inside consumeSeatReservation");
        seen!.transports[0]!.events.onclose!({ code: 1006, reason: "BIND_TIMEOUT: no answer" });
        const err = await pending.then(
          () => assert.fail("resolved"),
          (e: unknown) => e,
        );
        assert.ok(err instanceof sdk.ServerError, `a ServerError, got ${String(err)}`);
        assert.equal((err as sdk.ServerError).code, 1006);
        assert.equal((err as sdk.ServerError).message, "BIND_TIMEOUT: no answer");
      },
    );

    contract(
      SDK,
      "Client.consumeSeatReservation calls the protected createRoom() synchronously, then room.connect(buildEndpoint(..), { ...seat, protocol: settings.protocol }, headers)",
      "src/client/fastnet-client.ts FastnetClient (createRoom override, `settings.protocol = \"fastnet\"`, FastnetRoom.connect reads the seat's fingerprint)",
      async () => {
        await withStubbedTransportConnect((calls) => {
          const client = new FastnetClient("http://127.0.0.1:2567", { headers: { "x-app": "1" } });
          let connectArgs: unknown[] | undefined;
          const originalCreateRoom = (client as any).createRoom.bind(client);
          (client as any).createRoom = (name: string, schema?: unknown) => {
            const room = originalCreateRoom(name, schema) as FastnetRoom;
            const connect = room.connect.bind(room);
            room.connect = (...args: [string, any?, any?]) => {
              connectArgs = args;
              connect(...args);
            };
            return room;
          };
          const pending = client.consumeSeatReservation({ ...SEAT, reconnectionToken: "tok" } as any);
          pending.catch(() => {});
          assert.ok(connectArgs, "room.connect ran synchronously");
          const [url, options, headers] = connectArgs as [string, any, any];
          const parsed = new URL(url);
          assert.equal(parsed.protocol, "fastnet:", `the room URL uses settings.protocol: ${url}`);
          assert.equal(parsed.host, "127.0.0.1:2567");
          assert.equal(parsed.pathname, "/proc1/room1");
          assert.equal(parsed.searchParams.get("sessionId"), "sess1");
          assert.equal(parsed.searchParams.get("reconnectionToken"), "tok");
          assert.equal(options.protocol, "fastnet");
          assert.deepEqual(options.fingerprint, SEAT.fingerprint, "the seat reservation's fingerprint reaches Room.connect");
          assert.equal(headers["x-app"], "1");
          assert.equal(calls.length, 1, "our transport was asked to connect");
          assert.equal(calls[0]!.url, url);
        });
      },
    );

    contract(
      SDK,
      "Client.createMatchMakeRequest(method, roomName, options, rootSchema) (protected) posts /matchmake/<method>/<room>, calls consumeSeatReservation in the same async context, and turns a ServerError into MatchMakeError",
      "src/client/fastnet-client.ts createMatchMakeRequest (FastnetJoinError via an AsyncLocalStorage context)",
      async () => {
        const posted: string[] = [];
        const fetchFn = (async (input: string | URL | Request) => {
          posted.push(String(input instanceof Request ? input.url : input));
          return new Response(JSON.stringify(SEAT), { status: 200, headers: { "content-type": "application/json" } });
        }) as typeof fetch;
        const als = new AsyncLocalStorage<string>();
        let storeInConsume: string | undefined;
        class Probe extends sdk.Client {
          protected override async createMatchMakeRequest<T>(method: string, roomName: string, options: any = {}, rootSchema?: any): Promise<sdk.Room<any, T>> {
            return als.run("ctx", () => super.createMatchMakeRequest<T>(method, roomName, options, rootSchema));
          }
          override async consumeSeatReservation<T>(): Promise<sdk.Room<any, T>> {
            storeInConsume = als.getStore();
            throw new sdk.ServerError(4212, "refused");
          }
        }
        const err = await new Probe("http://127.0.0.1:9", { fetchFn }).joinOrCreate("arena").then(
          () => assert.fail("resolved"),
          (e: unknown) => e,
        );
        assert.match(posted[0] ?? "", /\/matchmake\/joinOrCreate\/arena$/);
        assert.equal(storeInConsume, "ctx", "consumeSeatReservation runs inside createMatchMakeRequest's async context");
        assert.ok(err instanceof sdk.MatchMakeError, `a MatchMakeError, got ${String(err)}`);
        assert.equal((err as sdk.MatchMakeError).code, 4212);
        const ours = new FastnetJoinError("m", 1006, new FastnetError("BIND_TIMEOUT", "m"));
        assert.ok(ours instanceof FastnetJoinError && ours instanceof sdk.MatchMakeError, "FastnetJoinError keeps both prototypes");
      },
    );

    contract(SDK, "Client.getHttpEndpoint() (protected) returns http(s)://host:port/path", "src/client/fastnet-client.ts fastnetLatency", checkGetHttpEndpoint);

    it("self-test: an internal that changed fails loudly, naming the internal, the installed and the verified version", async () => {
      const proto = sdk.Client.prototype as any;
      const original = proto.getHttpEndpoint;
      proto.getHttpEndpoint = undefined; // as if a release had renamed it
      try {
        await assert.rejects(runContract(SDK, "Client.getHttpEndpoint()", "src/client/fastnet-client.ts", checkGetHttpEndpoint), (e: Error) => {
          assert.match(e.message, /^ADAPTER CONTRACT BROKEN: @colyseus\/sdk@\d+\.\d+\.\d+ changed the internal "Client\.getHttpEndpoint\(\)"/);
          assert.match(e.message, /verified with @colyseus\/sdk@0\.18\.4/);
          assert.match(e.message, /relies on it in src\/client\/fastnet-client\.ts/);
          assert.match(e.message, /getHttpEndpoint exists/);
          return true;
        });
      } finally {
        proto.getHttpEndpoint = original;
      }
      await runContract(SDK, "Client.getHttpEndpoint()", "src/client/fastnet-client.ts", checkGetHttpEndpoint);
    });

    contract(SDK, "Client.getLatency({ protocol }) and the static Client.selectByLatency exist (FastnetClient overrides both)", "src/client/fastnet-client.ts", () => {
      assert.equal(typeof sdk.Client.prototype.getLatency, "function");
      assert.equal(typeof sdk.Client.selectByLatency, "function");
      assert.ok(sdk.Client.prototype.getLatency.toString().includes("protocol"), "getLatency reads options.protocol");
    });

    contract(
      SDK,
      "@colyseus/sdk/transport/WebSocketTransport: constructor(events), fields `ws`, `protocols`, `events`; send/close/isOpen act on `this.ws`",
      "src/client/websocket-transport.ts SdkWebSocketTransport (its connect() sets `this.ws`)",
      () => {
        const events = {};
        const t = new WebSocketTransport(events);
        assert.equal(t.events, events);
        const sent: unknown[] = [];
        const closed: unknown[] = [];
        (t as any).ws = { readyState: 1, send: (d: unknown) => sent.push(d), close: (c: number, r: string) => closed.push([c, r]) };
        assert.equal(t.isOpen, true, "isOpen reads ws.readyState (1 = OPEN)");
        t.send(Uint8Array.of(1));
        t.close(4000, "bye");
        assert.equal(sent.length, 1);
        assert.deepEqual(closed, [[4000, "bye"]]);
        assert.ok("protocols" in t || (t as any).protocols === undefined);
      },
    );

    contract(SDK, "Protocol.PING is the latency probe's frame (the SDK's own value)", "src/client/fastnet-client.ts fastnetLatency", () => {
      assert.equal(typeof sdk.Protocol.PING, "number");
      assert.equal(sdk.Protocol.PING, core.Protocol.PING, "SDK and core agree on PING");
    });

    contract(SDK, "the FastnetRoom connection swap, end to end without a network", "src/client/fastnet-client.ts FastnetRoom", async () => {
      await withStubbedTransportConnect((calls) => {
        const client = new FastnetClient("http://127.0.0.1:2567");
        const room = (client as any).createRoom("arena") as FastnetRoom;
        room.connect("fastnet://127.0.0.1:2567/proc1/room1?sessionId=sess1", { protocol: "fastnet" });
        assert.ok(transportOf(room) instanceof FastnetClientTransport, "room.connection.transport is ours");
        assert.equal(calls.length, 1);
      });
    });
  });

  describe("@colyseus/core and @colyseus/ws-transport (src/server)", () => {
    const CORE = "@colyseus/core";
    const WS = "@colyseus/ws-transport";

    /** The server-side Client shape core's helpers expect, recording `raw`. */
    function fakeClient(state: number) {
      const raws: unknown[] = [];
      const client: any = {
        sessionId: "s1",
        id: "s1",
        state,
        ref: new EventEmitter(),
        _enqueuedMessages: [] as unknown[],
        raw: (data: unknown) => raws.push(data),
      };
      return { client, raws };
    }

    contract(
      CORE,
      "connectClientToRoom(room, client, authContext, { reconnectionToken, skipHandshake }): MATCHMAKE_EXPIRED without a seat, else room._onJoin(client, authContext, options)",
      "src/server/fastnet-transport.ts and websocket-path.ts join()",
      async () => {
        assert.equal(typeof core.connectClientToRoom, "function");
        const { client } = fakeClient(core.ClientState.JOINING);
        await assert.rejects(
          core.connectClientToRoom(undefined, client, {} as any, {}),
          (e: any) => e instanceof core.ServerError && e.code === core.ErrorCode.MATCHMAKE_EXPIRED,
        );
        const calls: unknown[][] = [];
        const room: any = {
          hasReservedSeat: (sessionId: string, token?: string) => sessionId === "s1" && token === "tok",
          _onJoin: async (...args: unknown[]) => void calls.push(args),
        };
        const ctx = { token: "t" };
        await core.connectClientToRoom(room, client, ctx as any, { reconnectionToken: "tok", skipHandshake: true });
        assert.equal(calls.length, 1);
        assert.equal(calls[0]![0], client);
        assert.equal(calls[0]![1], ctx);
        assert.deepEqual(calls[0]![2], { reconnectionToken: "tok", skipHandshake: true });
      },
    );

    contract(
      CORE,
      "createAuthContext({ headers, token, remoteAddress }) → { token, ip (x-forwarded-for first, else remoteAddress), headers: Headers }",
      "src/server/fastnet-transport.ts (hello headers + Upgrade proxy headers) and websocket-path.ts",
      () => {
        assert.equal(typeof core.createAuthContext, "function");
        const plain = core.createAuthContext({ headers: { "x-app": "1" }, token: "tk", remoteAddress: "10.0.0.9" });
        assert.equal(plain.token, "tk");
        assert.equal(plain.ip, "10.0.0.9");
        assert.equal(plain.headers.get("x-app"), "1");
        const proxied = core.createAuthContext({ headers: { "x-forwarded-for": "203.0.113.7, 10.0.0.1" }, token: null, remoteAddress: "10.0.0.1" });
        assert.equal(proxied.ip, "203.0.113.7");
        const bearer = core.createAuthContext({ headers: { authorization: "Bearer abc" }, token: null });
        assert.equal(bearer.token, "abc");
      },
    );

    contract(
      CORE,
      "enqueueClientRaw(client, data, options): buffers in _enqueuedMessages before JOINED, calls client.raw(data, options) once JOINED, stages afterNextPatch frames",
      "src/server/server-client.ts and websocket-client.ts enqueueRaw",
      () => {
        assert.equal(typeof core.enqueueClientRaw, "function");
        const joining = fakeClient(core.ClientState.JOINING);
        core.enqueueClientRaw(joining.client, Uint8Array.of(1));
        assert.equal(joining.client._enqueuedMessages.length, 1);
        assert.equal(joining.raws.length, 0);
        const joined = fakeClient(core.ClientState.JOINED);
        core.enqueueClientRaw(joined.client, Uint8Array.of(2));
        assert.equal(joined.raws.length, 1);
        const staged = fakeClient(core.ClientState.JOINED);
        staged.client._pendingFrameClients = [];
        core.enqueueClientRaw(staged.client, Uint8Array.of(3), { afterNextPatch: true });
        assert.equal(staged.raws.length, 0);
        assert.equal(staged.client._pendingFrames.length, 1);
      },
    );

    contract(CORE, "getMessageBytes.raw(code, type, message, bytes?) and getMessageBytes[Protocol.ERROR](code, message) build frames led by their protocol byte", "src/server/server-client.ts send/sendBytes/error", () => {
      const data = core.getMessageBytes.raw(core.Protocol.ROOM_DATA, "t", 1);
      assert.equal(data[0], core.Protocol.ROOM_DATA);
      const bytes = core.getMessageBytes.raw(core.Protocol.ROOM_DATA_BYTES, "t", undefined, Uint8Array.of(7));
      assert.equal(bytes[0], core.Protocol.ROOM_DATA_BYTES);
      const error = core.getMessageBytes[core.Protocol.ERROR](4212, "m");
      assert.equal(error[0], core.Protocol.ERROR);
    });

    contract(CORE, "ClientState (JOINING, JOINED, RECONNECTED, LEAVING), CloseCode and ErrorCode values", "src/server/* (close codes sent to the SDK, refusals)", () => {
      for (const k of ["JOINING", "JOINED", "RECONNECTED", "LEAVING"] as const) assert.equal(typeof core.ClientState[k], "number", `ClientState.${k}`);
      assert.deepEqual(
        [core.CloseCode.NORMAL_CLOSURE, core.CloseCode.ABNORMAL_CLOSURE, core.CloseCode.CONSENTED, core.CloseCode.SERVER_SHUTDOWN, core.CloseCode.WITH_ERROR, core.CloseCode.FAILED_TO_RECONNECT, core.CloseCode.MAY_TRY_RECONNECT],
        [1000, 1006, 4000, 4001, 4002, 4003, 4010],
      );
      assert.equal(typeof core.ErrorCode.MATCHMAKE_EXPIRED, "number");
    });

    contract(CORE, "matchMaker.getLocalRoomById and matchMaker.processId; the Transport base class and Server's optional transport.getExpressApp() hook; isDevMode, logger", "src/server/fastnet-transport.ts and websocket-path.ts", () => {
      assert.equal(typeof core.matchMaker.getLocalRoomById, "function");
      assert.ok("processId" in core.matchMaker, "matchMaker.processId");
      assert.equal(typeof core.Transport, "function");
      // An optional hook of Transport: Server calls it when the transport has it (the `express` option).
      assert.ok(String(core.Server).includes("getExpressApp"), "Server still asks the transport for getExpressApp()");
      assert.equal(typeof core.isDevMode, "boolean");
      assert.equal(typeof core.logger.error, "function");
    });

    contract(
      CORE,
      "Room compares client.readyState with the global WebSocket.OPEN (1) after onReconnect",
      "src/server/server-client.ts readyState (Node 22's global WebSocket needed)",
      () => {
        assert.equal((globalThis as { WebSocket?: { OPEN: number } }).WebSocket?.OPEN, 1);
      },
    );

    contract(
      WS,
      "@colyseus/ws-transport/WebSocketClient: constructor(id, ref) sets id/sessionId/ref, `_enqueuedMessages = []`, and send/sendBytes go through this.enqueueRaw",
      "src/server/websocket-client.ts WebSocketRoomClient (extends it, overrides enqueueRaw/raw/leave/readyState)",
      () => {
        const ref = new EventEmitter() as any;
        const queued: Uint8Array[] = [];
        class Probe extends WebSocketClient {
          override enqueueRaw(data: Uint8Array): void {
            queued.push(data);
          }
        }
        const c = new Probe("s1", ref);
        assert.equal(c.sessionId, "s1");
        assert.equal(c.id, "s1");
        assert.equal(c.ref, ref);
        assert.deepEqual(c._enqueuedMessages, []);
        c.send("t", 1);
        c.sendBytes("t", Uint8Array.of(1));
        assert.deepEqual(
          queued.map((q) => q[0]),
          [core.Protocol.ROOM_DATA, core.Protocol.ROOM_DATA_BYTES],
        );
      },
    );

    describe("with a running server", () => {
      let h: ColyseusHarness;
      const kept: ServerClientType[] = [];
      class KeepRoom extends ServerRoom {
        override onJoin(client: ServerClientType): void {
          kept.push(client);
        }
        override async onDrop(client: ServerClientType): Promise<void> {
          await this.allowReconnection(client, 10);
        }
      }
      before(async () => {
        h = await new ColyseusHarness().start({ keep: KeepRoom });
      });
      after(async () => {
        await h?.stop();
      });

      contract(
        CORE,
        "Room.allowReconnection keeps the old Client object: `previousClient.ref = newClient.ref`, state RECONNECTED",
        "src/server/current-client.ts (a Client reference kept from onJoin follows `ref` to the live connection)",
        async () => {
          const room = await h.join(h.client(), "keep");
          room.reconnection.minUptime = 0;
          room.reconnection.maxDelay = 300;
          const sdkEvents = recordEvents(room);
          await waitFor(() => kept.length === 1, 5000, "onJoin");
          const old = kept[0]!;
          transportOf(room).session!.abort(1006, "contract test: connection lost");
          await waitFor(() => sdkEvents.reconnect.length === 1, 10_000, "the SDK's reconnection");
          const serverRoom = core.matchMaker.getLocalRoomById(room.roomId)!;
          const current = serverRoom.clients.getById(room.sessionId)!;
          assert.notEqual(current, old, "a new Client object for the reconnection");
          assert.equal(old.ref, current.ref, "the new connection's ref moved onto the old object");
          assert.equal(old.state, core.ClientState.RECONNECTED);
        },
      );
    });
  });
});
