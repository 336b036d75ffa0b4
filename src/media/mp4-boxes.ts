/**
 * ISO BMFF (ISO/IEC 14496-12) box plumbing for the CMAF writer: builders that concatenate for the init
 * segment (written once per configuration, so clarity wins), and a cursor over one preallocated Buffer for
 * fragments (written for every frame, so sizes are computed first and nothing is concatenated).
 */

/** A FourCC as the big-endian u32 it is on the wire ('moof' → 0x6d6f6f66). */
export function fourcc(type: string): number {
  if (type.length !== 4) throw new RangeError(`FourCC '${type}'`);
  return (
    type.charCodeAt(0) * 0x1000000 +
    ((type.charCodeAt(1) << 16) | (type.charCodeAt(2) << 8) | type.charCodeAt(3))
  );
}

export function u8(n: number): Buffer {
  return Buffer.from([n & 0xff]);
}

export function u16(n: number): Buffer {
  const b = Buffer.allocUnsafe(2);
  b.writeUInt16BE(n);
  return b;
}

export function u32(n: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32BE(n);
  return b;
}

export function zeros(n: number): Buffer {
  return Buffer.alloc(n);
}

export function ascii(s: string): Buffer {
  return Buffer.from(s, 'latin1');
}

/** A box: 32-bit size, type, payload. */
export function box(type: string, ...payload: Buffer[]): Buffer {
  let size = 8;
  for (const p of payload) size += p.length;
  const head = Buffer.allocUnsafe(8);
  head.writeUInt32BE(size);
  head.write(type, 4, 'latin1');
  return Buffer.concat([head, ...payload], size);
}

/** A FullBox: a box whose payload starts with version (8 bits) and flags (24 bits). */
export function fullBox(type: string, version: number, flags: number, ...payload: Buffer[]): Buffer {
  return box(type, u32((((version & 0xff) << 24) | (flags & 0xffffff)) >>> 0), ...payload);
}

/** The identity matrix of mvhd and tkhd (16.16 and 2.30 fixed point). */
export const UNITY_MATRIX = Buffer.from(
  [0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000].flatMap((v) => [
    v >>> 24,
    (v >>> 16) & 0xff,
    (v >>> 8) & 0xff,
    v & 0xff,
  ]),
);

/** Big-endian writes at a moving position in one Buffer the caller sized exactly. */
export class BoxCursor {
  readonly buf: Buffer;
  pos = 0;

  constructor(size: number) {
    this.buf = Buffer.allocUnsafe(size);
  }

  u32(v: number): void {
    this.buf.writeUInt32BE(v, this.pos);
    this.pos += 4;
  }

  i32(v: number): void {
    this.buf.writeInt32BE(v, this.pos);
    this.pos += 4;
  }

  /** Below 2^53, as every time the writer produces is. */
  u64(v: number): void {
    this.buf.writeUInt32BE(Math.floor(v / 0x100000000), this.pos);
    this.buf.writeUInt32BE(v >>> 0, this.pos + 4);
    this.pos += 8;
  }

  /** A box header: size and type. */
  head(size: number, type: number): void {
    this.u32(size);
    this.u32(type);
  }

  bytes(data: Buffer): void {
    data.copy(this.buf, this.pos);
    this.pos += data.length;
  }
}
