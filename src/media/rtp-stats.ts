/**
 * What a receiver report says about one RTP source (RFC 3550 §6.4.1, appendix A.3 and A.8): the extended
 * highest sequence number, cumulative loss, the lost share since the last report and the interarrival
 * jitter. The publisher's congestion control reads them (libwebrtc lowers its bitrate on reported loss).
 * Pure: the caller passes arrival times. Retransmissions count as received (they fill the hole); packets
 * older than the highest do not move the jitter (their RTP time is stale).
 */
import type { ReportBlock } from './rtp-rtcp.ts';

export class RtpReceiverStats {
  readonly #clockRate: number;
  #base: number | null = null;
  #max = 0;
  #received = 0;
  #expectedPrior = 0;
  #receivedPrior = 0;
  #transit: number | null = null;
  #jitter = 0;

  constructor(clockRate: number) {
    this.#clockRate = clockRate;
  }

  get received(): number {
    return this.#received;
  }

  /** Expected − received so far (may be negative with duplicates). */
  get cumulativeLost(): number {
    return this.#base === null ? 0 : this.#max - this.#base + 1 - this.#received;
  }

  /** Interarrival jitter in milliseconds. */
  get jitterMs(): number {
    return (this.#jitter / this.#clockRate) * 1000;
  }

  onPacket(sequence: number, rtpTimestamp: number, arrivalMs: number): void {
    this.#received++;
    if (this.#base === null) {
      this.#base = 0x10000 + sequence;
      this.#max = this.#base;
    } else {
      const base = this.#max - (this.#max & 0xffff);
      let ext = base + sequence;
      if (ext - this.#max > 0x8000) ext -= 0x10000;
      else if (this.#max - ext > 0x8000) ext += 0x10000;
      if (ext <= this.#max) return;
      this.#max = ext;
    }
    const transit = (arrivalMs * this.#clockRate) / 1000 - rtpTimestamp;
    if (this.#transit !== null) {
      let d = Math.abs(transit - this.#transit);
      // A 32-bit RTP timestamp wrap between two packets is not jitter.
      if (d > 2 ** 31) d = Math.abs(d - 2 ** 32);
      this.#jitter += (d - this.#jitter) / 16;
    }
    this.#transit = transit;
  }

  /** The report block for `ssrc` now; starts a new interval for the lost share. */
  report(ssrc: number, lastSr: number, delaySinceLastSr: number): ReportBlock | null {
    if (this.#base === null) return null;
    const expected = this.#max - this.#base + 1;
    const expectedInterval = expected - this.#expectedPrior;
    const receivedInterval = this.#received - this.#receivedPrior;
    this.#expectedPrior = expected;
    this.#receivedPrior = this.#received;
    const lostInterval = expectedInterval - receivedInterval;
    const fractionLost =
      expectedInterval === 0 || lostInterval <= 0 ? 0 : Math.floor((lostInterval << 8) / expectedInterval);
    return {
      ssrc,
      fractionLost,
      cumulativeLost: expected - this.#received,
      highestSequence: (this.#max - 0x10000) >>> 0,
      jitter: this.#jitter,
      lastSr,
      delaySinceLastSr,
    };
  }
}
