/**
 * Unknown option keys are refused with a named error (src/node/option-keys.ts), at each entry point:
 * `new FastnetClient(url, options)` and `new FastnetTransport(options)` throw at construction,
 * `connect(url, options)` rejects before any network activity.
 */
import assert from "node:assert/strict";
import { FastnetError, FastnetOptionError, FastnetTransport, connect } from "../src/index.js";
import { FastnetClient } from "../src/client.js";
import { checkOptionKeys, suggestKey } from "../src/node/option-keys.js";

const isOptionError = (key: string, suggestion: string | undefined, where: RegExp) => (e: unknown) => {
  assert.ok(e instanceof FastnetOptionError, `a FastnetOptionError, got ${String(e)}`);
  assert.ok(e instanceof FastnetError, "still a FastnetError");
  assert.equal(e.name, "FastnetOptionError");
  assert.equal(e.code, "INVALID_OPTION");
  assert.equal(e.key, key);
  assert.equal(e.suggestion, suggestion);
  const hint = suggestion === undefined ? "" : ` (did you mean "${suggestion}"?)`;
  assert.ok(e.message.startsWith(`unknown option "${key}"${hint}`), e.message);
  assert.match(e.message, where);
  return true;
};

describe("option keys: unknown keys are refused with FastnetOptionError", () => {
  describe("checkOptionKeys / suggestKey", () => {
    const known = ["idleTimeoutMs", "keepAliveMs", "bindTimeoutMs", "maxMessageSize", "tls", "path"];

    it("accepts known keys, an empty object, and leaves non-objects to the caller", () => {
      checkOptionKeys({ idleTimeoutMs: 1, tls: {} }, known, "x");
      checkOptionKeys({}, known, "x");
      checkOptionKeys(undefined, known, "x");
      checkOptionKeys(null, known, "x");
      checkOptionKeys("nonsense", known, "x");
    });

    it("a case slip names the key it meant", () => {
      assert.throws(() => checkOptionKeys({ idleTimeoutMS: 5000 }, known, "the test"), isOptionError("idleTimeoutMS", "idleTimeoutMs", /in the test$/));
      assert.equal(new FastnetOptionError("idleTimeoutMS", "idleTimeoutMs", "w").message, 'unknown option "idleTimeoutMS" (did you mean "idleTimeoutMs"?) in w');
    });

    it("typos within a small edit distance are suggested (a missing letter, a transposition, a wrong letter)", () => {
      assert.equal(suggestKey("keepAlivMs", known), "keepAliveMs");
      assert.equal(suggestKey("bindTiemoutMs", known), "bindTimeoutMs");
      assert.equal(suggestKey("maxMesageSize", known), "maxMessageSize");
      assert.equal(suggestKey("idleTimeout", known), "idleTimeoutMs");
      assert.equal(suggestKey("pth", known), "path");
    });

    it("a key like none of them gets no suggestion", () => {
      assert.equal(suggestKey("reconnectDelay", known), undefined);
      assert.throws(() => checkOptionKeys({ reconnectDelay: 1 }, known, "w"), isOptionError("reconnectDelay", undefined, /in w$/));
    });

    it("a misspelt key is refused even when its value is undefined", () => {
      assert.throws(() => checkOptionKeys({ idleTimeoutMS: undefined }, known, "w"), FastnetOptionError);
    });

    it("inherited keys are not looked at (only own enumerable ones)", () => {
      const options = Object.create({ inherited: 1 }) as Record<string, unknown>;
      options["tls"] = {};
      checkOptionKeys(options, known, "w");
    });
  });

  describe("entry points", () => {
    it("new FastnetClient(url, { idleTimeoutMS }) throws at construction", () => {
      assert.throws(() => new FastnetClient("http://127.0.0.1:1", { idleTimeoutMS: 5000 } as never), isOptionError("idleTimeoutMS", "idleTimeoutMs", /FastnetClient options/));
    });

    it("FastnetClient takes every option it documents (SDK, TLS, path, engine)", () => {
      new FastnetClient("http://127.0.0.1:1", {
        headers: { a: "b" },
        urlBuilder: (u) => u.toString(),
        fetchFn: fetch,
        tls: { rejectUnauthorized: false },
        fingerprint: new Uint8Array(32),
        pinDevCertificate: false,
        localAddress: "127.0.0.1",
        localPort: 0,
        autoRebindAfterKeepAlives: 3,
        path: "udp",
        udpFallbackMs: 500,
        idleTimeoutMs: 5000,
        keepAliveMs: 100,
        handshakeTimeoutMs: 1000,
        aead: "auto",
      });
    });

    it("FastnetClient refuses the SDK's `protocol` (its protocol is fastnet)", () => {
      assert.throws(() => new FastnetClient("http://127.0.0.1:1", { protocol: "ws" } as never), isOptionError("protocol", undefined, /FastnetClient options/));
    });

    it("new FastnetTransport({ idleTimeoutMS }) throws at construction; so does an unknown key of its webSocket option", () => {
      assert.throws(() => new FastnetTransport({ idleTimeoutMS: 5000 } as never), isOptionError("idleTimeoutMS", "idleTimeoutMs", /FastnetTransport options/));
      assert.throws(() => new FastnetTransport({ udpport: 1 } as never), isOptionError("udpport", "udpPort", /FastnetTransport options/));
      assert.throws(
        () => new FastnetTransport({ webSocket: { maxConnection: 1 } } as never),
        isOptionError("maxConnection", "maxConnections", /webSocket option/),
      );
    });

    it("FastnetTransport takes its documented options (nothing is bound before listen)", () => {
      const t = new FastnetTransport({ udpPort: 0, publicPort: 1234, idleTimeoutMs: 5000, maxSessions: 10, webSocket: { maxConnections: 5 } });
      t.shutdown();
    });

    it("connect(url, { idleTimeoutMS }) rejects before connecting", async () => {
      await assert.rejects(connect("http://127.0.0.1:1", { idleTimeoutMS: 5000 } as never), isOptionError("idleTimeoutMS", "idleTimeoutMs", /connect\(\) options/));
    });
  });
});
