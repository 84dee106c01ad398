import assert from "node:assert/strict";
import { categorize, parsePerfScript } from "../bench/support/scale-perf.js";
import { categoryOfScript, summarize, summarizeJs, type CpuProfile } from "../bench/support/scale-profile.js";

const ROOT = "file:///work/repo";

describe("bench:scale profile attribution (bench/support/scale-profile.ts, scale-perf.ts)", () => {
  it("names a script's category: AEAD wrappers before the protocol core, the adapter, Colyseus, node", () => {
    assert.equal(categoryOfScript(`${ROOT}/src/node/aead-sodium.ts`), "AEAD");
    assert.equal(categoryOfScript(`${ROOT}/src/protocol/packet-keys.ts`), "AEAD");
    assert.equal(categoryOfScript(`${ROOT}/src/protocol/key-schedule.ts`), "AEAD");
    assert.equal(categoryOfScript(`${ROOT}/node_modules/sodium-native/index.js`), "AEAD");
    assert.equal(categoryOfScript(`${ROOT}/src/protocol/recovery.ts`), "protocol core");
    assert.equal(categoryOfScript(`${ROOT}/src/node/handshake-server.ts`), "TLS handshake");
    assert.equal(categoryOfScript(`${ROOT}/src/node/session.ts`), "driver");
    assert.equal(categoryOfScript(`${ROOT}/src/server/server-client.ts`), "adapter");
    assert.equal(categoryOfScript(`/work/repo/node_modules/ws/lib/sender.js`), "ws library");
    assert.equal(categoryOfScript(`${ROOT}/node_modules/@colyseus/ws-transport/build/index.mjs`), "ws library");
    assert.equal(categoryOfScript(`${ROOT}/node_modules/@colyseus/schema/build/index.mjs`), "colyseus");
    assert.equal(categoryOfScript("node:dgram"), "node net/dgram");
    assert.equal(categoryOfScript("node:internal/stream_base_commons"), "node net/dgram");
    assert.equal(categoryOfScript("node:_tls_wrap"), "TLS handshake");
    assert.equal(categoryOfScript("node:_http_server"), "HTTP");
    assert.equal(categoryOfScript("node:events"), "node other");
    assert.equal(categoryOfScript(""), null);
  });

  it("V8 profile: self time by category, a native frame under node:dgram is send/write, idle left out", () => {
    const p: CpuProfile = {
      nodes: [
        { id: 1, callFrame: { functionName: "(root)", url: "", lineNumber: 0 }, children: [2, 5, 6] },
        { id: 2, callFrame: { functionName: "flush", url: `${ROOT}/src/node/session.ts`, lineNumber: 0 }, children: [3] },
        { id: 3, callFrame: { functionName: "send", url: "node:dgram", lineNumber: 0 }, children: [4] },
        { id: 4, callFrame: { functionName: "send", url: "", lineNumber: -1 } },
        { id: 5, callFrame: { functionName: "(idle)", url: "", lineNumber: -1 } },
        { id: 6, callFrame: { functionName: "(garbage collector)", url: "", lineNumber: -1 } },
      ],
      startTime: 0,
      endTime: 100,
      samples: [2, 4, 4, 5, 6],
      timeDeltas: [0, 10, 20, 30, 40],
    };
    const s = summarize(p);
    // Each sample stands for the delta before the next one; the last one for nothing.
    assert.equal(s.byCategory.get("driver"), 10);
    assert.equal(s.byCategory.get("send/write"), 50);
    assert.equal(s.idleUs, 40);
    assert.equal(s.byCategory.get("GC"), 0);
    assert.equal(s.busyUs, 60);
    const js = summarizeJs(p);
    assert.deepEqual([...js], [["driver", 10]], "only frames with a script");
  });

  it("perf: a kernel leaf goes to the syscall its libuv caller made; a builtin to its JS caller; stale map names apart", () => {
    const text = [
      "100 100 ",
      "\t ffffffff8100 _raw_spin_unlock_irqrestore ([kernel.kallsyms])",
      "\t 14bc51b uv__udp_sendmsg (/usr/bin/node)",
      "\t 7fe9 JS:*sendTo file:///work/repo/src/node/server.ts:1:3305 (/tmp/perf-100.map)",
      "",
      "100 100 ",
      "\t 1501ad1 Builtins_ArrayPrototypePush (/usr/bin/node)",
      "\t 7fe9 JS:*onAck file:///work/repo/src/protocol/recovery.ts:1:1263 (/tmp/perf-100.map)",
      "",
      "100 100 ",
      "\t 7fe9 Eval:~ /work/repo/node_modules/semver/functions/valid.js:1:1 (/tmp/perf-100.map)",
      "",
      "100 100 ",
      "\t 5000 chacha20_encrypt_bytes (/work/repo/node_modules/sodium-native/prebuilds/linux-x64/sodium-native.node)",
      "",
      "100 107 ",
      "\t 6000 v8::internal::Scavenger::ScavengePage (/usr/bin/node)",
      "",
      "100 100 ",
      "\t 14c05fb uv__io_poll (/usr/bin/node)",
      "",
    ].join("\n");
    const samples = parsePerfScript(text);
    assert.equal(samples.length, 6);
    assert.deepEqual(
      samples.map((s) => categorize(s, 100)),
      ["kernel: UDP send", "protocol core", "JS, unresolved (stale map)", "AEAD (native)", "GC", "native loop"],
    );
  });
});
