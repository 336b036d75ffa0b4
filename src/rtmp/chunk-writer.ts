/**
 * RTMP chunk stream writer (Adobe RTMP spec §5.3), pure: messages in, chunk bytes out. It picks the smallest
 * header the reader's rules allow (fmt 0 for a chunk stream's first message or a timestamp that goes back,
 * then 1, 2 or 3), and repeats the extended timestamp on fmt-3 continuation chunks as the spec says.
 * The server uses it for its replies; tests and benchmarks use it to play a publisher.
 */
import {
  DEFAULT_CHUNK_SIZE,
  EXTENDED_TIMESTAMP,
  MAX_CHUNK_SIZE,
  MAX_CSID,
  MIN_CSID,
  type RawMessage,
} from './chunk.ts';

interface WriterState {
  timestamp: number;
  delta: number;
  length: number;
  type: number;
  streamId: number;
}

export class ChunkWriter {
  #chunkSize = DEFAULT_CHUNK_SIZE;
  readonly #streams = new Map<number, WriterState>();

  get chunkSize(): number {
    return this.#chunkSize;
  }

  /** Call after sending Set Chunk Size: later messages are cut at this size. */
  setChunkSize(size: number): void {
    if (!Number.isInteger(size) || size < 1 || size > MAX_CHUNK_SIZE)
      throw new RangeError(`chunk size ${size}`);
    this.#chunkSize = size;
  }

  /** Encodes one message into chunks. `fmt` forces the first chunk's format (tests only). */
  write(message: RawMessage, options: { fmt?: 0 | 1 | 2 | 3 } = {}): Buffer {
    const { csid, type, streamId, payload } = message;
    const timestamp = message.timestamp >>> 0;
    if (csid < MIN_CSID || csid > MAX_CSID) throw new RangeError(`chunk stream id ${csid}`);
    if (payload.length > 0xffffff) throw new RangeError('message longer than 16 MiB');

    const prev = this.#streams.get(csid);
    let fmt: 0 | 1 | 2 | 3 = 0;
    let delta = timestamp;
    if (prev && prev.streamId === streamId && timestamp >= prev.timestamp) {
      delta = timestamp - prev.timestamp;
      if (prev.length !== payload.length || prev.type !== type) fmt = 1;
      else if (delta !== prev.delta) fmt = 2;
      else fmt = 3;
    }
    if (options.fmt !== undefined) {
      fmt = options.fmt;
      delta = fmt === 0 ? timestamp : timestamp - (prev?.timestamp ?? 0);
    }
    const field = fmt === 0 ? timestamp : delta;
    const extended = field >= EXTENDED_TIMESTAMP;

    const chunkSize = this.#chunkSize;
    const chunks = Math.max(1, Math.ceil(payload.length / chunkSize));
    const basic = basicHeaderSize(csid);
    const firstHeader = basic + [11, 7, 3, 0][fmt]! + (extended ? 4 : 0);
    const contHeader = basic + (extended ? 4 : 0);
    const out = Buffer.allocUnsafe(firstHeader + (chunks - 1) * contHeader + payload.length);

    let at = writeBasicHeader(out, 0, fmt, csid);
    const tsField = extended ? EXTENDED_TIMESTAMP : field;
    if (fmt <= 2) {
      out.writeUIntBE(tsField, at, 3);
      at += 3;
    }
    if (fmt <= 1) {
      out.writeUIntBE(payload.length, at, 3);
      out[at + 3] = type;
      at += 4;
    }
    if (fmt === 0) {
      out.writeUInt32LE(streamId, at);
      at += 4;
    }
    if (extended) {
      out.writeUInt32BE(field, at);
      at += 4;
    }
    let sent = 0;
    for (let i = 0; i < chunks; i++) {
      if (i > 0) {
        at = writeBasicHeader(out, at, 3, csid);
        if (extended) {
          out.writeUInt32BE(field, at);
          at += 4;
        }
      }
      const n = Math.min(chunkSize, payload.length - sent);
      payload.copy(out, at, sent, sent + n);
      at += n;
      sent += n;
    }
    this.#streams.set(csid, {
      timestamp,
      delta: fmt === 0 ? timestamp : delta,
      length: payload.length,
      type,
      streamId,
    });
    return out;
  }
}

function basicHeaderSize(csid: number): number {
  return csid < 64 ? 1 : csid < 320 ? 2 : 3;
}

function writeBasicHeader(out: Buffer, at: number, fmt: number, csid: number): number {
  if (csid < 64) {
    out[at] = (fmt << 6) | csid;
    return at + 1;
  }
  if (csid < 320) {
    out[at] = fmt << 6;
    out[at + 1] = csid - 64;
    return at + 2;
  }
  out[at] = (fmt << 6) | 1;
  out.writeUInt16LE(csid - 64, at + 1);
  return at + 3;
}
