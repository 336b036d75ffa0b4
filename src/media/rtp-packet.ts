/**
 * RTP packets (RFC 3550 §5.1) as a WHIP publisher sends them: the fixed header, CSRCs, the header extension
 * and padding skipped, the payload as a view. Hand-written and total: any input parses or yields null
 * (a peer's datagram is never trusted); every length is checked against the bytes present. Pure.
 */

export interface RtpPacket {
  payloadType: number;
  marker: boolean;
  /** 16-bit sequence number. */
  sequence: number;
  /** 32-bit media timestamp (90 kHz for video, 48 kHz for Opus). */
  timestamp: number;
  ssrc: number;
  payload: Buffer;
}

/** Parses one RTP packet; null when it is not RTP version 2 or its lengths do not fit. */
export function parseRtp(buf: Buffer): RtpPacket | null {
  if (buf.length < 12 || buf[0]! >> 6 !== 2) return null;
  const padding = (buf[0]! & 0x20) !== 0;
  const extension = (buf[0]! & 0x10) !== 0;
  const csrcCount = buf[0]! & 0x0f;
  let at = 12 + csrcCount * 4;
  if (at > buf.length) return null;
  if (extension) {
    if (at + 4 > buf.length) return null;
    at += 4 + buf.readUInt16BE(at + 2) * 4;
    if (at > buf.length) return null;
  }
  let end = buf.length;
  if (padding) {
    const pad = buf[buf.length - 1]!;
    if (pad === 0 || end - pad < at) return null;
    end -= pad;
  }
  return {
    payloadType: buf[1]! & 0x7f,
    marker: (buf[1]! & 0x80) !== 0,
    sequence: buf.readUInt16BE(2),
    timestamp: buf.readUInt32BE(4),
    ssrc: buf.readUInt32BE(8),
    payload: buf.subarray(at, end),
  };
}

/** Whether sequence number `a` comes after `b` (RFC 3550 A.1: modulo 2^16, within half the space). */
export function seqAfter(a: number, b: number): boolean {
  const d = (a - b) & 0xffff;
  return d !== 0 && d < 0x8000;
}
