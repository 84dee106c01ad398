import { ACTIVE_CID_LIMIT, MAX_RETIRING_CIDS } from "./cid-set.js";
import { MAX_QUEUED_DATAGRAMS } from "./datagram-queue.js";
import { MAX_MESSAGES_PER_TURN, OBJECT_CHARGE } from "./events.js";
import type { SessionOptions } from "./options.js";
import { MAX_STREAM_FRAMES_PER_PACKET } from "./packet-builder.js";
import { MAX_CHALLENGES, MAX_PATH_RESPONSES } from "./path-validation.js";
import { MAX_SENT_PACKETS, SENT_SLOT_CHARGE } from "./recovery.js";
import { MIN_PIECE_CHARGE, maxPieces } from "./stream-receive.js";
import { MAX_DATAGRAM_SIZE } from "./version.js";

/**
 * The most `ConnectionStats.heldBytes` can reach for these options, whatever the peer does (it holds
 * real keys and breaks every rule it can), given non-empty messages from the application. Each term:
 * - send queue: sendQueueBytes of messages plus their length prefixes (at most one byte per byte);
 * - receive side: out-of-order and parked bytes stay within receiveBufferBytes plus a turn's overshoot
 *   (4 KiB), in buffers with at most a quarter of slack, plus the minimum charge per piece; plus the
 *   partly reassembled message (allocated whole when its length arrives); plus the per-event charge
 *   of one turn of delivered messages (their bytes are counted in the first term);
 * - sent records, with at most MAX_STREAM_FRAMES_PER_PACKET ranges and the CID frames each;
 * - queued datagrams, path responses and challenges.
 */
export function maxHeldBytes(o: SessionOptions): number {
  const send = 2 * o.sendQueueBytes;
  const receive =
    Math.ceil(1.25 * (o.receiveBufferBytes + 4096)) +
    MIN_PIECE_CHARGE * (maxPieces(o.receiveBufferBytes) + 1) +
    o.maxMessageSize +
    OBJECT_CHARGE * (MAX_MESSAGES_PER_TURN + 8);
  const cidFrames = ACTIVE_CID_LIMIT + MAX_RETIRING_CIDS; // NEW/RETIRE_CONNECTION_ID sequence numbers a record lists
  const sent = MAX_SENT_PACKETS * (SENT_SLOT_CHARGE + 8 * (2 * MAX_STREAM_FRAMES_PER_PACKET + cidFrames));
  const queued = MAX_QUEUED_DATAGRAMS * (OBJECT_CHARGE + MAX_DATAGRAM_SIZE) + (MAX_PATH_RESPONSES + MAX_CHALLENGES) * OBJECT_CHARGE;
  return send + receive + sent + queued;
}
