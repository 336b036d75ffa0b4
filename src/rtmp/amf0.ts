/**
 * AMF0 (Adobe AMF0 spec), the encoding of RTMP commands and metadata. Hand-written because the decoder has
 * to be total on hostile bytes: every read is bounds-checked, nesting is capped, objects have no prototype,
 * and any malformation becomes one `AMF0_MALFORMED` RelayError that the connection turns into a close.
 */
import { ErrorCodes, RelayError } from '../shared/errors.ts';

export const Amf0Marker = {
  Number: 0x00,
  Boolean: 0x01,
  String: 0x02,
  Object: 0x03,
  MovieClip: 0x04,
  Null: 0x05,
  Undefined: 0x06,
  Reference: 0x07,
  EcmaArray: 0x08,
  ObjectEnd: 0x09,
  StrictArray: 0x0a,
  Date: 0x0b,
  LongString: 0x0c,
  Unsupported: 0x0d,
  RecordSet: 0x0e,
  XmlDocument: 0x0f,
  TypedObject: 0x10,
  AvmPlus: 0x11,
} as const;

export type Amf0Value = number | boolean | string | null | undefined | Date | Amf0Object | Amf0Value[];
export interface Amf0Object {
  [key: string]: Amf0Value;
}

/** Marks an object to be encoded as an ECMA array (how onMetaData is usually sent). Decoding gives an object. */
export class Amf0EcmaArray {
  constructor(readonly entries: Amf0Object) {}
}

export type Amf0Encodable = Amf0Value | Amf0EcmaArray | Amf0Encodable[] | { [key: string]: Amf0Encodable };

export const AMF0_MAX_DEPTH = 16;

function malformed(message: string): RelayError {
  return new RelayError(ErrorCodes.AMF0_MALFORMED, `AMF0: ${message}`);
}

export function newAmf0Object(): Amf0Object {
  return Object.create(null) as Amf0Object;
}

class Reader {
  pos: number;
  constructor(
    readonly buf: Buffer,
    start: number,
  ) {
    this.pos = start;
  }

  need(n: number): void {
    if (this.pos + n > this.buf.length) {
      throw malformed(`truncated: need ${n} bytes at ${this.pos}, have ${this.buf.length - this.pos}`);
    }
  }

  u8(): number {
    this.need(1);
    return this.buf[this.pos++]!;
  }

  u16(): number {
    this.need(2);
    const v = this.buf.readUInt16BE(this.pos);
    this.pos += 2;
    return v;
  }

  u32(): number {
    this.need(4);
    const v = this.buf.readUInt32BE(this.pos);
    this.pos += 4;
    return v;
  }

  f64(): number {
    this.need(8);
    const v = this.buf.readDoubleBE(this.pos);
    this.pos += 8;
    return v;
  }

  utf8(length: number): string {
    this.need(length);
    const s = this.buf.toString('utf8', this.pos, this.pos + length);
    this.pos += length;
    return s;
  }
}

function readObjectBody(r: Reader, depth: number): Amf0Object {
  const obj = newAmf0Object();
  for (;;) {
    const keyLength = r.u16();
    if (keyLength === 0) {
      const end = r.u8();
      if (end !== Amf0Marker.ObjectEnd)
        throw malformed(`expected object end marker, got 0x${end.toString(16)}`);
      return obj;
    }
    const key = r.utf8(keyLength);
    obj[key] = readValue(r, depth + 1);
  }
}

function readValue(r: Reader, depth: number): Amf0Value {
  if (depth > AMF0_MAX_DEPTH) throw malformed(`nesting deeper than ${AMF0_MAX_DEPTH}`);
  const marker = r.u8();
  switch (marker) {
    case Amf0Marker.Number:
      return r.f64();
    case Amf0Marker.Boolean:
      return r.u8() !== 0;
    case Amf0Marker.String:
      return r.utf8(r.u16());
    case Amf0Marker.LongString:
    case Amf0Marker.XmlDocument:
      return r.utf8(r.u32());
    case Amf0Marker.Object:
      return readObjectBody(r, depth);
    case Amf0Marker.TypedObject:
      r.utf8(r.u16()); // class name: irrelevant to a relay
      return readObjectBody(r, depth);
    case Amf0Marker.EcmaArray:
      r.u32(); // the count is advisory and often wrong; the body ends with the object end marker
      return readObjectBody(r, depth);
    case Amf0Marker.StrictArray: {
      const count = r.u32();
      // Each value takes at least one byte: refuse a count the buffer cannot hold before looping on it.
      if (count > r.buf.length - r.pos)
        throw malformed(`strict array count ${count} exceeds the remaining bytes`);
      const out: Amf0Value[] = [];
      for (let i = 0; i < count; i++) out.push(readValue(r, depth + 1));
      return out;
    }
    case Amf0Marker.Date: {
      const ms = r.f64();
      r.u16(); // time zone: reserved, always 0
      return new Date(ms);
    }
    case Amf0Marker.Null:
      return null;
    case Amf0Marker.Undefined:
    case Amf0Marker.Unsupported:
      return undefined;
    default:
      throw malformed(`unsupported marker 0x${marker.toString(16)}`);
  }
}

/** Decodes one value starting at `offset`; returns it and the offset after it. Throws AMF0_MALFORMED. */
export function decodeAmf0(buf: Buffer, offset = 0): { value: Amf0Value; offset: number } {
  const r = new Reader(buf, offset);
  const value = readValue(r, 0);
  return { value, offset: r.pos };
}

/** Decodes values until the buffer ends (a command or data message body). Throws AMF0_MALFORMED. */
export function decodeAmf0All(buf: Buffer, offset = 0): Amf0Value[] {
  const r = new Reader(buf, offset);
  const out: Amf0Value[] = [];
  while (r.pos < buf.length) out.push(readValue(r, 0));
  return out;
}

// ---------------------------------------------------------------------------------------------- encoding

class Writer {
  readonly parts: Buffer[] = [];

  byte(v: number): void {
    this.parts.push(Buffer.from([v]));
  }

  u16(v: number): void {
    const b = Buffer.allocUnsafe(2);
    b.writeUInt16BE(v);
    this.parts.push(b);
  }

  u32(v: number): void {
    const b = Buffer.allocUnsafe(4);
    b.writeUInt32BE(v);
    this.parts.push(b);
  }

  f64(v: number): void {
    const b = Buffer.allocUnsafe(8);
    b.writeDoubleBE(v);
    this.parts.push(b);
  }

  raw(b: Buffer): void {
    this.parts.push(b);
  }
}

function writeKey(w: Writer, key: string): void {
  const k = Buffer.from(key, 'utf8');
  if (k.length > 0xffff) throw new RangeError('AMF0 object key longer than 65535 bytes');
  w.u16(k.length);
  w.raw(k);
}

function writeObjectBody(w: Writer, obj: { [key: string]: Amf0Encodable }, depth: number): void {
  for (const [key, value] of Object.entries(obj)) {
    writeKey(w, key);
    writeValue(w, value, depth + 1);
  }
  w.u16(0);
  w.byte(Amf0Marker.ObjectEnd);
}

function writeValue(w: Writer, value: Amf0Encodable, depth: number): void {
  if (depth > AMF0_MAX_DEPTH) throw new RangeError('AMF0 value nested too deep');
  if (value === null) return w.byte(Amf0Marker.Null);
  if (value === undefined) return w.byte(Amf0Marker.Undefined);
  if (typeof value === 'number') {
    w.byte(Amf0Marker.Number);
    return w.f64(value);
  }
  if (typeof value === 'boolean') {
    w.byte(Amf0Marker.Boolean);
    return w.byte(value ? 1 : 0);
  }
  if (typeof value === 'string') {
    const s = Buffer.from(value, 'utf8');
    if (s.length > 0xffff) {
      w.byte(Amf0Marker.LongString);
      w.u32(s.length);
    } else {
      w.byte(Amf0Marker.String);
      w.u16(s.length);
    }
    return w.raw(s);
  }
  if (value instanceof Date) {
    w.byte(Amf0Marker.Date);
    w.f64(value.getTime());
    return w.u16(0);
  }
  if (value instanceof Amf0EcmaArray) {
    w.byte(Amf0Marker.EcmaArray);
    w.u32(Object.keys(value.entries).length);
    return writeObjectBody(w, value.entries, depth);
  }
  if (Array.isArray(value)) {
    w.byte(Amf0Marker.StrictArray);
    w.u32(value.length);
    for (const item of value) writeValue(w, item, depth + 1);
    return;
  }
  w.byte(Amf0Marker.Object);
  writeObjectBody(w, value, depth);
}

/** Encodes values back to back (a command: name, transaction id, command object, arguments…). */
export function encodeAmf0(...values: Amf0Encodable[]): Buffer {
  const w = new Writer();
  for (const v of values) writeValue(w, v, 0);
  return Buffer.concat(w.parts);
}
