/**
 * nginx in front of the game processes: its configuration (renderNginxConfig, shipped rendered for
 * the default ports as nginx.conf next to this file) and a launcher that runs it from a directory of
 * its own (no root-owned paths; `daemon off`, so it is our child and stops with us).
 *
 * - UDP: one public port. fastnet-cid.js reads the server id in the connection ID of each nginx UDP
 *   session's first datagram and picks the process (`map $fastnet_sid`).
 * - TCP, public port: matchmaking, spread over all processes (any process can match).
 * - TCP, one port per process: the room connection (the fastnet handshake). Each process's Colyseus
 *   `publicAddress` names its own port here, so the seat reservation sends the client to the process
 *   that holds the room.
 */
import { copyFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { here, ready, start, type Child } from "./processes.js";

/** One game process as nginx sees it. */
export interface NginxBackend {
  /** The process's server id (SERVER_ID), one byte in every connection ID it issues. */
  serverId: number;
  /** Where the process listens (TCP and UDP on the same number). */
  host: string;
  port: number;
  /** The balancer's TCP port for this process (the process's Colyseus publicAddress port). */
  publicTcpPort: number;
}

export interface NginxLayout {
  /** Address nginx listens on (the public address). */
  host: string;
  /** Public UDP port (sessions) and public TCP port (matchmaking); may be the same number. */
  udpPort: number;
  tcpPort: number;
  backends: NginxBackend[];
  /** Worker processes (default 2). UDP listens with `reuseport`, so a client flow stays on one worker. */
  workers?: number;
  /** Where Debian's dynamic modules are (default /usr/lib/nginx/modules). */
  modulesDir?: string;
}

/** Handshakes (HTTP Upgrade to /.fastnet) one client address may have open at once. */
export const HANDSHAKES_PER_CLIENT = 16;

/** The layout examples/cluster/main.ts runs by default (and nginx.conf is rendered for). */
export const DEFAULT_LAYOUT: NginxLayout = {
  host: "127.0.0.1",
  udpPort: 2567,
  tcpPort: 2567,
  backends: [1, 2, 3].map((i) => ({ serverId: i, host: "127.0.0.1", port: 2580 + i, publicTcpPort: 2570 + i })),
};

const hex = (id: number): string => id.toString(16).padStart(2, "0");

/**
 * The nginx.conf of a layout. Paths are relative to nginx's prefix (`-p`), and fastnet-cid.js is
 * expected next to the file: startNginx() puts both in its directory.
 */
export function renderNginxConfig(layout: NginxLayout): string {
  const { host, backends } = layout;
  const modules = layout.modulesDir ?? "/usr/lib/nginx/modules";
  const proxied = (target: string): string[] => [
    `      proxy_pass http://${target};`,
    "      proxy_http_version 1.1;",
    // The handshake is an HTTP Upgrade: pass it on, and after the 101 nginx relays bytes both ways.
    "      proxy_set_header Upgrade $http_upgrade;",
    "      proxy_set_header Connection $connection_upgrade;",
    "      proxy_set_header Host $http_host;",
    // The processes see nginx as the TCP peer: these tell them (and Colyseus' auth context) who it is.
    "      proxy_set_header X-Real-IP $remote_addr;",
    "      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
  ];
  const location = (target: string): string[] => [
    "    location = /.fastnet {",
    `      limit_conn fastnet_handshakes ${HANDSHAKES_PER_CLIENT};`,
    ...proxied(target),
    "    }",
    "    location / {",
    ...proxied(target),
    "    }",
  ];
  return [
    "# colyseus-fastnet cluster: one public UDP port routed by connection ID, matchmaking on one TCP",
    "# port, one TCP port per game process for its room connections. Rendered by",
    "# examples/cluster/nginx.ts (renderNginxConfig); run from a directory holding this file and",
    "# fastnet-cid.js: nginx -p DIR -c DIR/nginx.conf -e DIR/error.log",
    `load_module ${modules}/ngx_stream_module.so;`,
    `load_module ${modules}/ngx_stream_js_module.so;`,
    "daemon off;",
    `worker_processes ${layout.workers ?? 2};`,
    "pid nginx.pid;",
    "error_log error.log info; # info: one line per UDP flow and the backend it went to",
    "error_log stderr notice;",
    "events { worker_connections 4096; }",
    "",
    "stream {",
    "  js_import fastnet from fastnet-cid.js;",
    "  js_var $fastnet_sid_len 1; # bytes of server id in each CID (the processes' serverId length)",
    '  js_var $fastnet_sid "";',
    "  # server id (hex) -> the process's own UDP address",
    "  map $fastnet_sid $fastnet_backend {",
    ...backends.map((b) => `    ${hex(b.serverId)} ${b.host}:${b.port};`),
    "  }",
    "  server {",
    `    listen ${host}:${layout.udpPort} udp reuseport;`,
    "    js_preread fastnet.preread;",
    "    proxy_pass $fastnet_backend;",
    "    # a flow's upstream socket lives while datagrams pass (keep-alives every second), and is",
    "    # freed this long after its client moved away or went quiet",
    "    proxy_timeout 30s;",
    "  }",
    "}",
    "",
    "http {",
    "  # the port a request came in on and the process it went to (a handshake is logged when its",
    "  # tunnel closes, right after the session opened over UDP)",
    "  log_format fastnet '$remote_addr $server_port \"$request\" $status $upstream_addr';",
    "  access_log access.log fastnet;",
    "  client_body_temp_path client_body_temp;",
    "  proxy_temp_path proxy_temp;",
    "  fastcgi_temp_path fastcgi_temp;",
    "  uwsgi_temp_path uwsgi_temp;",
    "  scgi_temp_path scgi_temp;",
    "  map $http_upgrade $connection_upgrade {",
    "    default upgrade;",
    '    "" close;',
    "  }",
    "  # per client address: the processes see every handshake come from nginx, so the limit is here",
    "  limit_conn_zone $binary_remote_addr zone=fastnet_handshakes:1m;",
    "  upstream fastnet_matchmaking {",
    ...backends.map((b) => `    server ${b.host}:${b.port};`),
    "  }",
    "  # matchmaking: any process",
    "  server {",
    `    listen ${host}:${layout.tcpPort};`,
    ...location("fastnet_matchmaking"),
    "  }",
    ...backends.flatMap((b) => [
      `  # server id ${b.serverId}: its room connections (Colyseus publicAddress ${host}:${b.publicTcpPort})`,
      "  server {",
      `    listen ${host}:${b.publicTcpPort};`,
      ...location(`${b.host}:${b.port}`),
      "  }",
    ]),
    "}",
    "",
  ].join("\n");
}

/** A running nginx: its child process and the directory holding its config and logs. */
export interface Nginx {
  child: Child;
  dir: string;
  /** The error log, one line per UDP flow ("udp client A connected to B", "udp proxy C connected to D"). */
  errorLog: string;
}

/** Writes the layout's config and fastnet-cid.js into `dir` and runs nginx there until its workers start. */
export async function startNginx(layout: NginxLayout, dir: string): Promise<Nginx> {
  await writeFile(join(dir, "nginx.conf"), renderNginxConfig(layout));
  await copyFile(here("./fastnet-cid.js"), join(dir, "fastnet-cid.js"));
  const errorLog = join(dir, "error.log");
  const child = start("nginx", "nginx", ["-p", dir, "-c", join(dir, "nginx.conf"), "-e", errorLog]);
  const workers = layout.workers ?? 2;
  let started = 0;
  await ready(child, (line) => (line.includes("start worker process") && ++started === workers ? true : undefined), 10_000, "nginx workers");
  return { child, dir, errorLog };
}
