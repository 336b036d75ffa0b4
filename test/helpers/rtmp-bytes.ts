/** Helpers for feeding recorded or generated RTMP bytes through the pure layers. */
import type { RawMessage } from '../../src/rtmp/chunk.ts';
import { ChunkReader, type ChunkReaderLimits } from '../../src/rtmp/chunk-reader.ts';
import { HANDSHAKE_SIZE } from '../../src/rtmp/handshake.ts';
import { decodeMessage, MessageType } from '../../src/rtmp/messages.ts';

/** Client bytes after C0+C1+C2. */
export function afterHandshake(recording: Buffer): Buffer {
  return recording.subarray(1 + 2 * HANDSHAKE_SIZE);
}

/** A deterministic PRNG (mulberry32), so a failing fuzz or fragmentation case can be replayed. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Splits bytes into random pieces of 1..maxPiece bytes. */
export function fragment(bytes: Buffer, random: () => number, maxPiece: number): Buffer[] {
  const pieces: Buffer[] = [];
  for (let at = 0; at < bytes.length; ) {
    const n = 1 + Math.floor(random() * maxPiece);
    pieces.push(bytes.subarray(at, at + n));
    at += n;
  }
  return pieces;
}

/** Reads every message from chunk bytes, applying Set Chunk Size and Abort as a connection does. */
export function readMessages(
  pieces: Buffer[],
  options: { chunkSize?: number; limits?: Partial<ChunkReaderLimits> } = {},
): RawMessage[] {
  const reader = new ChunkReader(options.limits);
  if (options.chunkSize) reader.setChunkSize(options.chunkSize);
  const out: RawMessage[] = [];
  for (const piece of pieces) {
    reader.push(piece, (m) => {
      out.push({ ...m, payload: Buffer.from(m.payload) });
      if (m.type === MessageType.SetChunkSize) {
        const msg = decodeMessage(m);
        if (msg.kind === 'set-chunk-size') reader.setChunkSize(msg.size);
      } else if (m.type === MessageType.Abort) {
        const msg = decodeMessage(m);
        if (msg.kind === 'abort') reader.abort(msg.csid);
      }
    });
  }
  return out;
}
