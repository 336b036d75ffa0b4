/**
 * H.264 RTP depacketizer (RFC 6184, packetization mode 1 as WebRTC publishers send it): single NAL unit
 * packets (types 1-23), STAP-A (24) and FU-A (28) reassembled into access units in the media core's form
 * (4-byte length-prefixed NAL units). An access unit ends at the marker bit or when the timestamp changes.
 * The latest SPS and PPS are kept (a decoder configuration record can be built from them, and keyframes
 * that lack them get them in front). A sequence gap inside a frame drops that frame and every following
 * frame until the next keyframe (a decoder given a frame with missing slices shows garbage; the caller asks
 * the publisher for a keyframe: `needsKeyframe`). Sizes are capped. Pure: no sockets, no timers.
 * Hand-written: no npm package does this without a whole WebRTC stack.
 */
import { type RtpPacket, seqAfter } from './rtp-packet.ts';

export const H264NalType = { Idr: 5, Sps: 7, Pps: 8, StapA: 24, FuA: 28 } as const;

/** The largest access unit accepted (a 1080p keyframe is a few hundred KB). */
export const MAX_ACCESS_UNIT_BYTES = 4 * 1024 * 1024;
const MAX_NALS = 1024;

export interface H264Frame {
  /** 90 kHz RTP timestamp of the frame. */
  timestamp: number;
  keyframe: boolean;
  /** Length-prefixed NAL units (SPS/PPS in front of a keyframe that lacked them). */
  data: Buffer;
}

export class H264Depacketizer {
  #nals: Buffer[] = [];
  #size = 0;
  #timestamp: number | null = null;
  #fu: Buffer[] | null = null;
  #fuSize = 0;
  #lastSeq: number | null = null;
  #broken = false;
  #waitKeyframe = true;
  sps: Buffer | null = null;
  pps: Buffer | null = null;
  /** Frames dropped for loss or size. */
  dropped = 0;

  /** True while frames are dropped until a keyframe: ask the publisher for one (PLI). */
  get needsKeyframe(): boolean {
    return this.#waitKeyframe;
  }

  /** Feeds one packet in sequence order; returns the frames it completed (0, 1 or 2). */
  push(packet: RtpPacket): H264Frame[] {
    const out: H264Frame[] = [];
    if (this.#timestamp !== null && packet.timestamp !== this.#timestamp) this.#finish(out);
    if (this.#lastSeq !== null && packet.sequence !== ((this.#lastSeq + 1) & 0xffff)) {
      if (!seqAfter(packet.sequence, this.#lastSeq)) return out; // late or duplicate: the jitter buffer's job
      this.#broken = true; // a gap: this frame is missing packets
      this.#fu = null;
    }
    this.#lastSeq = packet.sequence;
    this.#timestamp = packet.timestamp;
    this.#payload(packet.payload);
    if (packet.marker) this.#finish(out);
    return out;
  }

  #payload(p: Buffer): void {
    if (p.length < 1) return;
    const type = p[0]! & 0x1f;
    if (type >= 1 && type <= 23) {
      this.#addNal(p);
    } else if (type === H264NalType.StapA) {
      let at = 1;
      while (at + 2 <= p.length) {
        const len = p.readUInt16BE(at);
        at += 2;
        if (len === 0 || at + len > p.length) {
          this.#broken = true;
          return;
        }
        this.#addNal(p.subarray(at, at + len));
        at += len;
      }
    } else if (type === H264NalType.FuA) {
      if (p.length < 3) return;
      const start = (p[1]! & 0x80) !== 0;
      const end = (p[1]! & 0x40) !== 0;
      if (start) {
        this.#fu = [Buffer.from([(p[0]! & 0xe0) | (p[1]! & 0x1f)])];
        this.#fuSize = 1;
      }
      if (!this.#fu) {
        this.#broken = true; // a middle or end fragment without its start
        return;
      }
      this.#fu.push(p.subarray(2));
      this.#fuSize += p.length - 2;
      if (this.#fuSize > MAX_ACCESS_UNIT_BYTES) {
        this.#broken = true;
        this.#fu = null;
        return;
      }
      if (end) {
        this.#addNal(Buffer.concat(this.#fu, this.#fuSize));
        this.#fu = null;
      }
    }
    // Other types (STAP-B, MTAP, FU-B: not in mode 1; 0, 30, 31: reserved) are ignored.
  }

  #addNal(nal: Buffer): void {
    const type = nal[0]! & 0x1f;
    if (type === H264NalType.Sps) this.sps = Buffer.from(nal);
    else if (type === H264NalType.Pps) this.pps = Buffer.from(nal);
    if (this.#nals.length >= MAX_NALS || this.#size + nal.length > MAX_ACCESS_UNIT_BYTES) {
      this.#broken = true;
      return;
    }
    this.#nals.push(nal);
    this.#size += nal.length;
  }

  #finish(out: H264Frame[]): void {
    const nals = this.#nals;
    const broken = this.#broken || this.#fu !== null;
    const timestamp = this.#timestamp;
    this.#nals = [];
    this.#size = 0;
    this.#fu = null;
    this.#broken = false;
    this.#timestamp = null;
    if (timestamp === null) return;
    if (broken) {
      this.dropped++;
      this.#waitKeyframe = true;
      return;
    }
    if (nals.length === 0) return;
    const types = nals.map((n) => n[0]! & 0x1f);
    const keyframe = types.includes(H264NalType.Idr);
    if (this.#waitKeyframe && !keyframe) {
      this.dropped++;
      return;
    }
    this.#waitKeyframe = false;
    const withParams =
      keyframe && !types.includes(H264NalType.Sps) && this.sps && this.pps
        ? [this.sps, this.pps, ...nals]
        : nals;
    const parts: Buffer[] = [];
    for (const nal of withParams) {
      const len = Buffer.alloc(4);
      len.writeUInt32BE(nal.length);
      parts.push(len, nal);
    }
    out.push({ timestamp, keyframe, data: Buffer.concat(parts) });
  }
}
