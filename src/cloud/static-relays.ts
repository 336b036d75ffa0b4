/**
 * The seed's static relay list (RTMP_RELAY_URLS, RTMP_RELAY_HLS_URLS) as a wrapper around the store's
 * placement: used only while no relay is registered. Each counts as relay `static-{host}-{port}` (the
 * RELAY_ID such a relay must run with for publish tokens), never expires, and takes streams least-used
 * first. Counts are this process's own (the seed had no shared state either).
 */
import type { CloudStore, Placement } from './store.ts';

export interface StaticRelay {
  relayId: string;
  rtmpUrl: string;
  hlsUrl: string;
}

export function staticRelayId(rtmpUrl: string): string {
  return `static-${rtmpUrl.replace(/^rtmps?:\/\//, '').replace(/[^A-Za-z0-9._-]/g, '-')}`.slice(0, 64);
}

export class StaticRelays {
  readonly #relays: (StaticRelay & { streams: number })[];
  readonly #store: CloudStore;

  constructor(store: CloudStore, list: readonly { rtmpUrl: string; hlsUrl: string }[]) {
    this.#store = store;
    this.#relays = list.map((r) => ({ ...r, relayId: staticRelayId(r.rtmpUrl), streams: 0 }));
  }

  get(relayId: string): StaticRelay | undefined {
    return this.#relays.find((r) => r.relayId === relayId);
  }

  /** The store's placement; a static relay only while no relay is registered at all. */
  async place(key: string, options: { now: number; reservationTtlMs: number }): Promise<Placement | null> {
    const placed = await this.#store.place(key, options);
    if (placed || this.#relays.length === 0 || (await this.#store.liveRelays(options.now)).length > 0)
      return placed;
    const fixed = this.#relays.reduce((a, b) => (b.streams < a.streams ? b : a));
    fixed.streams++;
    return { relayId: fixed.relayId, rtmpUrl: fixed.rtmpUrl, hlsUrl: fixed.hlsUrl, reused: false };
  }

  async release(key: string, relayId: string): Promise<void> {
    const fixed = this.#relays.find((r) => r.relayId === relayId);
    if (fixed) fixed.streams = Math.max(0, fixed.streams - 1);
    else await this.#store.release(key);
  }
}
