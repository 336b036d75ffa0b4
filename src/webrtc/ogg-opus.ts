/**
 * Reads Opus packets out of an Ogg byte stream (RFC 3533 pages, RFC 7845 Opus mapping) as FFmpeg writes it
 * to a pipe: pages are reassembled into packets (a 255-byte lacing value continues the packet), and the
 * two header packets (OpusHead, OpusTags) are skipped. Hand-written because it is forty lines and the only
 * container FFmpeg streams Opus in with packet boundaries intact. Pure; bounded: a page larger than the
 * format allows or a broken capture pattern throws (the encoder is then restarted by its owner).
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
