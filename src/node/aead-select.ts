/** Picks the AEAD backend: the fastest one present, or the one the user forced. */
import type { AeadBackend, AeadBackendName } from "../protocol/aead.js";
import { nobleBackend } from "../protocol/aead-noble.js";
import { FastnetError } from "../protocol/errors.js";
import { nodeCryptoAvailable, nodeCryptoBackend } from "./aead-node-crypto.js";
import { loadSodiumBackend, sodiumUnavailableReason } from "./aead-sodium.js";

/** Backends usable in this process, fastest first (order measured by bench/aead.ts). */
export function availableAeadBackends(): AeadBackend[] {
  const list: AeadBackend[] = [];
  const sodium = loadSodiumBackend();
  if (sodium) list.push(sodium);
  if (nodeCryptoAvailable()) list.push(nodeCryptoBackend);
  list.push(nobleBackend);
  return list;
}

function unavailableReason(name: string): string {
  switch (name) {
    case "sodium": return sodiumUnavailableReason() ?? "sodium-native is not available";
    case "node": return "this Node build's crypto does not offer chacha20-poly1305";
    case "noble": return "@noble/ciphers was not offered";
    default: return "no such backend (expected sodium, node, noble or auto)";
  }
}

/**
 * Returns the backend for a preference: "auto" is the fastest available; a name forces that backend.
 * `available` defaults to availableAeadBackends() and is a parameter so callers and tests can restrict it.
 * @throws FastnetError("BACKEND_UNAVAILABLE") when the forced backend is not available.
 */
export function selectAeadBackend(
  pref: AeadBackendName | "auto",
  available: readonly AeadBackend[] = availableAeadBackends(),
): AeadBackend {
  const found = pref === "auto" ? available[0] : available.find((b) => b.name === pref);
  if (found) return found;
  const message = pref === "auto"
    ? "no AEAD backend is available"
    : `AEAD backend "${pref}" is unavailable: ${unavailableReason(pref)}`;
  throw new FastnetError("BACKEND_UNAVAILABLE", message);
}
