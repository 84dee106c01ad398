/**
 * Oversized sends from the SDK: a reliable `room.send()` above the server's maxMessageSize throws
 * FastnetError MESSAGE_TOO_LARGE at once, naming the limit and the option, and the connection lives;
 * an oversized unreliable send is refused visibly (false, one console.warn per session). The
 * client-to-server limit is the server's maxMessageSize, announced in the handshake; it bounds what
 * the server accepts, not what it sends.
 */
import assert from "node:assert/strict";
import { format } from "node:util";
import { Room, type Client } from "@colyseus/core";
import { FastnetError } from "../src/index.js";
import { transportOf } from "../src/client.js";
import { ColyseusHarness, recordEvents, waitFor, within } from "./support/colyseus-harness.js";

const got: string[] = [];

class LimitRoom extends Room {
  override onCreate(): void {
    this.onMessage("small", (client, text: string) => {
      got.push(text);
      client.send("small", text);
    });
    this.onMessage("big", () => void got.push("big"));
    this.onMessage("u", () => void got.push("u"));
    // A large message to the client, whatever the server accepts from clients.
    this.onMessage("send-me-big", (client: Client, n: number) => client.send("big", "y".repeat(n)));
  }
}

describe("client sends above the limits", function () {
  this.timeout(30_000);
  let h: ColyseusHarness;
  const warnings: string[] = [];
  const originalWarn = console.warn;

  beforeEach(() => {
    got.length = 0;
    warnings.length = 0;
    console.warn = (...args: unknown[]) => void warnings.push(format(...args));
  });

  afterEach(async () => {
    console.warn = originalWarn;
    await h.stop();
  });

  async function joinEcho(options = {}) {
    h = await new ColyseusHarness().start({ limit: LimitRoom }, options);
    const room = await h.join(h.client(), "limit");
    const echoes: string[] = [];
    room.onMessage("small", (t: string) => void echoes.push(t));
    return { room, echoes, ev: recordEvents(room) };
  }

  it("room.send() of 600 KB throws MESSAGE_TOO_LARGE (limit 524288, option named); the connection lives", async () => {
    const { room, echoes, ev } = await joinEcho();
    assert.equal(transportOf(room).session!.maxMessageSize, 512 * 1024, "the default limit, announced by the server");
    let thrown: unknown;
    try {
      room.send("big", "x".repeat(600_000));
    } catch (err) {
      thrown = err;
    }
    assert.ok(thrown instanceof FastnetError, `threw ${String(thrown)}`);
    assert.equal(thrown.code, "MESSAGE_TOO_LARGE");
    assert.match(thrown.message, /exceeds the server's limit of 524288 bytes \(maxMessageSize, set on the server: new FastnetTransport\(\{ maxMessageSize \}\)\)/);
    room.send("small", "still here");
    await waitFor(() => echoes.length === 1, 5000, "the echo after the refused send");
    assert.deepEqual(got, ["still here"], "the oversized message never reached the room");
    assert.equal(transportOf(room).isOpen, true);
    assert.deepEqual([ev.leave, ev.drop], [[], []]);
  });

  it("a server with maxMessageSize 4096 (ws-transport's maxPayload): clients are held to it, the server still sends 100 KB", async () => {
    const { room, echoes, ev } = await joinEcho({ maxMessageSize: 4096 });
    assert.equal(transportOf(room).session!.maxMessageSize, 4096, "learnt from the handshake");
    assert.throws(
      () => room.send("big", "x".repeat(5000)),
      (e: unknown) => e instanceof FastnetError && e.code === "MESSAGE_TOO_LARGE" && /limit of 4096 bytes/.test(e.message),
    );
    const big = new Promise<string>((resolve) => room.onMessage("big", resolve));
    room.send("send-me-big", 100_000);
    assert.equal((await within(big, 5000, "100 KB from the server")).length, 100_000);
    room.send("small", "ok");
    await waitFor(() => echoes.length === 1, 5000, "echo");
    assert.deepEqual([ev.leave, ev.drop], [[], []]);
  });

  it("an oversized sendUnreliable returns false and warns once per session; small ones still go", async () => {
    const { room, ev } = await joinEcho();
    const t = transportOf(room);
    const max = t.session!.maxUnreliableSize;
    assert.equal(t.sendUnreliable(new Uint8Array(max + 1)), false);
    room.sendUnreliable("u", "z".repeat(5000)); // through the SDK: void, but refused the same way
    assert.equal(warnings.length, 1, warnings.join("\n"));
    assert.match(warnings[0]!, new RegExp(`exceeds the ${max} bytes of one datagram; dropped .*Use room\\.send\\(\\)`));
    assert.equal(t.getStats()!.datagramsDropped.tooLarge, 2);
    room.sendUnreliable("u", "small");
    await waitFor(() => got.includes("u"), 5000, "a small datagram");
    assert.equal(got.filter((g) => g === "u").length, 1);
    assert.deepEqual([ev.leave, ev.drop], [[], []]);
  });
});
