/**
 * The RTCP a WHIP receiver reads and writes (RFC 3550 §6, RFC 4585 §6, RFC 5104 §4.3.1): sender reports
 * read out of a compound packet (their NTP/RTP pair places a track on the publisher's capture clock, and LSR
 * goes back in our receiver reports so the publisher measures RTT), and receiver reports, generic NACKs,
 * PLIs and FIRs written. Also the RFC 5761 test that tells RTCP from RTP on one transport.
 *
 * Hand-written: libdatachannel's RtcpReceivingSession answers each SR with one receiver report that carries
 * no loss or jitter, and has no NACK or FIR writer; werift's would bring a whole second WebRTC stack. The
 * formats are small and fixed. Parsing is total (a peer's bytes: anything parses or is skipped). Pure.
 */

export const RtcpType = { Sr: 200, Rr: 201, Sdes: 202, Bye: 203, RtpFb: 205, PsFb: 206 } as const;

/** RFC 5761 §4: RTCP packet types 192-223 sit where RTP payload types 64-95 with the marker would. */
export function isRtcp(buf: Buffer): boolean {
  return buf.length >= 8 && buf[0]! >> 6 === 2 && buf[1]! >= 192 && buf[1]! <= 223;
}

export interface SenderReport {
  ssrc: number;
  /** NTP time, seconds since 1900 as a fraction-carrying number. */
  ntpSeconds: number;
  /** The middle 32 bits of the NTP timestamp: what a receiver report's LSR echoes. */
  ntpMiddle: number;
  rtpTimestamp: number;
  packetCount: number;
  octetCount: number;
}

/** The sender reports in a compound RTCP packet (other packets skipped); malformed tails are ignored. */
export function parseSenderReports(buf: Buffer): SenderReport[] {
  const out: SenderReport[] = [];
  let at = 0;
  while (at + 4 <= buf.length) {
    if (buf[at]! >> 6 !== 2) break;
    const type = buf[at + 1]!;
    const end = at + (buf.readUInt16BE(at + 2) + 1) * 4;
    if (end > buf.length) break;
    if (type === RtcpType.Sr && end - at >= 28) {
      const msw = buf.readUInt32BE(at + 8);
      const lsw = buf.readUInt32BE(at + 12);
      out.push({
        ssrc: buf.readUInt32BE(at + 4),
        ntpSeconds: msw + lsw / 2 ** 32,
        ntpMiddle: (((msw & 0xffff) << 16) | (lsw >>> 16)) >>> 0,
        rtpTimestamp: buf.readUInt32BE(at + 16),
        packetCount: buf.readUInt32BE(at + 20),
        octetCount: buf.readUInt32BE(at + 24),
      });
    }
    at = end;
  }
  return out;
}

function header(countOrFormat: number, type: number, words: number): Buffer {
  const buf = Buffer.alloc((words + 1) * 4);
  buf[0] = 0x80 | (countOrFormat & 0x1f);
  buf[1] = type;
  buf.writeUInt16BE(words, 2);
  return buf;
}

export interface ReportBlock {
  /** The source reported on. */
  ssrc: number;
  /** Lost share since the last report, 0-255 (RFC 3550 A.3). */
  fractionLost: number;
  /** Cumulative packets lost (expected − received; clamped to 24 bits signed). */
  cumulativeLost: number;
  /** Extended highest sequence number received (cycles << 16 | seq). */
  highestSequence: number;
  /** Interarrival jitter in RTP timestamp units (A.8). */
  jitter: number;
  /** LSR: the middle 32 bits of the last SR's NTP time, 0 when none came. */
  lastSr: number;
  /** DLSR: delay since that SR, in 1/65536 s, 0 when none came. */
  delaySinceLastSr: number;
}

/** A receiver report (PT 201) from `senderSsrc` with one report block per source. */
export function receiverReport(senderSsrc: number, blocks: readonly ReportBlock[]): Buffer {
  const n = Math.min(blocks.length, 31);
  const buf = header(n, RtcpType.Rr, 1 + 6 * n);
  buf.writeUInt32BE(senderSsrc >>> 0, 4);
  for (let i = 0; i < n; i++) {
    const b = blocks[i]!;
    const at = 8 + i * 24;
    buf.writeUInt32BE(b.ssrc >>> 0, at);
    const lost = Math.max(-0x800000, Math.min(0x7fffff, Math.round(b.cumulativeLost)));
    buf.writeUInt32BE(((Math.max(0, Math.min(255, b.fractionLost)) << 24) | (lost & 0xffffff)) >>> 0, at + 4);
    buf.writeUInt32BE(b.highestSequence >>> 0, at + 8);
    buf.writeUInt32BE(Math.max(0, Math.min(0xffffffff, Math.round(b.jitter))) >>> 0, at + 12);
    buf.writeUInt32BE(b.lastSr >>> 0, at + 16);
    buf.writeUInt32BE(Math.max(0, Math.min(0xffffffff, Math.round(b.delaySinceLastSr))) >>> 0, at + 20);
  }
  return buf;
}

/**
 * Generic NACKs (RTPFB FMT 1, RFC 4585 §6.2.1) for 16-bit sequence numbers: each FCI entry is a PID and a
 * bitmask of the 16 that follow it. At most `maxEntries` entries (the rest wait for the next one).
 */
export function genericNack(
  senderSsrc: number,
  mediaSsrc: number,
  sequences: readonly number[],
  maxEntries = 64,
): Buffer | null {
  if (sequences.length === 0) return null;
  const entries: Array<[number, number]> = [];
  // Sorted in sequence order from the first (wrap-aware: distance from the first below half the space).
  const first = sequences[0]!;
  const sorted = [...new Set(sequences.map((s) => s & 0xffff))].sort(
    (a, b) => ((a - first) & 0xffff) - ((b - first) & 0xffff),
  );
  for (const seq of sorted) {
    const last = entries[entries.length - 1];
    const d = last ? (seq - last[0]) & 0xffff : 0;
    if (last && d >= 1 && d <= 16) last[1] |= 1 << (d - 1);
    else {
      if (entries.length >= maxEntries) break;
      entries.push([seq, 0]);
    }
  }
  const buf = header(1, RtcpType.RtpFb, 2 + entries.length);
  buf.writeUInt32BE(senderSsrc >>> 0, 4);
  buf.writeUInt32BE(mediaSsrc >>> 0, 8);
  entries.forEach(([pid, blp], i) => {
    buf.writeUInt16BE(pid, 12 + i * 4);
    buf.writeUInt16BE(blp, 14 + i * 4);
  });
  return buf;
}

/** The sequence numbers a generic NACK asks for (for tests and for reading a peer's NACKs). */
export function parseGenericNack(buf: Buffer): { mediaSsrc: number; sequences: number[] } | null {
  if (buf.length < 12 || buf[1] !== RtcpType.RtpFb || (buf[0]! & 0x1f) !== 1) return null;
  const end = Math.min(buf.length, (buf.readUInt16BE(2) + 1) * 4);
  const sequences: number[] = [];
  for (let at = 12; at + 4 <= end; at += 4) {
    const pid = buf.readUInt16BE(at);
    const blp = buf.readUInt16BE(at + 2);
    sequences.push(pid);
    for (let bit = 0; bit < 16; bit++) if (blp & (1 << bit)) sequences.push((pid + bit + 1) & 0xffff);
  }
  return { mediaSsrc: buf.readUInt32BE(8), sequences };
}

/** Picture Loss Indication (PSFB FMT 1, RFC 4585 §6.3.1): "send a keyframe". */
export function pictureLossIndication(senderSsrc: number, mediaSsrc: number): Buffer {
  const buf = header(1, RtcpType.PsFb, 2);
  buf.writeUInt32BE(senderSsrc >>> 0, 4);
  buf.writeUInt32BE(mediaSsrc >>> 0, 8);
  return buf;
}

/**
 * Full Intra Request (PSFB FMT 4, RFC 5104 §4.3.1): the media SSRC field is 0 and the FCI names the source
 * with a command sequence number the sender uses to tell a new request from a repeat.
 */
export function fullIntraRequest(senderSsrc: number, mediaSsrc: number, commandSequence: number): Buffer {
  const buf = header(4, RtcpType.PsFb, 4);
  buf.writeUInt32BE(senderSsrc >>> 0, 4);
  buf.writeUInt32BE(0, 8);
  buf.writeUInt32BE(mediaSsrc >>> 0, 12);
  buf[16] = commandSequence & 0xff;
  return buf;
}
