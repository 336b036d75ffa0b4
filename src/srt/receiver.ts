/**
 * The live receiver of one SRT connection (draft-sharabayko-srt §4.5–4.8; gosrt `congestion/live/receive.go`):
 * a receive buffer bounded in packets, loss detection with an immediate NAK, the loss list for periodic NAK
 * reports, the ACK point, and TSBPD delivery: each packet is released at its sender time + the negotiated
 * latency on our clock, in order, and a lost packet still missing when a later one is overdue (by a grace,
 * see `holeGraceUs`) is dropped (too-late packet drop), so one loss never stalls the stream.
 *
 * Pure: the caller passes the clock (µs) to every call and does the I/O; tests drive it with fake packets and
 * a fake clock. Sequence arithmetic goes through ./seq.ts.
 */
import type { LossRange } from './packet.ts';
import { seqAdd, seqDiff } from './seq.ts';

export interface ReceiverOptions {
  /** The caller's initial sequence number (from its handshake). */
  initialSeq: number;
  /** TSBPD latency, µs. */
  latencyUs: number;
  /** The receive buffer, in packets: packets further ahead than this are dropped. */
  capacity: number;
  /**
   * How much longer than its due time a hole holds back the packets after it before it is given up, µs
   * (0: libsrt's player behaviour). We feed a demuxer, not a screen: a frame late by a latency costs nothing
   * downstream, a lost packet costs a frame, so a hole gets one more latency for its retransmission.
   */
  holeGraceUs?: number;
}

export interface ReceiverStats {
  packetsReceived: number;
  bytesReceived: number;
  /** Packets first noticed missing (a gap in sequence numbers). */
  packetsLost: number;
  /** Retransmitted packets received (R flag). */
  packetsRetransmitted: number;
  /** Lost packets that arrived later (recovered by retransmission or reordering). */
  packetsRecovered: number;
  /** Lost packets given up at their delivery time (too-late drop). */
  packetsDropped: number;
  /** Packets that came after their slot was delivered or dropped, or twice. */
  packetsBelated: number;
  /** Packets beyond the receive buffer, refused. */
  packetsOverflow: number;
  packetsDelivered: number;
}

interface Slot {
  payload: Buffer;
  /** When it is due, µs on our clock. */
  due: number;
}

const TS_WRAP = 2 ** 32;
/** How often the sender's clock offset may move later (drift), µs. */
const DRIFT_WINDOW_US = 5_000_000;

export class Receiver {
  readonly stats: ReceiverStats = {
    packetsReceived: 0,
    bytesReceived: 0,
    packetsLost: 0,
    packetsRetransmitted: 0,
    packetsRecovered: 0,
    packetsDropped: 0,
    packetsBelated: 0,
    packetsOverflow: 0,
    packetsDelivered: 0,
  };
  readonly #capacity: number;
  readonly #latency: number;
  readonly #grace: number;
  /** Ring of slots indexed by sequence number modulo capacity; `#head` is the next to deliver. */
  readonly #slots: (Slot | undefined)[];
  #head: number;
  /** The highest sequence number seen, or the one before the initial. */
  #last: number;
  #buffered = 0;
  /** Lost sequence numbers → when we last reported them (µs). */
  readonly #loss = new Map<number, number>();
  /** Our clock minus the sender's (µs), set by the first packet; sender timestamps unwrapped. */
  #base: number | null = null;
  #windowStart: number | null = null;
  #windowMin = Number.POSITIVE_INFINITY;
  #lastTs = 0;
  #tsCarry = 0;

  constructor(options: ReceiverOptions) {
    this.#capacity = options.capacity;
    this.#latency = options.latencyUs;
    this.#grace = options.holeGraceUs ?? 0;
    this.#slots = new Array(options.capacity);
    this.#head = options.initialSeq;
    this.#last = seqAdd(options.initialSeq, -1);
  }

  /**
   * The sender's clock on ours (µs to add to a sender timestamp): the quickest transit seen. It moves earlier
   * at once when a packet shows the path got faster (a late first packet must not add its delay to every
   * later one), and later once per drift window to that window's quickest transit: a sender whose clock runs
   * slower than ours would otherwise make every packet look ever more overdue, and the latency would melt
   * away over a long publish (100 ppm is 360 ms an hour).
   */
  #track(offset: number, now: number): number {
    if (this.#base === null || offset < this.#base) this.#base = offset;
    if (offset < this.#windowMin) this.#windowMin = offset;
    if (this.#windowStart === null) this.#windowStart = now;
    else if (now - this.#windowStart >= DRIFT_WINDOW_US) {
      if (this.#windowMin > this.#base) this.#base = this.#windowMin;
      this.#windowStart = now;
      this.#windowMin = Number.POSITIVE_INFINITY;
    }
    return this.#base;
  }

  /** Packets held (received, not yet delivered). */
  get buffered(): number {
    return this.#buffered;
  }

  get capacity(): number {
    return this.#capacity;
  }

  /** Lost packets not yet recovered or dropped. */
  get lossCount(): number {
    return this.#loss.size;
  }

  /** The ACK point: the first sequence number not received (everything before it is in hand or gone). */
  get ackSeq(): number {
    let seq = this.#head;
    while (seqDiff(seq, this.#last) >= 0 && this.#slots[this.#index(seq)] !== undefined) seq = seqAdd(seq, 1);
    return seq;
  }

  #index(seq: number): number {
    return seq % this.#capacity;
  }

  /** The sender's timestamp on an unbounded line (it wraps every 2^32 µs, about 71 minutes). */
  #unwrapTs(ts: number): number {
    if (ts < this.#lastTs && this.#lastTs - ts > TS_WRAP / 2) this.#tsCarry += TS_WRAP;
    else if (ts > this.#lastTs && ts - this.#lastTs > TS_WRAP / 2 && this.#tsCarry > 0) {
      return this.#tsCarry - TS_WRAP + ts; // a late packet from before the wrap
    }
    this.#lastTs = ts;
    return this.#tsCarry + ts;
  }

  /**
   * Takes a data packet. Returns the ranges newly found missing (to NAK at once), or null. A packet is
   * refused when it is a duplicate, too late, or too far ahead for the buffer.
   */
  push(
    seq: number,
    timestamp: number,
    payload: Buffer,
    retransmitted: boolean,
    now: number,
  ): LossRange[] | null {
    this.stats.packetsReceived++;
    this.stats.bytesReceived += payload.length;
    if (retransmitted) this.stats.packetsRetransmitted++;
    const offset = seqDiff(this.#head, seq);
    if (offset < 0) {
      this.stats.packetsBelated++;
      return null;
    }
    if (offset >= this.#capacity) {
      this.stats.packetsOverflow++;
      return null;
    }
    const index = this.#index(seq);
    if (this.#slots[index] !== undefined) {
      this.stats.packetsBelated++;
      return null;
    }
    const ts = this.#unwrapTs(timestamp);
    const base = this.#track(now - ts, now);
    this.#slots[index] = { payload, due: base + ts + this.#latency };
    this.#buffered++;
    let lost: LossRange[] | null = null;
    const ahead = seqDiff(this.#last, seq);
    if (ahead > 1) {
      const first = seqAdd(this.#last, 1);
      const last = seqAdd(seq, -1);
      for (let s = first; s !== seq; s = seqAdd(s, 1)) this.#loss.set(s, now);
      this.stats.packetsLost += ahead - 1;
      lost = [[first, last]];
    }
    if (ahead > 0) this.#last = seq;
    else if (this.#loss.delete(seq)) this.stats.packetsRecovered++;
    return lost;
  }

  /** Releases the payloads due by `now`, in order, dropping lost packets a later due packet passed. */
  deliver(now: number): Buffer[] {
    const out: Buffer[] = [];
    while (this.#buffered > 0) {
      const index = this.#index(this.#head);
      const slot = this.#slots[index];
      if (slot) {
        if (slot.due > now) break;
        out.push(slot.payload);
        this.#slots[index] = undefined;
        this.#buffered--;
        this.stats.packetsDelivered++;
        this.#head = seqAdd(this.#head, 1);
        continue;
      }
      // A hole: skip it only when the next packet in hand is overdue by the grace (too-late drop).
      const next = this.#nextFilled();
      if (next === null || this.#slots[this.#index(next)]!.due + this.#grace > now) break;
      for (let s = this.#head; s !== next; s = seqAdd(s, 1)) {
        this.#loss.delete(s);
        this.stats.packetsDropped++;
      }
      this.#head = next;
    }
    return out;
  }

  /** The sender gave up these packets (a DROPREQ): stop asking for them; delivery skips their holes. */
  forget(first: number, last: number): void {
    const n = seqDiff(first, last);
    if (n < 0 || n >= this.#capacity) return;
    for (let s = first; ; s = seqAdd(s, 1)) {
      this.#loss.delete(s);
      if (s === last) break;
    }
  }

  /** Everything held, in order, holes skipped (the caller said goodbye: no more retransmissions come). */
  drain(): Buffer[] {
    const out: Buffer[] = [];
    while (this.#buffered > 0) {
      const next = this.#nextFilled();
      if (next === null) break;
      const index = this.#index(next);
      out.push(this.#slots[index]!.payload);
      this.#slots[index] = undefined;
      this.#buffered--;
      this.stats.packetsDelivered++;
      this.#head = seqAdd(next, 1);
    }
    this.#loss.clear();
    return out;
  }

  #nextFilled(): number | null {
    for (let s = this.#head; seqDiff(s, this.#last) >= 0; s = seqAdd(s, 1)) {
      if (this.#slots[this.#index(s)] !== undefined) return s;
    }
    return null;
  }

  /**
   * The losses to report again (periodic NAK, §4.8.2): those last reported at least `intervalUs` ago, as
   * ranges in sequence order, at most `maxRanges` of them (a NAK must fit one datagram).
   */
  periodicNak(now: number, intervalUs: number, maxRanges = 150): LossRange[] {
    const due: number[] = [];
    for (const [seq, at] of this.#loss) {
      if (now - at >= intervalUs) due.push(seq);
    }
    if (due.length === 0) return [];
    due.sort((a, b) => seqDiff(b, a));
    const ranges: [number, number][] = [];
    for (const seq of due) {
      const last = ranges.at(-1);
      if (last && seqAdd(last[1], 1) === seq) last[1] = seq;
      else {
        if (ranges.length === maxRanges) break;
        ranges.push([seq, seq]);
      }
    }
    for (const [a, b] of ranges) {
      for (let s = a; ; s = seqAdd(s, 1)) {
        this.#loss.set(s, now);
        if (s === b) break;
      }
    }
    return ranges;
  }
}
