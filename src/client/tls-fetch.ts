import http from "node:http";
import https from "node:https";

/** The TLS settings of FastnetClientOptions.tls that matter to HTTPS requests. */
export interface FetchTlsOptions {
  ca?: string | string[] | Buffer;
  rejectUnauthorized?: boolean;
  servername?: string;
}

/** Responses larger than this are refused: matchmaking answers are a few hundred bytes. */
export const MAX_RESPONSE_BYTES = 4 << 20;

/**
 * A `fetch` for the SDK's HTTP requests (matchmaking, auth) that verifies https servers with the
 * client's own `tls` settings, as the fastnet handshake does. Node's global fetch takes no CA: without
 * this a private CA works for the UDP session but matchmaking fails with "fetch failed".
 */
export function createTlsFetch(tlsOptions: FetchTlsOptions): (input: string | URL | Request, init?: RequestInit) => Promise<Response> {
  return async (input, init = {}) => {
    const request = input instanceof Request ? input : undefined;
    const url = new URL(request ? request.url : input.toString());
    const method = (init.method ?? request?.method ?? "GET").toUpperCase();
    const headers = new Headers(request?.headers);
    new Headers(init.headers).forEach((value, name) => headers.set(name, value));
    let body: Buffer | undefined;
    const given = init.body ?? (request && method !== "GET" && method !== "HEAD" ? await request.arrayBuffer() : undefined);
    if (given !== undefined && given !== null) body = Buffer.from(await new Response(given as ConstructorParameters<typeof Response>[0]).arrayBuffer());
    if (body) headers.set("content-length", String(body.length));
    const signal = init.signal ?? request?.signal;
    signal?.throwIfAborted();
    const secure = url.protocol === "https:";
    if (!secure && url.protocol !== "http:") throw new TypeError(`fetch: unsupported protocol ${url.protocol}`);
    const options: https.RequestOptions = {
      method,
      headers: Object.fromEntries(headers),
      ...(secure ? { ca: tlsOptions.ca, rejectUnauthorized: tlsOptions.rejectUnauthorized, servername: tlsOptions.servername } : {}),
      signal: signal ?? undefined,
    };
    return new Promise<Response>((resolve, reject) => {
      const fail = (err: Error): void => reject(new TypeError("fetch failed", { cause: err }));
      const req = (secure ? https : http).request(url, options, (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on("data", (chunk: Buffer) => {
          size += chunk.length;
          if (size > MAX_RESPONSE_BYTES) {
            req.destroy(new Error(`response from ${url.origin} exceeds ${MAX_RESPONSE_BYTES} bytes`));
            return;
          }
          chunks.push(chunk);
        });
        res.on("error", fail);
        res.on("end", () => {
          const status = res.statusCode ?? 0;
          const responseHeaders = new Headers();
          for (const [name, value] of Object.entries(res.headers)) {
            if (Array.isArray(value)) for (const v of value) responseHeaders.append(name, v);
            else if (value !== undefined) responseHeaders.set(name, value);
          }
          const noBody = status === 204 || status === 205 || status === 304 || method === "HEAD";
          resolve(new Response(noBody ? null : Buffer.concat(chunks), { status, statusText: res.statusMessage ?? "", headers: responseHeaders }));
        });
      });
      req.on("error", fail);
      req.end(body);
    });
  };
}
