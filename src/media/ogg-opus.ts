/**
 * Opus in Ogg (RFC 3533 pages, RFC 7845 Opus mapping), the only container FFmpeg streams Opus through a pipe
 * in with packet boundaries intact, both ways: WHEP's AAC → Opus encoder reads it, the Opus → AAC encoder
 * for FLV outputs of a WHIP stream writes it. Hand-written because each direction is forty lines.
 *
 * - OggOpusReader: pages are reassembled into packets (a 255-byte lacing value continues the packet), and the
 *   two header packets (OpusHead, OpusTags) are skipped. Bounded: a page larger than the format allows or a
 *   broken capture pattern throws (the encoder is then restarted by its owner).
 * - OggOpusWriter: the two header pages, then one page per packet with its granule position (48 kHz samples
 *   so far, RFC 7845 §4), CRC included (FFmpeg checks it when asked to).
 * - opusPacketSamples: a packet's duration from its TOC byte (RFC 6716 §3.1).
 * Pure.
 */

const CAPTURE = 0x4f676753; // "OggS"
const HEADER_SIZE = 27;
/** 255 segments of 255 bytes: the largest page body. */
const MAX_BODY = 255 * 255;
/** A packet spanning pages is capped too (an Opus packet is at most 1275 bytes per frame, 120 ms). */
const MAX_PACKET = 64 * 1024;

export class OggOpusReader {
  #buffer: Buffer = Buffer.alloc(0);
  #partial: Buffer[] = [];
  #partialSize = 0;
  #packetIndex = 0;

  /** Feeds bytes; returns the Opus audio packets completed by them, in order. */
  push(chunk: Buffer): Buffer[] {
    this.#buffer = this.#buffer.length === 0 ? chunk : Buffer.concat([this.#buffer, chunk]);
    const out: Buffer[] = [];
    for (;;) {
      const b = this.#buffer;
      if (b.length < HEADER_SIZE) break;
      if (b.readUInt32BE(0) !== CAPTURE || b[4] !== 0) throw new Error('Ogg: lost page sync');
      const segments = b[26]!;
      if (b.length < HEADER_SIZE + segments) break;
      let bodySize = 0;
      for (let i = 0; i < segments; i++) bodySize += b[HEADER_SIZE + i]!;
      if (bodySize > MAX_BODY) throw new Error('Ogg: page too large');
      const bodyStart = HEADER_SIZE + segments;
      if (b.length < bodyStart + bodySize) break;
      let at = bodyStart;
      for (let i = 0; i < segments; i++) {
        const lace = b[HEADER_SIZE + i]!;
        this.#partial.push(b.subarray(at, at + lace));
        this.#partialSize += lace;
        at += lace;
        if (this.#partialSize > MAX_PACKET) throw new Error('Ogg: packet too large');
        if (lace < 255) {
          const packet = Buffer.concat(this.#partial, this.#partialSize);
          this.#partial = [];
          this.#partialSize = 0;
          // Packets 0 and 1 are OpusHead and OpusTags (RFC 7845 §3).
          if (this.#packetIndex++ >= 2) out.push(packet);
        }
      }
      this.#buffer = b.subarray(bodyStart + bodySize);
    }
    return out;
  }
}

/** Samples at 48 kHz in one Opus packet, from its TOC (RFC 6716 §3.1); 0 for an empty or truncated packet. */
export function opusPacketSamples(packet: Buffer): number {
  if (packet.length === 0) return 0;
  const toc = packet[0]!;
  const config = toc >> 3;
  // Frame size in 1/400 s (2.5 ms) units: SILK 10/20/40/60 ms, hybrid 10/20 ms, CELT 2.5/5/10/20 ms.
  const units =
    config < 12 ? [4, 8, 16, 24][config & 3]! : config < 16 ? [4, 8][config & 1]! : [1, 2, 4, 8][config & 3]!;
  const code = toc & 3;
  let frames = code === 0 ? 1 : code === 3 ? (packet[1] ?? 0) & 0x3f : 2;
  if (code === 3 && packet.length < 2) frames = 0;
  return units * 120 * frames;
}

/** CRC-32 of Ogg pages: polynomial 0x04c11db7, not reflected, no initial or final XOR (RFC 3533 §6). */
const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let r = i << 24;
    for (let k = 0; k < 8; k++) r = r & 0x80000000 ? (r << 1) ^ 0x04c11db7 : r << 1;
    t[i] = r >>> 0;
  }
  return t;
})();

export function oggCrc(data: Buffer): number {
  let crc = 0;
  for (const byte of data) crc = ((crc << 8) ^ CRC_TABLE[((crc >>> 24) ^ byte) & 0xff]!) >>> 0;
  return crc;
}

export class OggOpusWriter {
  readonly #serial: number;
  #sequence = 0;
  #granule = 0;

  constructor(serial = 0x52454c59) {
    this.#serial = serial;
  }

  /** OpusHead (mapping family 0, no pre-skip: the RTP packets it carries had none) and OpusTags, one page each. */
  header(channels: number): Buffer {
    const head = Buffer.alloc(19);
    head.write('OpusHead', 0, 'latin1');
    head[8] = 1; // version
    head[9] = channels >= 2 ? 2 : 1;
    head.writeUInt16LE(0, 10); // pre-skip
    head.writeUInt32LE(48_000, 12); // input sample rate (informational)
    head.writeInt16LE(0, 16); // output gain
    head[18] = 0; // mapping family 0: mono or stereo
    const vendor = Buffer.from('rtmp-relay', 'latin1');
    const tags = Buffer.alloc(8 + 4 + vendor.length + 4);
    tags.write('OpusTags', 0, 'latin1');
    tags.writeUInt32LE(vendor.length, 8);
    vendor.copy(tags, 12);
    tags.writeUInt32LE(0, 12 + vendor.length);
    return Buffer.concat([this.#page(head, 0x02, 0), this.#page(tags, 0x00, 0)]);
  }

  /** One packet on its own page; its granule position counts the packet's samples. */
  packet(packet: Buffer): Buffer {
    this.#granule += opusPacketSamples(packet);
    return this.#page(packet, 0x00, this.#granule);
  }

  #page(body: Buffer, flags: number, granule: number): Buffer {
    // Lacing: 255s then the remainder (a 0 ends a packet whose size is a multiple of 255).
    const lacing: number[] = [];
    let left = body.length;
    while (left >= 255) {
      lacing.push(255);
      left -= 255;
    }
    lacing.push(left);
    if (lacing.length > 255) throw new Error('Ogg: packet too large for one page');
    const page = Buffer.alloc(HEADER_SIZE + lacing.length + body.length);
    page.writeUInt32BE(CAPTURE, 0);
    page[4] = 0; // version
    page[5] = flags;
    page.writeBigInt64LE(BigInt(granule), 6);
    page.writeUInt32LE(this.#serial, 14);
    page.writeUInt32LE(this.#sequence++, 18);
    page[26] = lacing.length;
    Buffer.from(lacing).copy(page, HEADER_SIZE);
    body.copy(page, HEADER_SIZE + lacing.length);
    page.writeUInt32LE(oggCrc(page), 22);
    return page;
  }
}
