/**
 * RTMP simple handshake (Adobe RTMP spec §5.2), server side, pure: bytes in, reply bytes out.
 * C0 must be 3 (6 is RTMPE: refused). S1 = time + four zero bytes + random, which both plain and
 * digest-style clients (ffmpeg's C1 advertises 9.0.124.2) accept from a publish-only server. C2 is read and
 * ignored: RootEncoder builds it from its own C1 rather than echoing S1.
 */
import { randomBytes } from 'node:crypto';
import { ErrorCodes, RelayError } from '../shared/errors.ts';

export const RTMP_VERSION = 3;
export const RTMPE_VERSION = 6;
export const HANDSHAKE_SIZE = 1536;

export type HandshakeResult =
  /** Keep feeding bytes. `reply` (S0+S1+S2), when present, must be written to the peer. */
  | { done: false; reply?: Buffer }
  /** The handshake is complete; `rest` holds bytes that already belong to the chunk stream. */
  | { done: true; reply?: Buffer; rest: Buffer };

/** Builds S0+S1+S2 for a C1. Exported for tests and for the client side used by benchmarks. */
export function buildServerReply(c1: Buffer, now = Date.now()): Buffer {
  const out = Buffer.allocUnsafe(1 + HANDSHAKE_SIZE * 2);
  out[0] = RTMP_VERSION;
  out.writeUInt32BE(Math.floor(now / 1000) >>> 0, 1);
  out.writeUInt32BE(0, 5); // zero "version": FFmpeg then skips server digest validation
  randomBytes(HANDSHAKE_SIZE - 8).copy(out, 9);
  c1.copy(out, 1 + HANDSHAKE_SIZE, 0, HANDSHAKE_SIZE); // S2 echoes C1
  return out;
}

/** Server-side handshake state. Buffers at most C0+C1 (1537 bytes), then C2 (1536 bytes). */
export class ServerHandshake {
  #stage: 'c0c1' | 'c2' | 'done' = 'c0c1';
  #pending: Buffer[] = [];
  #pendingLength = 0;

  get done(): boolean {
    return this.#stage === 'done';
  }

  /** Feeds bytes from the peer. Throws RTMP_HANDSHAKE_* on a version it will not speak. */
  push(data: Buffer): HandshakeResult {
    if (this.#stage === 'done') return { done: true, rest: data };
    if (this.#pendingLength === 0 && data.length > 0 && this.#stage === 'c0c1') this.#checkVersion(data[0]!);
    this.#pending.push(data);
    this.#pendingLength += data.length;

    let reply: Buffer | undefined;
    if (this.#stage === 'c0c1') {
      if (this.#pendingLength < 1 + HANDSHAKE_SIZE) return { done: false };
      const all = this.#take();
      reply = buildServerReply(all.subarray(1, 1 + HANDSHAKE_SIZE));
      this.#stage = 'c2';
      this.#put(all.subarray(1 + HANDSHAKE_SIZE));
    }
    if (this.#pendingLength < HANDSHAKE_SIZE) return reply ? { done: false, reply } : { done: false };
    const all = this.#take();
    this.#stage = 'done';
    const rest = all.subarray(HANDSHAKE_SIZE);
    return reply ? { done: true, reply, rest } : { done: true, rest };
  }

  #checkVersion(version: number): void {
    if (version === RTMPE_VERSION) {
      throw new RelayError(
        ErrorCodes.RTMP_HANDSHAKE_ENCRYPTED,
        'RTMPE (encrypted RTMP, C0=6) is not supported',
      );
    }
    if (version !== RTMP_VERSION) {
      throw new RelayError(ErrorCodes.RTMP_HANDSHAKE_VERSION, `unsupported RTMP version ${version} in C0`);
    }
  }

  #take(): Buffer {
    const all = this.#pending.length === 1 ? this.#pending[0]! : Buffer.concat(this.#pending);
    this.#pending = [];
    this.#pendingLength = 0;
    return all;
  }

  #put(rest: Buffer): void {
    if (rest.length === 0) return;
    this.#pending.push(rest);
    this.#pendingLength += rest.length;
  }
}

/** Client side, for test publishers and benchmarks: C0+C1 with a plain (zero-version) C1. */
export function buildClientC0C1(): Buffer {
  const out = Buffer.allocUnsafe(1 + HANDSHAKE_SIZE);
  out[0] = RTMP_VERSION;
  out.writeUInt32BE(0, 1);
  out.writeUInt32BE(0, 5);
  randomBytes(HANDSHAKE_SIZE - 8).copy(out, 9);
  return out;
}
