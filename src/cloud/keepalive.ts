/**
 * The glasses keep-alive of one managed stream, as a pure tracker (the caller owns the timer and the
 * socket): every KEEPALIVE_SECONDS the cloud sends `keep_rtmp_stream_alive {streamId, ackId}` with the id
 * from `next(now)`, feeds each `keep_alive_ack` to `ack(ackId, now)`, and calls `tick(now)` to learn how many
 * ACKs were missed in a row and whether that ends the stream (MAX_MISSED_ACKS, 3).
 *
 * An id is missed once its ACK timeout passes without an ACK, but it stays pending (the last `window` ids
 * do), so a late ACK still counts: it proves the glasses are alive, resets the count, and retires that id
 * and every older one. Once ended, the tracker stays ended. Ids are 6 characters of base64url from the
 * system CSPRNG (36 bits: unguessable for their lifetime; short because they travel over Bluetooth).
 */
import { randomBytes } from 'node:crypto';
import { ErrorCodes, RelayError } from '../shared/errors.ts';

export const ACK_ID_LENGTH = 6;

export interface KeepAliveOptions {
  /** How long each ACK may take before its id counts as missed (ACK_TIMEOUT_SECONDS × 1000). */
  ackTimeoutMs: number;
  /** Missed ACKs in a row that end the stream (MAX_MISSED_ACKS). Default 3. */
  maxMissed?: number;
  /** How many ids stay pending for a late ACK (the oldest is dropped, counted as missed). Default maxMissed. */
  window?: number;
  /** Id source (tests); default: 6 base64url characters from crypto.randomBytes. */
  newId?: () => string;
}

export interface KeepAliveTick {
  /** ACKs missed in a row. */
  missed: number;
  /** True once `missed` reached maxMissed: end the stream. */
  ended: boolean;
}

interface Pending {
  deadline: number;
  /** Its miss was counted (it may still be acked late). */
  missed: boolean;
}

/** A tracker as data (JSON), so a stream's keep-alive survives in the shared store across cloud replicas. */
export interface KeepAliveSnapshot {
  pending: [string, Pending][];
  missed: number;
  ended: boolean;
}

export function newAckId(): string {
  return randomBytes(ACK_ID_LENGTH).toString('base64url').slice(0, ACK_ID_LENGTH);
}

export class KeepAliveTracker {
  readonly #ackTimeoutMs: number;
  readonly #maxMissed: number;
  readonly #window: number;
  readonly #newId: () => string;
  /** Pending ids, oldest first (a Map keeps insertion order). */
  readonly #pending = new Map<string, Pending>();
  #missed = 0;
  #ended = false;

  constructor(options: KeepAliveOptions) {
    const { ackTimeoutMs, maxMissed = 3 } = options;
    const window = options.window ?? maxMissed;
    const bad = [
      Number.isFinite(ackTimeoutMs) && ackTimeoutMs > 0 ? null : `ackTimeoutMs ${ackTimeoutMs}`,
      Number.isInteger(maxMissed) && maxMissed > 0 ? null : `maxMissed ${maxMissed}`,
      Number.isInteger(window) && window > 0 ? null : `window ${window}`,
    ].filter((b) => b !== null);
    if (bad.length > 0)
      throw new RelayError(ErrorCodes.CONFIG_INVALID, `keep-alive: invalid ${bad.join(', ')}`);
    this.#ackTimeoutMs = ackTimeoutMs;
    this.#maxMissed = maxMissed;
    this.#window = window;
    this.#newId = options.newId ?? newAckId;
  }

  /** The tracker as data (`restore` takes it back). */
  snapshot(): KeepAliveSnapshot {
    return {
      pending: [...this.#pending].map(([id, p]) => [id, { ...p }]),
      missed: this.#missed,
      ended: this.#ended,
    };
  }

  /** A tracker with these options and a snapshot's state. */
  static restore(options: KeepAliveOptions, snapshot: KeepAliveSnapshot): KeepAliveTracker {
    const tracker = new KeepAliveTracker(options);
    for (const [id, p] of snapshot.pending) tracker.#pending.set(id, { ...p });
    tracker.#missed = snapshot.missed;
    tracker.#ended = snapshot.ended;
    return tracker;
  }

  /** ACKs missed in a row. */
  get missed(): number {
    return this.#missed;
  }

  get ended(): boolean {
    return this.#ended;
  }

  /** Ids still accepted by `ack`, oldest first. */
  get pending(): string[] {
    return [...this.#pending.keys()];
  }

  /** A fresh id to send now; its ACK is due by `now + ackTimeoutMs`. */
  next(now: number): string {
    let id = this.#newId();
    for (let tries = 0; this.#pending.has(id) && tries < 8; tries++) id = this.#newId();
    if (this.#pending.has(id)) {
      throw new RelayError(ErrorCodes.CONFIG_INVALID, 'keep-alive: the id source keeps repeating itself');
    }
    this.#pending.set(id, { deadline: now + this.#ackTimeoutMs, missed: false });
    while (this.#pending.size > this.#window) {
      const [oldest, entry] = this.#pending.entries().next().value as [string, Pending];
      this.#pending.delete(oldest);
      if (!entry.missed) this.#miss(); // dropped unanswered before its deadline: it can no longer be acked
    }
    return id;
  }

  /**
   * An ACK: true when `ackId` is pending (on time or late), which resets the missed count and retires it and
   * every older id; false for an unknown, retired or foreign id, or once ended.
   */
  ack(ackId: string, _now: number): boolean {
    if (this.#ended || !this.#pending.has(ackId)) return false;
    for (const id of this.#pending.keys()) {
      this.#pending.delete(id);
      if (id === ackId) break;
    }
    this.#missed = 0;
    return true;
  }

  /** Counts every id whose deadline passed (`now ≥ deadline`) unanswered, once each. */
  tick(now: number): KeepAliveTick {
    for (const entry of this.#pending.values()) {
      if (!entry.missed && now >= entry.deadline) {
        entry.missed = true;
        this.#miss();
      }
    }
    return { missed: this.#missed, ended: this.#ended };
  }

  #miss(): void {
    if (this.#ended) return;
    this.#missed++;
    if (this.#missed >= this.#maxMissed) this.#ended = true;
  }
}
