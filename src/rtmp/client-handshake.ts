/**
 * RTMP simple handshake (Adobe RTMP spec §5.2), client side, pure: the counterpart of ServerHandshake in
 * ./handshake.ts. Send C0+C1 (buildClientC0C1), feed what the server sends; once S0+S1+S2 are in, the reply
 * is C2 = S1 echoed (what FFmpeg and librtmp send) and any bytes past S2 already belong to the chunk stream.
 * Buffers at most S0+S1+S2 (3073 bytes). S2 is not checked against C1: servers that answer a plain C1 with
 * a digest-style S1/S2 (FMS, Wowza) are common and harmless to a publisher.
 */
import { ErrorCodes, RelayError } from '../shared/errors.ts';
import { HANDSHAKE_SIZE, RTMP_VERSION, RTMPE_VERSION } from './handshake.ts';

export type ClientHandshakeResult =
  | { done: false }
  /** `c2` must be written to the server; `rest` is the start of the chunk stream. */
  | { done: true; c2: Buffer; rest: Buffer };

const S0S1S2_SIZE = 1 + 2 * HANDSHAKE_SIZE;

export class ClientHandshake {
  #pending: Buffer[] = [];
  #pendingLength = 0;
  #done = false;

  get done(): boolean {
    return this.#done;
  }

  /** Feeds bytes from the server. Throws RTMP_HANDSHAKE_* when S0 names a version other than 3. */
  push(data: Buffer): ClientHandshakeResult {
    if (this.#done) return { done: true, c2: Buffer.alloc(0), rest: data };
    if (this.#pendingLength === 0 && data.length > 0) {
      const version = data[0]!;
      if (version === RTMPE_VERSION) {
        throw new RelayError(ErrorCodes.RTMP_HANDSHAKE_ENCRYPTED, 'the server answered with RTMPE (S0=6)');
      }
      if (version !== RTMP_VERSION) {
        throw new RelayError(ErrorCodes.RTMP_HANDSHAKE_VERSION, `the server answered with S0=${version}`);
      }
    }
    this.#pending.push(data);
    this.#pendingLength += data.length;
    if (this.#pendingLength < S0S1S2_SIZE) return { done: false };
    const all = this.#pending.length === 1 ? this.#pending[0]! : Buffer.concat(this.#pending);
    this.#pending = [];
    this.#pendingLength = 0;
    this.#done = true;
    const c2 = Buffer.from(all.subarray(1, 1 + HANDSHAKE_SIZE)); // S1 echoed
    return { done: true, c2, rest: all.subarray(S0S1S2_SIZE) };
  }
}
