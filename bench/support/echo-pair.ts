/**
 * An echo server and a client in this process over loopback UDP, for the one-process round-trip tools
 * (cpu-round-trip.ts, alloc-round-trip.ts, profile-round-trip.ts). `root` is the checkout whose
 * src/index.ts is loaded, so that two checkouts can be compared (A/B) with the same tool.
 */
import type { AeadBackendName } from "../../src/protocol/aead.js";

export const THIS_ROOT = new URL("../..", import.meta.url).pathname.replace(/\/$/, "");

export interface EchoPair {
  /** Sends `payload`, waits for `warm` echoes, calls `onWarm`, then for `n` more; each echo sends the next. */
  run(payload: Uint8Array, warm: number, n: number, onWarm: () => void): Promise<void>;
  close(): Promise<void>;
}

export async function openEchoPair(root = THIS_ROOT, aead: AeadBackendName = "sodium"): Promise<EchoPair> {
  const { FastnetServer, connect } = (await import(`${root}/src/index.ts`)) as typeof import("../../src/index.js");
  const server = new FastnetServer({ aead, devCertificateDir: false });
  await server.listen(0, "127.0.0.1");
  server.on("session", (s) => s.on("message", (m: Uint8Array) => s.send(m)));
  const fp = Buffer.from(server.fingerprint!).toString("hex");
  const client = await connect(`http://127.0.0.1:${server.port}`, { fingerprint: fp, aead });
  return {
    run: (payload, warm, n, onWarm) =>
      new Promise<void>((resolve) => {
        let got = 0;
        client.on("message", () => {
          got++;
          if (got === warm) onWarm();
          if (got === warm + n) {
            client.removeAllListeners("message");
            return resolve();
          }
          client.send(payload);
        });
        client.send(payload);
      }),
    close: async () => {
      client.close();
      await server.close();
    },
  };
}
