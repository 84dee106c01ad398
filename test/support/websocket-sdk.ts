/**
 * Plain @colyseus/sdk clients (WebSocket) for the dual-stack tests: the stock `Client`, plus one that
 * records the first byte of every frame its rooms receive (to tell `@unreliable` patches apart).
 */
import { Client as PlainClient, type Room as SdkRoom } from "@colyseus/sdk";
import type { ColyseusHarness } from "./colyseus-harness.js";
import { within } from "./wait.js";

export { PlainClient };

/** A stock SDK client that records the protocol byte of every frame each of its rooms receives. */
export class PlainRecordingClient extends PlainClient {
  private readonly frames = new WeakMap<object, number[]>();

  protected override createRoom<T>(roomName: string, rootSchema?: any): SdkRoom<any, T> {
    const room = super.createRoom<T>(roomName, rootSchema);
    const codes: number[] = [];
    this.frames.set(room, codes);
    const original = (room as any).onMessageCallback as (ev: { data: ArrayBuffer | Uint8Array }) => void;
    (room as any).onMessageCallback = function (this: unknown, ev: { data: ArrayBuffer | Uint8Array }) {
      codes.push(new Uint8Array(ev.data as ArrayBuffer)[0]!);
      return original.call(this, ev);
    };
    return room;
  }

  /** Protocol bytes of the frames `room` received so far, in order. */
  framesOf(room: SdkRoom): number[] {
    return this.frames.get(room) ?? [];
  }
}

/** Joins (or creates) `name` with a plain SDK client and registers the room for the harness' teardown. */
export async function joinPlain<R extends SdkRoom = SdkRoom>(h: ColyseusHarness, client: PlainClient, name: string, options: any = {}, ms = 10_000): Promise<R> {
  const room = (await within(client.joinOrCreate(name, options), ms, `plain SDK joinOrCreate(${name})`)) as unknown as R;
  return h.track(room);
}
