/**
 * sodium-native and node:crypto report a tag mismatch by throwing, and capturing that error's stack
 * trace is most of the cost of rejecting a forged packet (sodium at 64 B: about 5.3 µs against 1.3 µs
 * without it; bench/aead.ts, column "bad ns"). The AEAD backends switch stack capture off around their
 * synchronous calls and always restore it: nothing else runs meanwhile. Only where
 * Error.stackTraceLimit is writable (it is not under --frozen-intrinsics).
 */
let canSilenceStacks = Object.getOwnPropertyDescriptor(Error, "stackTraceLimit")?.writable === true;

/** Sets Error.stackTraceLimit to 0 if it can; false (and never again tried) once Error has been frozen. */
export function silenceStacks(): boolean {
  if (!canSilenceStacks) return false;
  try {
    Error.stackTraceLimit = 0;
    return true;
  } catch {
    return (canSilenceStacks = false);
  }
}
