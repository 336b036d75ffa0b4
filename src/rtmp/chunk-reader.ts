/**
 * RTMP chunk stream reader (Adobe RTMP spec §5.3), pure and incremental: feed it TCP reads of any size, it
 * calls back with whole messages. Hand-written (see ../../shared/reference/rtmp.md for why no npm package
 * fits); shaped after gortmplib `rawmessage/reader.go`.
 *
 * Hostile-input rules: every peer-sent length is checked before anything is kept; payload pieces are
 * collected as they arrive (never preallocated from a declared length); the number of chunk streams and the
 * bytes held in partial messages are capped. Any violation throws a RelayError with a stable code.
 *
 * Timestamp rules (spec and FFmpeg): fmt 0 carries an absolute timestamp, fmt 1/2 a delta; a fmt-3 chunk
 * that starts a message adds the previous delta, where after a fmt-0 header that "delta" is the fmt-0
 * timestamp field. With an extended timestamp, fmt-3 chunks repeat the 4-byte field; senders that omit it
 * are tolerated by peeking (SRS's rule): the 4 bytes are skipped only when they equal the current value.
 */
import { ErrorCodes, RelayError } from '../shared/errors.ts';
import {
  DEFAULT_CHUNK_SIZE,
  EXTENDED_TIMESTAMP,
  MAX_CHUNK_SIZE,
  MESSAGE_HEADER_SIZE,
  type RawMessage,
} from './chunk.ts';

export interface ChunkReaderLimits {
  /** Largest message accepted, in bytes (default 8 MiB). */
  maxMessageSize: number;
  /** Most chunk streams a peer may open (default 64). */
  maxChunkStreams: number;
  /** Most bytes held across all partial messages (default 16 MiB). */
  maxBufferedBytes: number;
}

export const DEFAULT_CHUNK_READER_LIMITS: ChunkReaderLimits = {
  maxMessageSize: 8 * 1024 * 1024,
  maxChunkStreams: 64,
  maxBufferedBytes: 16 * 1024 * 1024,
};

interface ChunkStreamState {
  readonly csid: number;
  timestamp: number;
  delta: number;
  length: number;
  type: number;
  streamId: number;
  /** The last header of this chunk stream used an extended timestamp; its value, for fmt-3 chunks. */
  extended: boolean;
  extendedValue: number;
  /** Pieces of the message in progress; `received` bytes so far. */
  parts: Buffer[];
  received: number;
  inMessage: boolean;
}

export class ChunkReader {
  readonly limits: ChunkReaderLimits;
  #chunkSize = DEFAULT_CHUNK_SIZE;
  readonly #streams = new Map<number, ChunkStreamState>();
  /** Header bytes left over from the previous push (never more than one header). */
  #carry: Buffer | null = null;
  /** Chunk stream whose payload is being read, and how many bytes of this chunk remain. */
  #current: ChunkStreamState | null = null;
  #chunkRemaining = 0;
  #buffered = 0;
  #stopped = false;

  constructor(limits: Partial<ChunkReaderLimits> = {}) {
    this.limits = { ...DEFAULT_CHUNK_READER_LIMITS, ...limits };
  }

  get chunkSize(): number {
    return this.#chunkSize;
  }

  /** Bytes held in partial messages. */
  get bufferedBytes(): number {
    return this.#buffered;
  }

  get openChunkStreams(): number {
    return this.#streams.size;
  }

  /** Applies a peer's Set Chunk Size (type 1). 0 is an error; values above 0xFFFFFF act as 0xFFFFFF. */
  setChunkSize(size: number): void {
    if (!Number.isInteger(size) || size < 1) {
      throw new RelayError(ErrorCodes.RTMP_CHUNK_SIZE_INVALID, `invalid chunk size ${size}`);
    }
    this.#chunkSize = Math.min(size, MAX_CHUNK_SIZE);
  }

  /** Applies a peer's Abort (type 2): drops the partial message of that chunk stream. */
  abort(csid: number): void {
    const state = this.#streams.get(csid);
    if (!state?.inMessage) return;
    if (this.#current === state) {
      this.#current = null;
      this.#chunkRemaining = 0;
    }
    this.#dropPartial(state);
  }

  /** Stops parsing: the rest of the current push and later pushes are ignored (the connection is closing). */
  stop(): void {
    this.#stopped = true;
  }

  /**
   * Parses `data`, calling `onMessage` for each complete message in order. The callback may call
   * setChunkSize/abort/stop; they apply to the bytes that follow. Throws RelayError on a protocol violation.
   */
  push(data: Buffer, onMessage: (message: RawMessage) => void): void {
    let buf = data;
    if (this.#carry) {
      buf = Buffer.concat([this.#carry, data]);
      this.#carry = null;
    }
    let pos = 0;
    while (pos < buf.length && !this.#stopped) {
      if (this.#current === null) {
        const used = this.#readHeader(buf, pos, onMessage);
        if (used === 0) {
          this.#carry = Buffer.from(buf.subarray(pos)); // copy: never pin a large read for a few bytes
          return;
        }
        pos += used;
        continue;
      }
      const state = this.#current;
      const take = Math.min(this.#chunkRemaining, buf.length - pos);
      state.parts.push(buf.subarray(pos, pos + take));
      state.received += take;
      this.#buffered += take;
      this.#chunkRemaining -= take;
      pos += take;
      if (this.#chunkRemaining === 0) {
        this.#current = null;
        if (state.received === state.length) this.#complete(state, onMessage);
      }
    }
  }

  /** Reads one chunk header at `pos`. Returns the bytes consumed, or 0 when the header is incomplete. */
  #readHeader(buf: Buffer, pos: number, onMessage: (message: RawMessage) => void): number {
    const available = buf.length - pos;
    const b0 = buf[pos]!;
    const fmt = b0 >> 6;
    let csid = b0 & 0x3f;
    let at = pos + 1;
    if (csid === 0) {
      if (available < 2) return 0;
      csid = 64 + buf[at]!;
      at += 1;
    } else if (csid === 1) {
      if (available < 3) return 0;
      csid = 64 + buf[at]! + buf[at + 1]! * 256;
      at += 2;
    }
    const headerSize = MESSAGE_HEADER_SIZE[fmt as 0 | 1 | 2 | 3];
    if (buf.length - at < headerSize) return 0;

    let state = this.#streams.get(csid);
    if (state === undefined) {
      if (fmt >= 2) {
        throw new RelayError(
          ErrorCodes.RTMP_CHUNK_NO_PREVIOUS,
          `chunk format ${fmt} on chunk stream ${csid} with no previous header`,
        );
      }
      if (this.#streams.size >= this.limits.maxChunkStreams) {
        throw new RelayError(
          ErrorCodes.RTMP_CHUNK_STREAMS_EXCEEDED,
          `more than ${this.limits.maxChunkStreams} chunk streams opened`,
        );
      }
    }
    if (fmt < 3 && state?.inMessage) {
      throw new RelayError(
        ErrorCodes.RTMP_CHUNK_HEADER_MID_MESSAGE,
        `format ${fmt} header on chunk stream ${csid} while a message is in progress`,
      );
    }

    let field = 0;
    let length = state?.length ?? 0;
    let type = state?.type ?? 0;
    let streamId = state?.streamId ?? 0;
    if (fmt <= 2) field = buf.readUIntBE(at, 3);
    if (fmt <= 1) {
      length = buf.readUIntBE(at + 3, 3);
      type = buf[at + 6]!;
    }
    if (fmt === 0) streamId = buf.readUInt32LE(at + 7);
    at += headerSize;

    let extended: boolean;
    if (fmt < 3) {
      extended = field === EXTENDED_TIMESTAMP;
      if (extended) {
        if (buf.length - at < 4) return 0;
        field = buf.readUInt32BE(at);
        at += 4;
      }
    } else {
      extended = state!.extended;
      if (extended) {
        // Peek: skip the repeated extended timestamp only when it is there (some senders omit it).
        if (buf.length - at < 4) return 0;
        if (buf.readUInt32BE(at) === state!.extendedValue) at += 4;
      }
    }

    if (length > this.limits.maxMessageSize) {
      throw new RelayError(
        ErrorCodes.RTMP_MESSAGE_TOO_LARGE,
        `message of ${length} bytes exceeds the ${this.limits.maxMessageSize}-byte limit`,
      );
    }

    if (state === undefined) {
      // A fmt-1 first chunk (librtmp has started a ping this way): timestamps start from 0.
      state = {
        csid,
        timestamp: 0,
        delta: 0,
        length,
        type,
        streamId,
        extended,
        extendedValue: 0,
        parts: [],
        received: 0,
        inMessage: false,
      };
      this.#streams.set(csid, state);
    }

    if (fmt < 3) {
      state.extended = extended;
      state.extendedValue = field;
    }
    if (!state.inMessage) {
      if (fmt === 0) {
        state.timestamp = field;
        state.delta = field;
      } else if (fmt === 3) {
        state.timestamp = (state.timestamp + state.delta) >>> 0;
      } else {
        state.delta = field;
        state.timestamp = (state.timestamp + field) >>> 0;
      }
      state.length = length;
      state.type = type;
      state.streamId = streamId;
      state.inMessage = true;
      state.received = 0;
      state.parts = [];
    }

    const remaining = state.length - state.received;
    const chunkPayload = Math.min(this.#chunkSize, remaining);
    if (this.#buffered + chunkPayload > this.limits.maxBufferedBytes) {
      throw new RelayError(
        ErrorCodes.RTMP_BUFFERED_TOO_MUCH,
        `partial messages would hold more than ${this.limits.maxBufferedBytes} bytes`,
      );
    }
    if (chunkPayload === 0) {
      this.#complete(state, onMessage);
    } else {
      this.#current = state;
      this.#chunkRemaining = chunkPayload;
    }
    return at - pos;
  }

  #complete(state: ChunkStreamState, onMessage: (message: RawMessage) => void): void {
    const payload =
      state.parts.length === 1
        ? state.parts[0]!
        : state.parts.length === 0
          ? Buffer.alloc(0)
          : Buffer.concat(state.parts);
    this.#buffered -= state.received;
    state.parts = [];
    state.received = 0;
    state.inMessage = false;
    onMessage({
      csid: state.csid,
      type: state.type,
      streamId: state.streamId,
      timestamp: state.timestamp,
      payload,
    });
  }

  #dropPartial(state: ChunkStreamState): void {
    this.#buffered -= state.received;
    state.parts = [];
    state.received = 0;
    state.inMessage = false;
  }
}
