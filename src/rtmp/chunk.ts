/**
 * Shared definitions of the RTMP chunk stream layer (Adobe RTMP spec §5.3).
 */

/** A whole message as the chunk layer sees it: a type, a stream, a timestamp and opaque bytes. */
export interface RawMessage {
  /** Chunk stream id it arrived on (2–65599). */
  csid: number;
  type: number;
  /** Message stream id (0 for control and connection commands, the publish stream otherwise). */
  streamId: number;
  /** Absolute timestamp in ms, 32-bit unsigned. */
  timestamp: number;
  payload: Buffer;
}

export const DEFAULT_CHUNK_SIZE = 128;
/** Spec §5.4.1: chunk sizes are 31-bit, and a chunk never needs to exceed the largest message (24-bit length). */
export const MAX_CHUNK_SIZE = 0xffffff;
export const MIN_CSID = 2;
export const MAX_CSID = 65599;
export const EXTENDED_TIMESTAMP = 0xffffff;

/** Size of the message header for each chunk format. */
export const MESSAGE_HEADER_SIZE = [11, 7, 3, 0] as const;
