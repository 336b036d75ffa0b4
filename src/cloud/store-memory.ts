/**
 * The cloud store in one process (dev, tests, a single cloud instance): plain maps, every method one
 * synchronous critical section (nothing awaits between reading and writing), expiry by timestamps, no timers.
 * Semantics: `store.ts`.
 */
import type { RegisterRequest } from '../contracts/relay-api.ts';
import {
  type CloudStore,
  type CloudStoreOptions,
  cpuOrderKey,
  type Placement,
  type PlaceOptions,
  type RelayRecord,
  type RelayReport,
  resolveStoreOptions,
  streamKeyOf,
} from './store.ts';

interface RelayState {
  relay: RegisterRequest;
  cpu: number;
  draining: boolean;
  lastSeen: number;
  /** Stream keys the relay reported live in its last heartbeat. */
  streams: Set<string>;
  /** Stream keys the cloud reserved on it (expiry in `MemoryCloudStore.#reservations`). */
  reserved: Set<string>;
}

export class MemoryCloudStore implements CloudStore {
  readonly #expiryMs: number;
  readonly #retentionMs: number;
  readonly #relays = new Map<string, RelayState>();
  /** streamKey → the relay that has or reserved it. */
  readonly #assign = new Map<string, string>();
  /** streamKey → expiry (ms) of its pending reservation, on the relay `#assign` names. */
  readonly #reservations = new Map<string, number>();

  constructor(options: CloudStoreOptions = {}) {
    const resolved = resolveStoreOptions(options);
    this.#expiryMs = resolved.relayExpiryMs;
    this.#retentionMs = resolved.relayRetentionMs;
  }

  async upsertRelay(relay: RegisterRequest, now: number): Promise<void> {
    this.#expire(now);
    const { relayId, rtmpUrl, hlsUrl, maxStreams, region, srtUrl, whipUrl } = relay;
    const copy: RegisterRequest = {
      relayId,
      rtmpUrl,
      hlsUrl,
      maxStreams,
      ...(region ? { region } : {}),
      ...(srtUrl ? { srtUrl } : {}),
      ...(whipUrl ? { whipUrl } : {}),
    };
    const state = this.#relays.get(relayId);
    if (state) {
      state.relay = copy;
      state.lastSeen = now;
    } else {
      this.#relays.set(relayId, {
        relay: copy,
        cpu: 0,
        draining: false,
        lastSeen: now,
        streams: new Set(),
        reserved: new Set(),
      });
    }
    this.#forgetOld(now);
  }

  async heartbeat(relayId: string, report: RelayReport, now: number): Promise<boolean> {
    const state = this.#relays.get(relayId);
    if (!state) return false;
    if (state.lastSeen <= now - this.#retentionMs) {
      this.#remove(relayId);
      return false;
    }
    this.#expire(now);
    const reported = new Set(report.streams.map(streamKeyOf));
    for (const key of state.streams) {
      if (!reported.has(key) && this.#assign.get(key) === relayId && !state.reserved.has(key)) {
        this.#assign.delete(key);
      }
    }
    for (const key of reported) {
      const owner = this.#assign.get(key);
      if (owner === undefined) {
        this.#assign.set(key, relayId);
      } else if (owner === relayId) {
        if (state.reserved.delete(key)) this.#reservations.delete(key);
      } else {
        const other = this.#relays.get(owner);
        // A draining relay's report never takes a stream reserved elsewhere: it is being moved off it.
        if (!report.draining && other?.reserved.delete(key)) {
          // A live report wins over a reservation elsewhere.
          this.#reservations.delete(key);
          this.#assign.set(key, relayId);
        } else if (!other || !this.#alive(other, now)) {
          this.#assign.set(key, relayId);
        }
        // else: live on another live relay too; the assignment stays with the first.
      }
    }
    state.streams = reported;
    state.cpu = report.cpu;
    state.draining = report.draining;
    state.lastSeen = now;
    this.#forgetOld(now);
    return true;
  }

  async removeRelay(relayId: string): Promise<void> {
    this.#remove(relayId);
  }

  async liveRelays(now: number): Promise<RelayRecord[]> {
    this.#expire(now);
    const out: RelayRecord[] = [];
    for (const state of this.#relays.values()) {
      if (this.#alive(state, now)) out.push(this.#record(state));
    }
    return out.sort((a, b) => (a.relayId < b.relayId ? -1 : a.relayId > b.relayId ? 1 : 0));
  }

  async place(streamKey: string, options: PlaceOptions): Promise<Placement | null> {
    const { now, reservationTtlMs } = options;
    this.#expire(now);
    const currentId = this.#assign.get(streamKey);
    if (currentId !== undefined) {
      const current = this.#relays.get(currentId);
      if (current && this.#alive(current, now)) {
        if (current.streams.has(streamKey)) return placement(current, true);
        if (!current.draining && current.reserved.has(streamKey)) {
          this.#reservations.set(streamKey, now + reservationTtlMs);
          return placement(current, true);
        }
      }
      if (current?.reserved.delete(streamKey)) this.#reservations.delete(streamKey);
      this.#assign.delete(streamKey);
    }
    const region = options.region || undefined;
    const chosen =
      (region !== undefined ? this.#leastLoaded(now, region) : undefined) ?? this.#leastLoaded(now);
    if (!chosen) return null;
    chosen.reserved.add(streamKey);
    this.#reservations.set(streamKey, now + reservationTtlMs);
    this.#assign.set(streamKey, chosen.relay.relayId);
    return placement(chosen, false);
  }

  async release(streamKey: string): Promise<void> {
    const relayId = this.#assign.get(streamKey);
    if (relayId === undefined) return;
    this.#relays.get(relayId)?.reserved.delete(streamKey);
    this.#reservations.delete(streamKey);
    this.#assign.delete(streamKey);
  }

  async relayOf(streamKey: string, now: number = Date.now()): Promise<string | null> {
    const relayId = this.#assign.get(streamKey);
    if (relayId === undefined) return null;
    const state = this.#relays.get(relayId);
    if (!state || !this.#alive(state, now)) return null;
    if (state.streams.has(streamKey)) return relayId;
    const expires = this.#reservations.get(streamKey);
    return expires !== undefined && expires > now ? relayId : null;
  }

  async close(): Promise<void> {
    this.#relays.clear();
    this.#assign.clear();
    this.#reservations.clear();
  }

  #alive(state: RelayState, now: number): boolean {
    return state.lastSeen > now - this.#expiryMs;
  }

  #load(state: RelayState): number {
    return (state.streams.size + state.reserved.size) / state.relay.maxStreams;
  }

  #leastLoaded(now: number, region?: string): RelayState | undefined {
    let best: RelayState | undefined;
    let bestLoad = 0;
    let bestOrder = '';
    for (const state of this.#relays.values()) {
      if (state.draining || !this.#alive(state, now)) continue;
      if (region !== undefined && state.relay.region !== region) continue;
      if (state.streams.size + state.reserved.size >= state.relay.maxStreams) continue;
      const load = this.#load(state);
      const order = `${cpuOrderKey(state.cpu)}|${state.relay.relayId}`;
      if (!best || load < bestLoad || (load === bestLoad && order < bestOrder)) {
        best = state;
        bestLoad = load;
        bestOrder = order;
      }
    }
    return best;
  }

  /** Drops expired reservations (and the assignments they made). */
  #expire(now: number): void {
    for (const [key, expires] of this.#reservations) {
      if (expires > now) continue;
      this.#reservations.delete(key);
      const relayId = this.#assign.get(key);
      const state = relayId === undefined ? undefined : this.#relays.get(relayId);
      state?.reserved.delete(key);
      if (!state?.streams.has(key)) this.#assign.delete(key);
    }
  }

  #forgetOld(now: number): void {
    for (const [relayId, state] of this.#relays) {
      if (state.lastSeen <= now - this.#retentionMs) this.#remove(relayId);
    }
  }

  #remove(relayId: string): void {
    const state = this.#relays.get(relayId);
    if (!state) return;
    for (const key of state.streams) if (this.#assign.get(key) === relayId) this.#assign.delete(key);
    for (const key of state.reserved) {
      this.#reservations.delete(key);
      if (this.#assign.get(key) === relayId) this.#assign.delete(key);
    }
    this.#relays.delete(relayId);
  }

  #record(state: RelayState): RelayRecord {
    return {
      ...state.relay,
      cpu: state.cpu,
      draining: state.draining,
      lastSeen: state.lastSeen,
      streams: state.streams.size,
      reserved: state.reserved.size,
    };
  }
}

function placement(state: RelayState, reused: boolean): Placement {
  return { relayId: state.relay.relayId, rtmpUrl: state.relay.rtmpUrl, hlsUrl: state.relay.hlsUrl, reused };
}
