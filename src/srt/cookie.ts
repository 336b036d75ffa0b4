/**
 * SYN cookies for the SRT handshake (draft-sharabayko-srt §4.3.1.1, gosrt `net/syncookie.go`): the listener
 * answers an induction with a cookie derived from the caller's address and a minute counter, keeps no state,
 * and accepts a conclusion only when it echoes a cookie made for that address in this minute or the last.
 * A spoofed source never sees its cookie, so it cannot get past induction or make the listener allocate.
 */
import { createHmac, randomBytes } from 'node:crypto';

const BUCKET_MS = 60_000;

export class SynCookies {
  readonly #secret: Buffer;
  readonly #now: () => number;

  constructor(options: { secret?: Buffer; now?: () => number } = {}) {
    this.#secret = options.secret ?? randomBytes(32);
    this.#now = options.now ?? Date.now;
  }

  #cookie(address: string, port: number, bucket: number): number {
    return createHmac('sha256', this.#secret).update(`${address}|${port}|${bucket}`).digest().readUInt32BE(0);
  }

  /** The cookie for an induction from this address. */
  make(address: string, port: number): number {
    return this.#cookie(address, port, Math.floor(this.#now() / BUCKET_MS));
  }

  /** Whether a conclusion's cookie was made for this address in this minute or the previous one. */
  check(address: string, port: number, cookie: number): boolean {
    const bucket = Math.floor(this.#now() / BUCKET_MS);
    return (
      cookie === this.#cookie(address, port, bucket) || cookie === this.#cookie(address, port, bucket - 1)
    );
  }
}
