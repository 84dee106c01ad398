/** Records what console.error prints during a test (and keeps it off the test output). */
import { format } from "node:util";

export interface ConsoleCapture {
  /** Every console.error call, formatted as console would print it. */
  lines: string[];
  restore(): void;
}

/** Replaces console.error until `restore()` (call it in a finally or afterEach). */
export function captureConsoleError(): ConsoleCapture {
  const original = console.error;
  const lines: string[] = [];
  console.error = (...args: unknown[]) => void lines.push(format(...args));
  return {
    lines,
    restore: () => {
      console.error = original;
    },
  };
}
