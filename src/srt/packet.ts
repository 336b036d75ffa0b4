/**
 * SRT packet codec (draft-sharabayko-srt §3): the 16-byte header of data and control packets, and the
 * control information fields this listener reads or writes (handshake with its HSREQ/HSRSP, KMREQ/KMRSP and
 * stream id extensions, key material, ACK, NAK loss lists). Pure: bytes in, typed values out, and back.
 *
 * Hand-written (no npm package implements SRT; style rule "hand-written Buffer readers with fuzz tests"):
 * every read is bounds-checked and every length a peer sends is checked against the datagram before it is
 * used, so a hostile datagram throws a RelayError(SRT_PACKET_MALFORMED) and never allocates by a peer's count.
 */
import { ErrorCodes, RelayError } from '../shared/errors.ts';
import { SEQ_MAX } from './seq.ts';

/** The largest datagram SRT sends (its MSS tops out at 1500); anything longer is not SRT. */
export const MAX_DATAGRAM = 1500;
export const HEADER_SIZE = 16;
/** libsrt's cap on a stream id (SRT_STREAMID_MAX). */
export const MAX_STREAM_ID = 512;

export const ControlType = {
  Handshake: 0x0000,
  Keepalive: 0x0001,
  Ack: 0x0002,
  Nak: 0x0003,
  CongestionWarning: 0x0004,
  Shutdown: 0x0005,
  AckAck: 0x0006,
  DropReq: 0x0007,
  PeerError: 0x0008,
  User: 0x7fff,
} as const;
export type ControlTypeId = (typeof ControlType)[keyof typeof ControlType];

/** Handshake types (§3.2.1, table 4); rejections are 1000 + a reason code. */
export const HandshakeType = {
  Done: 0xfffffffd,
  Agreement: 0xfffffffe,
  Conclusion: 0xffffffff,
  Wavehand: 0x00000000,
  Induction: 0x00000001,
} as const;

/** What a rejection carries in the handshake type field (libsrt URQ_FAILURE_TYPES). */
export const REJECT_BASE = 1000;

/** libsrt's own rejection reasons (SRT_REJ_*) and the access-control ones (SRT_REJX_*, 1000 + HTTP-like). */
export const RejectReason = {
  Unknown: 0,
  System: 1,
  Peer: 2,
  Resource: 3,
  Rogue: 4,
  Backlog: 5,
  Ipe: 6,
  Close: 7,
  Version: 8,
  RdvCookie: 9,
  BadSecret: 10,
  Unsecure: 11,
  MessageApi: 12,
  Congestion: 13,
  Filter: 14,
  Group: 15,
  Timeout: 16,
  /** SRT_REJX_BAD_REQUEST: the stream id is not one of ours. */
  BadRequest: 1400,
  /** SRT_REJX_UNAUTHORIZED: the token is missing, bad or expired. */
  Unauthorized: 1401,
  /** SRT_REJX_OVERLOAD: too many connections or handshakes. */
  Overload: 1402,
  /** SRT_REJX_FORBIDDEN: the token is for another relay, user or stream. */
  Forbidden: 1403,
  /** SRT_REJX_BAD_MODE: the stream id asks for something other than publish. */
  BadMode: 1405,
  /** SRT_REJX_UNACCEPTABLE: the stream id is too long. */
  Unacceptable: 1406,
  /** SRT_REJX_DOWN: the relay is draining or closing. */
  Down: 1503,
} as const;
export type RejectReasonId = (typeof RejectReason)[keyof typeof RejectReason];

export const HsExtType = {
  HsReq: 1,
  HsRsp: 2,
  KmReq: 3,
  KmRsp: 4,
  Sid: 5,
  Congestion: 6,
  Filter: 7,
  Group: 8,
} as const;

/** The HSv5 extension-field flags in a conclusion (§3.2.1, "Extension Field"). */
export const HsExtFlag = { HsReq: 1, KmReq: 2, Config: 4 } as const;
/** Sent back in the extension field of an induction response: "SRT" (libsrt SRT_MAGIC_CODE). */
export const SRT_MAGIC = 0x4a17;

export const SrtFlag = {
  TsbpdSnd: 1 << 0,
  TsbpdRcv: 1 << 1,
  Crypt: 1 << 2,
  TlPktDrop: 1 << 3,
  PeriodicNak: 1 << 4,
  RexmitFlg: 1 << 5,
  Stream: 1 << 6,
  PacketFilter: 1 << 7,
} as const;

/** The KK bits of a data packet: which key encrypted it. */
export const KeyFlag = { None: 0, Even: 1, Odd: 2, Both: 3 } as const;
export type KeyFlagId = (typeof KeyFlag)[keyof typeof KeyFlag];

export interface DataPacket {
  kind: 'data';
  seq: number;
  /** PP: 0b10 first, 0b00 middle, 0b01 last, 0b11 a whole message. */
  position: number;
  inOrder: boolean;
  key: KeyFlagId;
  retransmitted: boolean;
  messageNumber: number;
  /** µs since the sender's connection start, wrapping at 2^32. */
  timestamp: number;
  destSocketId: number;
  payload: Buffer;
}

export interface ControlPacket {
  kind: 'control';
  type: number;
  subtype: number;
  /** Type-specific information (the ACK number of an ACK or ACKACK). */
  info: number;
  timestamp: number;
  destSocketId: number;
  cif: Buffer;
}

export type Packet = DataPacket | ControlPacket;

function malformed(message: string): RelayError {
  return new RelayError(ErrorCodes.SRT_PACKET_MALFORMED, message);
}

/** Decodes one datagram. Throws SRT_PACKET_MALFORMED on anything that is not an SRT packet. */
export function decodePacket(buf: Buffer): Packet {
  if (buf.length < HEADER_SIZE) throw malformed(`datagram of ${buf.length} bytes is shorter than a header`);
  if (buf.length > MAX_DATAGRAM) throw malformed(`datagram of ${buf.length} bytes exceeds ${MAX_DATAGRAM}`);
  const w0 = buf.readUInt32BE(0);
  const timestamp = buf.readUInt32BE(8);
  const destSocketId = buf.readUInt32BE(12);
  if (w0 & 0x80000000) {
    return {
      kind: 'control',
      type: (w0 >>> 16) & 0x7fff,
      subtype: w0 & 0xffff,
      info: buf.readUInt32BE(4),
      timestamp,
      destSocketId,
      cif: buf.subarray(HEADER_SIZE),
    };
  }
  const w1 = buf.readUInt32BE(4);
  return {
    kind: 'data',
    seq: w0 & SEQ_MAX,
    position: w1 >>> 30,
    inOrder: ((w1 >>> 29) & 1) === 1,
    key: ((w1 >>> 27) & 3) as KeyFlagId,
    retransmitted: ((w1 >>> 26) & 1) === 1,
    messageNumber: w1 & 0x03ffffff,
    timestamp,
    destSocketId,
    payload: buf.subarray(HEADER_SIZE),
  };
}

export function encodePacket(p: Packet): Buffer {
  const body = p.kind === 'data' ? p.payload : p.cif;
  const buf = Buffer.allocUnsafe(HEADER_SIZE + body.length);
  if (p.kind === 'data') {
    buf.writeUInt32BE(p.seq & SEQ_MAX, 0);
    const w1 =
      ((p.position & 3) << 30) |
      ((p.inOrder ? 1 : 0) << 29) |
      ((p.key & 3) << 27) |
      ((p.retransmitted ? 1 : 0) << 26) |
      (p.messageNumber & 0x03ffffff);
    buf.writeUInt32BE(w1 >>> 0, 4);
  } else {
    buf.writeUInt32BE((0x80000000 | ((p.type & 0x7fff) << 16) | (p.subtype & 0xffff)) >>> 0, 0);
    buf.writeUInt32BE(p.info >>> 0, 4);
  }
  buf.writeUInt32BE(p.timestamp >>> 0, 8);
  buf.writeUInt32BE(p.destSocketId >>> 0, 12);
  body.copy(buf, HEADER_SIZE);
  return buf;
}

/** A control packet with the given CIF. */
export function control(
  type: ControlTypeId,
  fields: { info?: number; subtype?: number; timestamp: number; destSocketId: number; cif?: Buffer },
): ControlPacket {
  return {
    kind: 'control',
    type,
    subtype: fields.subtype ?? 0,
    info: fields.info ?? 0,
    timestamp: fields.timestamp,
    destSocketId: fields.destSocketId,
    cif: fields.cif ?? Buffer.alloc(0),
  };
}

// --- handshake -------------------------------------------------------------------------------------------

export interface HsExtension {
  srtVersion: number;
  flags: number;
  /** ms: the latency the receiver applies (TSBPD). */
  recvDelay: number;
  /** ms: the latency the sender asks its peer to apply. */
  sendDelay: number;
}

export interface Handshake {
  version: number;
  encryption: number;
  extension: number;
  initialSeq: number;
  mtu: number;
  flowWindow: number;
  type: number;
  socketId: number;
  cookie: number;
  /** 16 bytes as on the wire (libsrt's word order). */
  peerIp: Buffer;
  hsReq?: HsExtension;
  hsRsp?: HsExtension;
  /** Key material (KMREQ/KMRSP) content, as sent. */
  kmReq?: Buffer;
  kmRsp?: Buffer;
  streamId?: string;
  /** The stream id extension was longer than MAX_STREAM_ID (so `streamId` is unset). */
  streamIdTooLong?: boolean;
  congestion?: string;
}

export const HANDSHAKE_SIZE = 48;

/** SRT strings in extensions are 32-bit words, each sent as a little-endian word (libsrt's quirk). */
function swapWords(src: Buffer): Buffer {
  const out = Buffer.alloc(src.length);
  for (let i = 0; i + 3 < src.length; i += 4) {
    out[i] = src[i + 3]!;
    out[i + 1] = src[i + 2]!;
    out[i + 2] = src[i + 1]!;
    out[i + 3] = src[i]!;
  }
  return out;
}

function decodeWordString(content: Buffer): string {
  const bytes = swapWords(content);
  let end = bytes.length;
  while (end > 0 && bytes[end - 1] === 0) end--;
  return bytes.subarray(0, end).toString('utf8');
}

function encodeWordString(s: string): Buffer {
  const raw = Buffer.from(s, 'utf8');
  const padded = Buffer.alloc(Math.ceil(raw.length / 4) * 4);
  raw.copy(padded);
  return swapWords(padded);
}

function decodeHsExt(b: Buffer): HsExtension {
  if (b.length < 12) throw malformed('HSREQ/HSRSP shorter than 12 bytes');
  return {
    srtVersion: b.readUInt32BE(0),
    flags: b.readUInt32BE(4),
    recvDelay: b.readUInt16BE(8),
    sendDelay: b.readUInt16BE(10),
  };
}

function encodeHsExt(e: HsExtension): Buffer {
  const b = Buffer.alloc(12);
  b.writeUInt32BE(e.srtVersion >>> 0, 0);
  b.writeUInt32BE(e.flags >>> 0, 4);
  b.writeUInt16BE(e.recvDelay & 0xffff, 8);
  b.writeUInt16BE(e.sendDelay & 0xffff, 10);
  return b;
}

export function decodeHandshake(cif: Buffer): Handshake {
  if (cif.length < HANDSHAKE_SIZE) throw malformed(`handshake of ${cif.length} bytes`);
  const hs: Handshake = {
    version: cif.readUInt32BE(0),
    encryption: cif.readUInt16BE(4),
    extension: cif.readUInt16BE(6),
    initialSeq: cif.readUInt32BE(8) & SEQ_MAX,
    mtu: cif.readUInt32BE(12),
    flowWindow: cif.readUInt32BE(16),
    type: cif.readUInt32BE(20),
    socketId: cif.readUInt32BE(24),
    cookie: cif.readUInt32BE(28),
    peerIp: Buffer.from(cif.subarray(32, 48)),
  };
  let pos = HANDSHAKE_SIZE;
  // Extensions: type (16), length in 32-bit words (16), content. Each length is checked against what is left.
  while (pos + 4 <= cif.length) {
    const type = cif.readUInt16BE(pos);
    const len = cif.readUInt16BE(pos + 2) * 4;
    pos += 4;
    if (pos + len > cif.length) throw malformed(`handshake extension ${type} of ${len} bytes overruns`);
    const content = cif.subarray(pos, pos + len);
    pos += len;
    switch (type) {
      case HsExtType.HsReq:
        hs.hsReq = decodeHsExt(content);
        break;
      case HsExtType.HsRsp:
        hs.hsRsp = decodeHsExt(content);
        break;
      case HsExtType.KmReq:
        hs.kmReq = Buffer.from(content);
        break;
      case HsExtType.KmRsp:
        hs.kmRsp = Buffer.from(content);
        break;
      case HsExtType.Sid:
        // Too long for libsrt: kept out (never decoded) but noted, so the listener can refuse it by name.
        if (len > MAX_STREAM_ID) hs.streamIdTooLong = true;
        else hs.streamId = decodeWordString(content);
        break;
      case HsExtType.Congestion:
        if (len > 16) throw malformed('congestion control name too long');
        hs.congestion = decodeWordString(content);
        break;
      default:
        break; // filter, group and unknown extensions: skipped (their length was checked)
    }
  }
  if (pos !== cif.length) throw malformed('trailing bytes after the handshake extensions');
  return hs;
}

export function encodeHandshake(hs: Handshake): Buffer {
  const head = Buffer.alloc(HANDSHAKE_SIZE);
  head.writeUInt32BE(hs.version >>> 0, 0);
  head.writeUInt16BE(hs.encryption & 0xffff, 4);
  head.writeUInt16BE(hs.extension & 0xffff, 6);
  head.writeUInt32BE(hs.initialSeq & SEQ_MAX, 8);
  head.writeUInt32BE(hs.mtu >>> 0, 12);
  head.writeUInt32BE(hs.flowWindow >>> 0, 16);
  head.writeUInt32BE(hs.type >>> 0, 20);
  head.writeUInt32BE(hs.socketId >>> 0, 24);
  head.writeUInt32BE(hs.cookie >>> 0, 28);
  hs.peerIp.copy(head, 32, 0, 16);
  const parts: Buffer[] = [head];
  const ext = (type: number, content: Buffer): void => {
    const h = Buffer.alloc(4);
    h.writeUInt16BE(type, 0);
    h.writeUInt16BE(content.length / 4, 2);
    parts.push(h, content);
  };
  if (hs.hsReq) ext(HsExtType.HsReq, encodeHsExt(hs.hsReq));
  if (hs.hsRsp) ext(HsExtType.HsRsp, encodeHsExt(hs.hsRsp));
  if (hs.kmReq) ext(HsExtType.KmReq, hs.kmReq);
  if (hs.kmRsp) ext(HsExtType.KmRsp, hs.kmRsp);
  if (hs.streamId !== undefined) ext(HsExtType.Sid, encodeWordString(hs.streamId));
  if (hs.congestion !== undefined) ext(HsExtType.Congestion, encodeWordString(hs.congestion));
  return Buffer.concat(parts);
}

/** The peer address field: IPv4 as libsrt writes it (one little-endian word, then zeros), IPv6 as 4 words. */
export function encodePeerIp(address: string): Buffer {
  const out = Buffer.alloc(16);
  const v4 = /^(?:::ffff:)?(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(address);
  if (v4) {
    for (let i = 0; i < 4; i++) out[3 - i] = Number(v4[i + 1]) & 0xff;
    return out;
  }
  return out; // IPv6: libsrt does not check the field; zeros are fine
}

// --- key material (§3.2.2) ------------------------------------------------------------------------------

export interface KeyMaterial {
  /** Which keys are wrapped: even (1), odd (2) or both (3). */
  keys: number;
  keki: number;
  cipher: number;
  auth: number;
  se: number;
  salt: Buffer;
  /** Bytes per key: 16, 24 or 32. */
  keyLength: number;
  /** The wrapped keys: 8 + n × keyLength bytes. */
  wrap: Buffer;
}

const KM_SIGN = 0x2029;
/** A KMRSP of one word is an error state (SRT_KM_S_*). */
export const KmState = { Unsecured: 0, Securing: 1, Secured: 2, NoSecret: 3, BadSecret: 4 } as const;

export function decodeKeyMaterial(b: Buffer): KeyMaterial {
  if (b.length < 16) throw malformed(`key material of ${b.length} bytes`);
  const version = (b[0]! >> 4) & 7;
  const packetType = b[0]! & 0x0f;
  if (version !== 1 || packetType !== 2 || b.readUInt16BE(1) !== KM_SIGN) {
    throw malformed('key material: bad version, type or signature');
  }
  const keys = b[3]! & 3;
  if (keys === 0) throw malformed('key material without a key');
  const saltLength = b[14]! * 4;
  const keyLength = b[15]! * 4;
  if (keyLength !== 16 && keyLength !== 24 && keyLength !== 32) {
    throw malformed(`key material: key length ${keyLength}`);
  }
  if (saltLength !== 16) throw malformed(`key material: salt length ${saltLength}`);
  const n = keys === 3 ? 2 : 1;
  const wrapLength = 8 + n * keyLength;
  if (b.length !== 16 + saltLength + wrapLength) throw malformed('key material: length mismatch');
  return {
    keys,
    keki: b.readUInt32BE(4),
    cipher: b[8]!,
    auth: b[9]!,
    se: b[10]!,
    salt: Buffer.from(b.subarray(16, 16 + saltLength)),
    keyLength,
    wrap: Buffer.from(b.subarray(16 + saltLength)),
  };
}

export function encodeKeyMaterial(km: KeyMaterial): Buffer {
  const head = Buffer.alloc(16);
  head[0] = (1 << 4) | 2;
  head.writeUInt16BE(KM_SIGN, 1);
  head[3] = km.keys & 3;
  head.writeUInt32BE(km.keki >>> 0, 4);
  head[8] = km.cipher;
  head[9] = km.auth;
  head[10] = km.se;
  head[14] = km.salt.length / 4;
  head[15] = km.keyLength / 4;
  return Buffer.concat([head, km.salt, km.wrap]);
}

/** A one-word KMRSP carrying an error state (libsrt writes it in host order: little-endian). */
export function encodeKmState(state: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(state, 0);
  return b;
}

// --- ACK, NAK -------------------------------------------------------------------------------------------

export interface Ack {
  /** The sequence number after the last packet received in order. */
  lastAck: number;
  /** µs. */
  rtt?: number;
  rttVar?: number;
  /** Packets the receive buffer can still take. */
  bufferAvailable?: number;
  /** Packets per second. */
  packetRate?: number;
  linkCapacity?: number;
  /** Bytes per second. */
  receiveRate?: number;
}

/** A light ACK when only `lastAck` is set, else a full one (28 bytes). */
export function encodeAck(ack: Ack): Buffer {
  if (ack.rtt === undefined) {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(ack.lastAck & SEQ_MAX, 0);
    return b;
  }
  const b = Buffer.alloc(28);
  b.writeUInt32BE(ack.lastAck & SEQ_MAX, 0);
  b.writeUInt32BE(ack.rtt >>> 0, 4);
  b.writeUInt32BE((ack.rttVar ?? 0) >>> 0, 8);
  b.writeUInt32BE((ack.bufferAvailable ?? 0) >>> 0, 12);
  b.writeUInt32BE((ack.packetRate ?? 0) >>> 0, 16);
  b.writeUInt32BE((ack.linkCapacity ?? 0) >>> 0, 20);
  b.writeUInt32BE((ack.receiveRate ?? 0) >>> 0, 24);
  return b;
}

export function decodeAck(b: Buffer): Ack {
  if (b.length < 4) throw malformed('ACK shorter than 4 bytes');
  const ack: Ack = { lastAck: b.readUInt32BE(0) & SEQ_MAX };
  if (b.length >= 16) {
    ack.rtt = b.readUInt32BE(4);
    ack.rttVar = b.readUInt32BE(8);
    ack.bufferAvailable = b.readUInt32BE(12);
  }
  if (b.length >= 28) {
    ack.packetRate = b.readUInt32BE(16);
    ack.linkCapacity = b.readUInt32BE(20);
    ack.receiveRate = b.readUInt32BE(24);
  }
  return ack;
}

/** Loss ranges [first, last] (inclusive; first === last for one packet). */
export type LossRange = readonly [number, number];

/** A NAK's loss list: a single number, or a range as first-with-the-top-bit-set followed by last. */
export function encodeLossList(ranges: readonly LossRange[]): Buffer {
  const words: number[] = [];
  for (const [a, b] of ranges) {
    if (a === b) words.push(a & SEQ_MAX);
    else words.push((0x80000000 | (a & SEQ_MAX)) >>> 0, b & SEQ_MAX);
  }
  const buf = Buffer.alloc(words.length * 4);
  words.forEach((w, i) => {
    buf.writeUInt32BE(w, i * 4);
  });
  return buf;
}

export function decodeLossList(b: Buffer): LossRange[] {
  if (b.length % 4 !== 0) throw malformed('NAK loss list is not whole words');
  const out: LossRange[] = [];
  for (let i = 0; i < b.length; i += 4) {
    const w = b.readUInt32BE(i);
    if (w & 0x80000000) {
      if (i + 4 >= b.length) throw malformed('NAK range without its end');
      out.push([w & SEQ_MAX, b.readUInt32BE(i + 4) & SEQ_MAX]);
      i += 4;
    } else out.push([w, w]);
  }
  return out;
}
