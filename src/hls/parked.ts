/**
 * Requests the origin holds until the packager has what they ask for: blocking playlist reloads
 * (`_HLS_msn` / `_HLS_part`) and requests for the part the preload hint names. Every hold is bounded: a cap
 * per stream and overall (a request over either is answered at once), a longest wait, the client going
 * away, the stream ending (its packager says so through `update`) and close() (the origin shutting down).
 * Nothing is polled: each packager's `update` event re-checks its own waiters, and the listener is removed
 * when the last one leaves (gohlslib's `sync.Cond` + `Close()` → `Broadcast()`, with bounds added).
 */
import type { Packager } from './packager.ts';

export type ParkOutcome =
  /** What was waited for is there (or the stream ended: the caller looks again). */
  | 'ready'
  /** The longest wait passed. */
  | 'timeout'
  /** Too many requests are held already, for this stream or overall. */
  | 'full'
  /** The origin is closing. */
  | 'closed'
  /** The client went away first. */
  | 'aborted';

export interface ParkLimits {
  /** Most requests held for one stream. */
  maxPerStream: number;
  /** Most requests held overall. */
  maxTotal: number;
}

export const DEFAULT_PARK_LIMITS: ParkLimits = { maxPerStream: 500, maxTotal: 5000 };

/** What a parked request watches for its client going away (a ServerResponse). */
export interface Closable {
  once(event: 'close', listener: () => void): unknown;
  off(event: 'close', listener: () => void): unknown;
}

interface Waiter {
  ready: () => boolean;
  settle: (outcome: ParkOutcome) => void;
}

export class ParkedRequests {
  readonly #limits: ParkLimits;
  readonly #byPackager = new Map<Packager, { waiters: Set<Waiter>; onUpdate: () => void }>();
  #size = 0;
  #closed = false;

  constructor(limits: Partial<ParkLimits> = {}) {
    this.#limits = { ...DEFAULT_PARK_LIMITS, ...limits };
  }

  /** Requests held now. */
  get size(): number {
    return this.#size;
  }

  /** Requests held now for one stream. */
  sizeFor(packager: Packager): number {
    return this.#byPackager.get(packager)?.waiters.size ?? 0;
  }

  /**
   * Holds until `ready()` is true (checked at once and on every packager update) or the stream ends, at most
   * `timeoutMs`; `client` going away ends the wait too.
   */
  park(packager: Packager, ready: () => boolean, timeoutMs: number, client?: Closable): Promise<ParkOutcome> {
    if (this.#closed) return Promise.resolve('closed');
    const check = (): boolean => packager.ended || ready();
    if (check()) return Promise.resolve('ready');
    let entry = this.#byPackager.get(packager);
    if (this.#size >= this.#limits.maxTotal || (entry?.waiters.size ?? 0) >= this.#limits.maxPerStream) {
      return Promise.resolve('full');
    }
    if (!entry) {
      const waiters = new Set<Waiter>();
      const onUpdate = (): void => {
        for (const w of [...waiters]) if (packager.ended || w.ready()) w.settle('ready');
      };
      entry = { waiters, onUpdate };
      this.#byPackager.set(packager, entry);
      packager.on('update', onUpdate);
    }
    const { waiters } = entry;
    return new Promise<ParkOutcome>((resolve) => {
      const onClose = (): void => waiter.settle('aborted');
      const timer = setTimeout(() => waiter.settle('timeout'), timeoutMs);
      const waiter: Waiter = {
        ready,
        settle: (outcome) => {
          if (!waiters.delete(waiter)) return;
          this.#size--;
          clearTimeout(timer);
          client?.off('close', onClose);
          if (waiters.size === 0) this.#forget(packager);
          resolve(outcome);
        },
      };
      waiters.add(waiter);
      this.#size++;
      client?.once('close', onClose);
    });
  }

  /** Releases every held request ('closed') and takes no more. Idempotent. */
  close(): void {
    this.#closed = true;
    for (const { waiters } of [...this.#byPackager.values()]) {
      for (const w of [...waiters]) w.settle('closed');
    }
  }

  #forget(packager: Packager): void {
    const entry = this.#byPackager.get(packager);
    if (!entry) return;
    packager.off('update', entry.onUpdate);
    this.#byPackager.delete(packager);
  }
}
