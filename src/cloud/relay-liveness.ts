/**
 * Which relays are lost (their streams to be placed again). A relay is lost only when the store has not seen
 * it within the relay expiry AND this process has not heard from it either (`contact`: its register and
 * heartbeat calls, also those the store could not take). So a store that lost its data (Redis restarted
 * empty) or cannot answer moves nothing while the relays keep calling. Silence is counted only while this
 * process runs: when the check fires far too late, the process was not running (frozen, suspended,
 * starved), the relays' calls of that time were never heard, and for one expiry after that no relay is
 * declared lost. Pure bookkeeping over an injected monotonic clock; the caller owns the timer.
 */
import type { Logger } from '../shared/logger.ts';

/** Relays remembered (the oldest forgotten first). */
const MAX_HEARD_RELAYS = 10_000;

export interface RelayLivenessOptions {
  expiryMs: number;
  /** How often `tick` is called (the expected gap between two). */
  checkMs: number;
  monotonic: () => number;
  log: Logger;
}

export class RelayLiveness {
  readonly #o: RelayLivenessOptions;
  /** relayId → when this process last heard from it (monotonic ms), oldest first. */
  readonly #heard = new Map<string, number>();
  #lastTick: number;
  /** No relay is declared lost before this (monotonic ms). */
  #graceUntil = 0;

  constructor(options: RelayLivenessOptions) {
    this.#o = options;
    this.#lastTick = options.monotonic();
  }

  /** A relay called (register or heartbeat), whether or not the store knew it: it is alive. */
  contact(relayId: string): void {
    this.#heard.delete(relayId);
    this.#heard.set(relayId, this.#o.monotonic());
    if (this.#heard.size > MAX_HEARD_RELAYS) this.#heard.delete(this.#heard.keys().next().value!);
  }

  /** A relay deregistered: what was heard from it no longer keeps its streams. */
  gone(relayId: string): void {
    this.#heard.delete(relayId);
  }

  heardLately(relayId: string): boolean {
    const heard = this.#heard.get(relayId);
    return heard !== undefined && this.#o.monotonic() - heard < this.#o.expiryMs;
  }

  /**
   * A check is due: false while no relay may be declared lost (the process was not running lately), true
   * when the caller may judge relays now.
   */
  tick(): boolean {
    const at = this.#o.monotonic();
    const late = at - this.#lastTick - this.#o.checkMs;
    this.#lastTick = at;
    // Far too late (by more than half of what a relay's expiry leaves after one check period).
    if (late > Math.max(this.#o.checkMs, (this.#o.expiryMs - this.#o.checkMs) / 2)) {
      this.#graceUntil = at + this.#o.expiryMs;
      this.#o.log.warn(
        { pausedMs: Math.round(late), graceMs: this.#o.expiryMs },
        'the cloud was not running: no relay is declared lost until each had an expiry to be heard',
      );
    }
    if (at < this.#graceUntil) return false;
    if (this.#graceUntil !== 0) {
      this.#graceUntil = 0;
      this.#o.log.info('relay liveness checks resumed');
    }
    return true;
  }

  clear(): void {
    this.#heard.clear();
  }
}
