/**
 * A hostile player for the tests: a real TLS 1.3 handshake against a real server (so it holds the
 * session's real keys), then packets it builds and seals itself on real UDP sockets, frame by frame,
 * free to break every rule of the protocol. It also opens what the server sends back, so a test
 * can see the packet numbers it could acknowledge, the bytes each of its addresses received, and
 * whether the server closed it.
 */
import dgram from "node:dgram";
import { selectAeadBackend } from "../../src/node/aead-select.js";
import { performHandshake, type ClientHandshake } from "../../src/node/handshake-client.js";
import { AckFrame, FrameType, walkFrames, writeAckFrame, writePathFrame, writeStreamFrameHeader, type FrameVisitor } from "../../src/protocol/frames.js";
import { PacketCipher, splitExportedSecrets } from "../../src/protocol/key-schedule.js";
import { maxHeldBytes } from "../../src/protocol/connection.js";
import { DEFAULT_SESSION_OPTIONS, transportParams } from "../../src/protocol/options.js";
import { CID_OFFSET, PacketType, cidEquals, parseHeader, writeHeader, type ParsedHeader } from "../../src/protocol/packet-header.js";
import { decodePacketNumber } from "../../src/protocol/packet-number.js";
import { RangeSet } from "../../src/protocol/range-set.js";
import { varintSize, writeVarint } from "../../src/protocol/varint.js";
import { AEAD_TAG_LENGTH } from "../../src/protocol/aead.js";
import { CID_LENGTH, MAX_DATAGRAM_SIZE } from "../../src/protocol/version.js";

/**
 * The documented worst case of one hostile session's `session.getStats().heldBytes` on the server
 * with the default options, whatever the peer does: the engine's own bound, `maxHeldBytes` (send
 * queue, receive window and piece charges, the partly reassembled message, sent-packet records,
 * queued datagrams and path frames: 3,560,448 bytes with the defaults). An application that queues
 * behind the send queue in a SendBacklog, as the Colyseus adapters do, adds at most its
 * DEFAULT_BACKLOG_BYTES (2 MiB) on top.
 */
export const HOSTILE_SESSION_BOUND_BYTES = maxHeldBytes(DEFAULT_SESSION_OPTIONS);

/** Packet numbers are always sent in 4 bytes: the server decodes them whatever it acknowledged. */
const PN_LENGTH = 4;
/** Room for frames in one datagram of ours (header with a 4-byte packet number, AEAD tag). */
export const PAYLOAD_ROOM = MAX_DATAGRAM_SIZE - (1 + CID_LENGTH + PN_LENGTH) - AEAD_TAG_LENGTH;

/** Builds a frame payload byte by byte: valid frames through the protocol's writers, anything else raw. */
export class PayloadBuilder {
  readonly buf = new Uint8Array(4 * MAX_DATAGRAM_SIZE);
  length = 0;

  /** Bytes left before the payload no longer fits one datagram. */
  get room(): number {
    return PAYLOAD_ROOM - this.length;
  }

  bytes(): Uint8Array {
    return this.buf.slice(0, this.length);
  }

  raw(...bytes: number[]): this {
    this.buf.set(bytes, this.length);
    this.length += bytes.length;
    return this;
  }

  varint(v: number): this {
    this.length = writeVarint(this.buf, this.length, v);
    return this;
  }

  ping(): this {
    return this.raw(FrameType.Ping);
  }

  padding(n: number): this {
    this.buf.fill(FrameType.Padding, this.length, this.length + n);
    this.length += n;
    return this;
  }

  /** An ACK frame of the half-open ranges [starts[i], ends[i]), ascending (as RangeSet holds them). */
  ack(starts: readonly number[], ends: readonly number[], delayUs = 0): this {
    this.length = writeAckFrame(this.buf, this.length, this.buf.length - this.length, starts, ends, delayUs);
    return this;
  }

  /** An ACK frame acknowledging exactly [smallest, largest]. */
  ackRange(smallest: number, largest: number): this {
    return this.ack([smallest], [largest + 1]);
  }

  stream(offset: number, data: Uint8Array): this {
    const at = writeStreamFrameHeader(this.buf, this.length, offset, data.length);
    this.buf.set(data, at);
    this.length = at + data.length;
    return this;
  }

  pathChallenge(data: Uint8Array): this {
    this.length = writePathFrame(this.buf, this.length, FrameType.PathChallenge, data);
    return this;
  }

  pathResponse(data: Uint8Array): this {
    this.length = writePathFrame(this.buf, this.length, FrameType.PathResponse, data);
    return this;
  }
}

/** Bytes of a STREAM frame carrying `len` bytes at `offset`. */
export function streamFrameSize(offset: number, len: number): number {
  return 1 + varintSize(offset) + varintSize(len) + len;
}

/** What one local socket of the hostile client saw: for amplification accounting per address. */
export interface SocketLedger {
  readonly socket: dgram.Socket;
  readonly address: string;
  readonly port: number;
  bytesSent: number;
  bytesReceived: number;
  datagramsReceived: number;
  /** Server packet numbers that arrived here (kept to 64 ranges). */
  readonly received: RangeSet;
  /** PATH_CHALLENGE data that arrived here (answered only on the first socket, see `proveAddress`). */
  challenges: Uint8Array[];
}

export interface HostileOptions {
  /** "http://127.0.0.1:port" of the server's handshake. */
  url: string;
  /** SHA-256 pin of the server certificate. */
  fingerprint: Uint8Array;
  /** Hello path (the server's application reads its role from it). */
  path: string;
  /** Local address of the first socket (default 127.0.0.1). */
  localAddress?: string;
  /**
   * Acknowledge every ack-eliciting packet of the server at once, as a well-behaved peer would (for
   * attacks that are not about acknowledgements; default false: the hostile acknowledges nothing
   * unless a test sends ACK frames itself).
   */
  autoAck?: boolean;
  /**
   * Answer the server's PATH_CHALLENGEs that reach the first socket, proving the hostile's own address
   * as any client does, so the server serves it in full (default true). Other sockets never answer.
   */
  proveAddress?: boolean;
}

/**
 * The hostile client. `open` runs the handshake and makes the first socket; `bind` sends the padded
 * Bind packet and waits for the server's answer; after that every `send` seals whatever payload the
 * test built, with the next packet number, from whichever socket it names.
 */
export class HostileClient {
  readonly cid: Uint8Array;
  /** Receive window the server advertised (the most stream bytes it must buffer out of order). */
  readonly serverWindow: number;
  readonly serverHost: string;
  readonly serverPort: number;
  readonly sockets: SocketLedger[] = [];
  /** Next packet number of ours. */
  nextPn = 0;
  /** Largest server packet number seen, and all of them (kept to 64 ranges). */
  largestServerPn = -1;
  readonly received = new RangeSet();
  datagramsReceived = 0;
  /** Server datagrams that did not open (a key we do not follow, or not for us). */
  undecryptable = 0;
  /** Stream bytes the server sent us (counting retransmissions). */
  streamBytesReceived = 0;
  /** The server's CLOSE, once one arrived. */
  closedBy: { code: number; reason: string } | null = null;
  private readonly sendCipher: PacketCipher;
  private readonly recvCipher: PacketCipher;
  private readonly header: ParsedHeader = { type: PacketType.Data, keyPhase: 0, pnLength: 1, truncatedPn: 0, headerLength: 0 };
  private readonly ackScratch = new AckFrame();
  private readonly flags = { ackEliciting: false };
  private readonly waiters = new Set<() => void>();
  private readonly closeHandshake: () => void;
  private readonly autoAck: boolean;
  private readonly proveAddress: boolean;
  /** The last PATH_CHALLENGE in the packet being read, if any. */
  private challengeIn: Uint8Array | null = null;
  private current: SocketLedger | null = null;
  private closed = false;

  private constructor(hs: ClientHandshake, o: HostileOptions) {
    const aead = selectAeadBackend("auto");
    const secrets = splitExportedSecrets(hs.keyingMaterial);
    this.cid = hs.accept.cid;
    this.sendCipher = new PacketCipher(aead, secrets.clientToServer);
    this.recvCipher = new PacketCipher(aead, secrets.serverToClient);
    this.serverWindow = hs.accept.params.receiveBufferBytes;
    this.serverHost = hs.accept.udpHost;
    this.serverPort = hs.accept.udpPort;
    // The server keeps the TLS connection until the UDP bind: closing it before would abandon the session.
    this.closeHandshake = () => hs.close();
    this.autoAck = o.autoAck ?? false;
    this.proveAddress = o.proveAddress ?? true;
  }

  /** Handshake (TLS 1.3, real keys) and the first UDP socket. Nothing is sent over UDP yet. */
  static async open(o: HostileOptions): Promise<HostileClient> {
    const hs = await performHandshake({
      url: o.url,
      hello: { path: o.path, params: transportParams(DEFAULT_SESSION_OPTIONS) },
      fingerprint: o.fingerprint,
      timeoutMs: 10_000,
    });
    const client = new HostileClient(hs, o);
    try {
      client.current = await client.addSocket(o.localAddress ?? "127.0.0.1");
    } catch (err) {
      hs.close();
      throw err;
    }
    return client;
  }


  /** Opens another local socket (a new source address for migration), bound to `address` on an OS-chosen port. */
  async addSocket(address: string): Promise<SocketLedger> {
    const socket = dgram.createSocket({ type: "udp4", recvBufferSize: 1 << 20, sendBufferSize: 1 << 20 });
    await new Promise<void>((resolve, reject) => {
      socket.once("error", reject);
      socket.bind(0, address, () => {
        socket.off("error", reject);
        resolve();
      });
    });
    socket.on("error", () => {}); // ICMP errors after the server went away: nothing to do
    const a = socket.address();
    const ledger: SocketLedger = {
      socket,
      address: a.address,
      port: a.port,
      bytesSent: 0,
      bytesReceived: 0,
      datagramsReceived: 0,
      received: new RangeSet(),
      challenges: [],
    };
    socket.on("message", (msg) => this.onDatagram(ledger, msg));
    this.sockets.push(ledger);
    return ledger;
  }

  /** The socket `send` uses by default. */
  get socket(): SocketLedger {
    return this.current!;
  }

  /** Sends the Bind packet (PING, padded to 1200 bytes) and waits for the server's first packet. */
  async bind(timeoutMs = 5000): Promise<void> {
    const p = new PayloadBuilder().ping();
    p.padding(p.room);
    this.sendRaw(this.seal(p.bytes(), PacketType.Bind), this.socket);
    await this.waitFor(() => this.datagramsReceived > 0, timeoutMs, "the server's answer to the bind");
    this.closeHandshake();
  }

  /** Seals `payload` as the next packet (Data unless `type` says otherwise). */
  seal(payload: Uint8Array, type: PacketType = PacketType.Data): Uint8Array {
    const pn = this.nextPn++;
    const headerLength = 1 + CID_LENGTH + PN_LENGTH;
    const out = Buffer.allocUnsafe(headerLength + payload.length + AEAD_TAG_LENGTH);
    writeHeader(out, type, 0, this.cid, pn, PN_LENGTH);
    this.sendCipher.seal(out, headerLength, pn, out.subarray(0, headerLength), payload);
    return out;
  }

  /** Seals and sends `payload` (a builder or bytes) from `from` (default: the current socket). */
  send(payload: PayloadBuilder | Uint8Array, from: SocketLedger = this.socket): void {
    this.sendRaw(this.seal(payload instanceof PayloadBuilder ? payload.bytes() : payload), from);
  }

  /** Sends bytes as they are (sealed or not) to the server's UDP port. */
  sendRaw(datagram: Uint8Array, from: SocketLedger = this.socket): void {
    if (this.closed) return;
    from.bytesSent += datagram.length;
    from.socket.send(datagram, this.serverPort, this.serverHost);
  }

  /** Resolves when `cond` holds (checked after every datagram and every 5 ms), rejects after `ms`. */
  waitFor(cond: () => boolean, ms: number, what: string): Promise<void> {
    if (cond()) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const check = (): void => {
        if (!cond()) return;
        done();
        resolve();
      };
      const poll = setInterval(check, 5);
      const timer = setTimeout(() => {
        done();
        reject(new Error(`hostile client: timed out after ${ms} ms waiting for ${what}`));
      }, ms);
      const done = (): void => {
        clearInterval(poll);
        clearTimeout(timer);
        this.waiters.delete(check);
      };
      this.waiters.add(check);
    });
  }

  /** Closes every socket (the server's session is left to time out or to have been closed already). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.closeHandshake();
    for (const s of this.sockets) {
      try {
        s.socket.close();
      } catch {
        // already closed
      }
    }
  }

  private onDatagram(ledger: SocketLedger, msg: Buffer): void {
    ledger.bytesReceived += msg.length;
    ledger.datagramsReceived++;
    const h = this.header;
    if (!parseHeader(msg, h) || !cidEquals(msg, CID_OFFSET, this.cid)) {
      this.undecryptable++;
      return;
    }
    const pn = decodePacketNumber(this.largestServerPn, h.truncatedPn, h.pnLength * 8);
    const payload = this.recvCipher.open(pn, msg.subarray(0, h.headerLength), msg.subarray(h.headerLength));
    if (payload === null) {
      this.undecryptable++;
      return;
    }
    this.datagramsReceived++;
    if (pn > this.largestServerPn) this.largestServerPn = pn;
    this.received.add(pn, pn + 1);
    this.received.truncateLow(64);
    ledger.received.add(pn, pn + 1);
    ledger.received.truncateLow(64);
    this.challengeIn = null;
    walkFrames(payload, this.visitorFor(ledger), this.ackScratch, this.flags);
    if (this.challengeIn && this.proveAddress && ledger === this.sockets[0] && this.closedBy === null) {
      this.send(new PayloadBuilder().pathResponse(this.challengeIn), ledger);
    }
    if (this.autoAck && this.flags.ackEliciting && this.closedBy === null) {
      this.send(new PayloadBuilder().ack(ledger.received.starts, ledger.received.ends), ledger);
    }
    for (const check of [...this.waiters]) check();
  }

  private visitorFor(ledger: SocketLedger): FrameVisitor {
    return {
      onPing: () => {},
      onAck: () => {},
      onStream: (_offset, data) => {
        this.streamBytesReceived += data.length;
      },
      onDatagram: () => {},
      onClose: (code, reason) => {
        this.closedBy ??= { code, reason };
      },
      onPathChallenge: (data) => {
        this.challengeIn = data.slice();
        if (ledger.challenges.length < 8) ledger.challenges.push(data.slice());
      },
      onPathResponse: () => {},
    };
  }
}
