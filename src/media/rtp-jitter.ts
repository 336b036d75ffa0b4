/**
 * A jitter buffer for one RTP stream (one SSRC) as a WHIP receiver needs it: packets come out in sequence
 * order; a gap is held open for at most `maxDelayMs` while its sequence numbers are NACKed (every
 * `nackIntervalMs`, at most `maxNackRetries` times each), then given up on (counted `lost`) so the
 * depacketizer sees the gap and drops the broken frame. Held packets are bounded (`maxPackets`): when full,
 * the oldest gap is given up at once (counted `overflow`). Late packets (their gap was given up) and
 * duplicates are dropped and counted. A jump of more than `maxPackets` ahead, or far behind, is a restart
 * of the sender's numbering: the buffer resets rather than NACK thousands of packets.
 *
 * Sequence numbers are extended to a growing number (RFC 3550 A.1) so wrap-around never reorders. Pure:
 * the caller passes the time and drives `poll` from its own timer. Hand-written: libdatachannel has no
 * receive-side jitter buffer or NACK generator.
 */
import type { RtpPacket } from './rtp-packet.ts';

export interface JitterOptions {
  /** How long a gap may hold later packets back before it is given up. */
  maxDelayMs: number;
  /** Packets held at most (a gap's followers); beyond it the oldest gap is given up. */
  maxPackets: number;
  /** Pause between NACKs of the same sequence number. */
  nackIntervalMs: number;
  /** NACKs per missing sequence number at most (0: no NACK at all). */
  maxNackRetries: number;
}

export const DEFAULT_JITTER: JitterOptions = {
  maxDelayMs: 200,
  maxPackets: 512,
  nackIntervalMs: 50,
  maxNackRetries: 4,
};

export interface JitterCounters {
  received: number;
  duplicates: number;
  /** Arrived after their gap was given up (a retransmission too late, or a packet reordered too far). */
  late: number;
  /** Sequence numbers seen missing (each once, recovered or not). */
  missing: number;
  /** Missing packets that arrived after all (reordered or retransmitted). */
  recovered: number;
  /** Missing packets given up on. */
  lost: number;
  /** Gaps given up early because the buffer was full. */
  overflow: number;
  /** Sequence numbers NACKed (each retry counts). */
  nacked: number;
  /** Numbering restarts (a jump too far to be loss). */
  resets: number;
}

interface Missing {
  since: number;
  nacks: number;
  lastNack: number;
}

export class RtpJitterBuffer {
  readonly options: JitterOptions;
  readonly counters: JitterCounters = {
    received: 0,
    duplicates: 0,
    late: 0,
    missing: 0,
    recovered: 0,
    lost: 0,
    overflow: 0,
    nacked: 0,
    resets: 0,
  };
  /** Extended sequence number of the next packet to release; null before the first packet. */
  #next: number | null = null;
  #highest = 0;
  readonly #held = new Map<number, RtpPacket>();
  readonly #missing = new Map<number, Missing>();

  constructor(options: Partial<JitterOptions> = {}) {
    this.options = { ...DEFAULT_JITTER, ...options };
  }

  /** Packets held back by a gap now. */
  get held(): number {
    return this.#held.size;
  }

  /** The extended highest sequence number received (for receiver reports); null before any packet. */
  get highestSequence(): number | null {
    return this.#next === null ? null : this.#highest;
  }

  /** Feeds one packet; returns what can be released now, in order. */
  push(packet: RtpPacket, now: number): RtpPacket[] {
    this.counters.received++;
    if (this.#next === null) return this.#restart(packet);
    const ext = this.#extend(packet.sequence);
    const ahead = ext - this.#highest;
    if (ahead > this.options.maxPackets || ext < this.#next - 0x4000) {
      this.counters.resets++;
      this.counters.lost += this.#missing.size;
      return [...this.#flushAll(), ...this.#restart(packet)];
    }
    if (ext < this.#next) {
      this.counters.late++;
      return [];
    }
    if (this.#held.has(ext)) {
      this.counters.duplicates++;
      return [];
    }
    const wasMissing = this.#missing.get(ext);
    if (wasMissing) {
      this.#missing.delete(ext);
      this.counters.recovered++;
    }
    if (ext > this.#highest) {
      for (let s = this.#highest + 1; s < ext; s++) {
        this.#missing.set(s, { since: now, nacks: 0, lastNack: 0 });
        this.counters.missing++;
      }
      this.#highest = ext;
    } else if (!wasMissing) {
      // Below the highest but neither held nor missing: released already cannot be (ext >= next), so
      // this is a duplicate of a packet that is still on its way out. Treat as duplicate.
      this.counters.duplicates++;
      return [];
    }
    this.#held.set(ext, packet);
    return this.#drain(now);
  }

  /**
   * Called on the owner's timer: releases what waited too long behind a gap, and returns the 16-bit
   * sequence numbers to NACK now.
   */
  poll(now: number): { released: RtpPacket[]; nack: number[] } {
    const released = this.#drain(now);
    const nack: number[] = [];
    if (this.options.maxNackRetries > 0) {
      for (const [ext, m] of this.#missing) {
        if (m.nacks >= this.options.maxNackRetries) continue;
        if (m.nacks > 0 && now - m.lastNack < this.options.nackIntervalMs) continue;
        m.nacks++;
        m.lastNack = now;
        nack.push(ext & 0xffff);
        this.counters.nacked++;
      }
    }
    return { released, nack };
  }

  #extend(seq: number): number {
    // The extended number closest to the highest seen (RFC 3550 A.1).
    const base = this.#highest - (this.#highest & 0xffff);
    let ext = base + seq;
    if (ext - this.#highest > 0x8000) ext -= 0x10000;
    else if (this.#highest - ext > 0x8000) ext += 0x10000;
    return ext;
  }

  #restart(packet: RtpPacket): RtpPacket[] {
    this.#held.clear();
    this.#missing.clear();
    // Start the extended space high enough that a packet reordered from just before is below `next`.
    const ext = 0x10000 + packet.sequence;
    this.#next = ext + 1;
    this.#highest = ext;
    return [packet];
  }

  #flushAll(): RtpPacket[] {
    const out: RtpPacket[] = [];
    for (const ext of [...this.#held.keys()].sort((a, b) => a - b)) out.push(this.#held.get(ext)!);
    this.#held.clear();
    this.#missing.clear();
    return out;
  }

  #drain(now: number): RtpPacket[] {
    const out: RtpPacket[] = [];
    while (this.#next !== null && this.#next <= this.#highest) {
      const packet = this.#held.get(this.#next);
      if (packet) {
        this.#held.delete(this.#next);
        out.push(packet);
        this.#next++;
        continue;
      }
      const gap = this.#missing.get(this.#next);
      const full = this.#held.size >= this.options.maxPackets;
      if (gap && !full && now - gap.since < this.options.maxDelayMs) break;
      // Give up on this sequence number: the depacketizer sees the gap.
      if (full) this.counters.overflow++;
      this.#missing.delete(this.#next);
      this.counters.lost++;
      this.#next++;
    }
    return out;
  }
}
