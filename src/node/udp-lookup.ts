import dns from "node:dns";
import { isIP } from "node:net";

/** IP literals already seen, with their family; cleared when full. */
const literals = new Map<string, number>();
const MAX_CACHED_LITERALS = 4096;

type LookupCallback = (err: NodeJS.ErrnoException | null, address: string, family: number) => void;

/**
 * The `lookup` of our UDP sockets. dgram resolves the destination of every send through it, and the
 * default (dns.lookup) answers even an IP literal only on the next tick: a datagram sent right before
 * process.exit() (a server's CLOSE on SIGTERM) would never leave. An IP literal, which every session
 * address is (it comes from a received datagram), is answered synchronously here, so the send reaches
 * the kernel before send() returns; anything else goes to dns.lookup as before.
 */
export function literalLookup(hostname: string, options: number | dns.LookupOneOptions, callback: LookupCallback): void {
  // dgram calls this for every datagram sent to an address: isIP's regular expressions ran per packet.
  let family = literals.get(hostname);
  if (family === undefined) {
    family = isIP(hostname);
    if (family !== 0) {
      if (literals.size >= MAX_CACHED_LITERALS) literals.clear(); // bounded, whoever the peers are
      literals.set(hostname, family);
    }
  }
  if (family !== 0) {
    callback(null, hostname, family);
    return;
  }
  const opts: dns.LookupOneOptions = typeof options === "number" ? { family: options } : { ...options, all: false };
  dns.lookup(hostname, opts, callback);
}

/** @internal How many literals the cache holds (tests check its bound). */
export function cachedLiteralCount(): number {
  return literals.size;
}
