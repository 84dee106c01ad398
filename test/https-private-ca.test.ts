/**
 * https matchmaking with a private CA given as FastnetClient's `tls: { ca }`: the SDK's HTTP requests
 * verify with it too (node's global fetch takes no CA and failed with "fetch failed").
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import type http from "node:http";
import https from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Room, Server } from "@colyseus/core";
import type { Room as SdkRoom } from "@colyseus/sdk";
import { FastnetTransport } from "../src/index.js";
import { FastnetClient } from "../src/client.js";
import { within } from "./support/wait.js";

class EchoRoom extends Room {
  override onCreate(): void {
    this.onMessage("echo", (client, msg) => client.send("echo", msg));
  }
}

/** A private CA and a leaf for 127.0.0.1 signed by it, made with the openssl CLI in `dir`. */
async function privateCa(dir: string): Promise<{ ca: string; cert: string; key: string }> {
  const ossl = (...args: string[]): void => void execFileSync("openssl", args, { cwd: dir, stdio: "pipe" });
  ossl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
    "-subj", "/CN=fastnet test CA", "-days", "2", "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign");
  ossl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "leaf.key", "-out", "leaf.csr", "-subj", "/CN=127.0.0.1");
  await writeFile(join(dir, "leaf.ext"), "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n");
  ossl("x509", "-req", "-in", "leaf.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", "leaf.pem", "-days", "2", "-extfile", "leaf.ext");
  const read = (f: string) => readFile(join(dir, f), "utf8");
  return { ca: await read("ca.pem"), cert: await read("leaf.pem"), key: await read("leaf.key") };
}

describe("https matchmaking with a private CA in FastnetClient's tls options", function () {
  this.timeout(30_000);
  let dir: string;
  let server: Server | undefined;
  let room: SdkRoom | undefined;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "fastnet-ca-"));
  });

  afterEach(async () => {
    if (room) await within(room.leave(true), 3000, "leave").catch(() => undefined);
    room = undefined;
    if (server) await within(server.gracefullyShutdown(false), 10_000, "shutdown").catch(() => undefined);
    server = undefined;
    await rm(dir, { recursive: true, force: true });
  });

  it("joins with tls: { ca } and no NODE_EXTRA_CA_CERTS; without the CA matchmaking is refused", async () => {
    const { ca, cert, key } = await privateCa(dir);
    const httpsServer = https.createServer({ cert, key });
    const transport = new FastnetTransport({ server: httpsServer as unknown as http.Server, tls: { cert, key } });
    server = new Server({ transport, greet: false, gracefullyShutdown: false });
    server.define("echo", EchoRoom);
    await within(server.listen(0, "127.0.0.1"), 10_000, "listen");
    const endpoint = `https://127.0.0.1:${transport.engine.port}`;

    room = await within(new FastnetClient(endpoint, { tls: { ca } }).joinOrCreate("echo"), 10_000, "join over https");
    const echoed = new Promise((resolve) => room!.onMessage("echo", resolve));
    room.send("echo", "hi");
    assert.equal(await within(echoed, 5000, "echo"), "hi");

    await assert.rejects(
      within(new FastnetClient(endpoint).joinOrCreate("echo"), 10_000, "join without the CA"),
      /fetch failed|certificate/i,
      "the CA is what made the difference",
    );
  });
});
