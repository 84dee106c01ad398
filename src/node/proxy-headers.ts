import type { IncomingHttpHeaders } from "node:http";

/**
 * Headers a reverse proxy sets to say who the client is (and how it reached the proxy). Only the
 * proxy in front of the HTTP server can vouch for them, so they are read from the handshake's HTTP
 * Upgrade request, never from the ClientHello: the hello travels end to end inside TLS, where any
 * client can write anything (an `x-forwarded-for` there would let a player pick its own IP).
 */
const PROXY_HEADERS = new Set([
  "forwarded",
  "via",
  "x-real-ip",
  "x-client-ip",
  "true-client-ip",
  "cf-connecting-ip",
  "fastly-client-ip",
  "x-cluster-client-ip",
]);

/** Whether `name` (any case) is a proxy header: one of the above, or any `x-forwarded-*`. */
export function isProxyHeader(name: string): boolean {
  const n = name.toLowerCase();
  return PROXY_HEADERS.has(n) || n.startsWith("x-forwarded-");
}

/** The proxy headers of an HTTP request, lower-case names, repeated lines joined with ", ". */
export function proxyHeadersOf(headers: IncomingHttpHeaders): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined || !isProxyHeader(name)) continue;
    out[name.toLowerCase()] = Array.isArray(value) ? value.join(", ") : value;
  }
  return out;
}
