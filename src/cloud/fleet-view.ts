/**
 * What the operator dashboard shows of the fleet beyond what the store keeps. The store answers placement
 * and so keeps counts (streams per relay, cpu, lastSeen); the dashboard also wants each stream's relay-side
 * state and stats, which only the heartbeats carry. This view keeps the latest heartbeat of each relay and
 * the HLS URL each stream announced with hls-ready, in memory, in the cloud instance that received them.
 *
 * Pure: no timers and no I/O; time comes from the injected clock. Entries older than the relay expiry are
 * dropped (on the next write, and never listed), a deregister removes the relay, and every map is capped so a
 * misbehaving relay cannot grow it: relays (the oldest heartbeat gives way), streams kept per heartbeat (the
 * rest are counted as omitted), and announced HLS URLs (the oldest announcement gives way).
 */
import { hlsUserPath } from '../contracts/names.ts';
import type { HeartbeatRequest, RelayStreamState, StreamStats } from '../contracts/relay-api.ts';

export interface FleetViewOptions {
  /** RELAY_EXPIRY_SECONDS in ms: a relay whose last heartbeat is this old is no longer shown. */
  expiryMs: number;
  maxRelays?: number;
  /** Streams kept from one heartbeat; the heartbeat contract allows far more than a screen can show. */
  maxStreamsPerRelay?: number;
  maxHlsUrls?: number;
  now?: () => number;
}

export const FLEET_VIEW_LIMITS = { relays: 1000, streamsPerRelay: 1000, hlsUrls: 10_000 } as const;

/** A relay as its last heartbeat described it. */
export interface FleetRelay {
  relayId: string;
  cpu: number;
  draining: boolean;
  /** ms, when the cloud received the heartbeat. */
  receivedAt: number;
  /** Streams the heartbeat listed (every state), kept or not. */
  reported: number;
  /** Streams of that heartbeat not kept (over `maxStreamsPerRelay`). */
  omitted: number;
}

/** One stream on one relay, as the relay's last heartbeat described it. */
export interface FleetStream {
  userId: string;
  streamId: string;
  relayId: string;
  state: RelayStreamState;
  /** Absent until the relay measures it (older relays never send it). */
  stats: StreamStats | null;
  /** From hls-ready on this relay, else derived from the relay's HLS base; null when neither is known. */
  hlsUrl: string | null;
  /** WHEP playback this relay announced in its hls-ready; null when it announced none. */
  webrtcUrl: string | null;
  receivedAt: number;
}

interface RelayEntry extends FleetRelay {
  streams: { userId: string; streamId: string; state: RelayStreamState; stats: StreamStats | null }[];
}

interface HlsEntry {
  relayId: string | undefined;
  hlsUrl: string;
  webrtcUrl: string | null;
}

/** The HLS URL shape of architecture §3: `{base}/hls/{userPath}/{streamId}/index.m3u8`. */
export function streamHlsUrl(relayHlsBase: string, userId: string, streamId: string): string {
  return `${relayHlsBase.replace(/\/+$/, '')}/hls/${hlsUserPath(userId)}/${streamId}/index.m3u8`;
}

/** When two relays report one stream (it is moving), the one that carries it now wins. */
const STATE_RANK: Record<RelayStreamState, number> = { publishing: 0, reconnecting: 1, ended: 2 };

const keyOf = (userId: string, streamId: string): string => `${userId}/${streamId}`;

export class FleetView {
  readonly #expiryMs: number;
  readonly #maxRelays: number;
  readonly #maxStreams: number;
  readonly #maxHls: number;
  readonly #now: () => number;
  /** In heartbeat order (a heartbeat re-inserts its relay), so the stalest entries come first. */
  readonly #relays = new Map<string, RelayEntry>();
  /** In announcement order, by `${userId}/${streamId}`. */
  readonly #hls = new Map<string, HlsEntry>();

  constructor(options: FleetViewOptions) {
    this.#expiryMs = options.expiryMs;
    this.#maxRelays = Math.max(1, options.maxRelays ?? FLEET_VIEW_LIMITS.relays);
    this.#maxStreams = Math.max(0, options.maxStreamsPerRelay ?? FLEET_VIEW_LIMITS.streamsPerRelay);
    this.#maxHls = Math.max(1, options.maxHlsUrls ?? FLEET_VIEW_LIMITS.hlsUrls);
    this.#now = options.now ?? Date.now;
  }

  /** A heartbeat the store accepted. Copies what it keeps; the request object is not held. */
  heartbeat(hb: HeartbeatRequest): void {
    const now = this.#now();
    this.#prune(now);
    this.#relays.delete(hb.relayId);
    while (this.#relays.size >= this.#maxRelays) this.#dropOldestRelay();
    const kept = hb.streams.slice(0, this.#maxStreams).map((s) => ({
      userId: s.userId,
      streamId: s.streamId,
      state: s.state,
      stats: s.stats ? { ...s.stats } : null,
    }));
    this.#relays.set(hb.relayId, {
      relayId: hb.relayId,
      cpu: hb.cpu,
      draining: hb.draining,
      receivedAt: now,
      reported: hb.streams.length,
      omitted: hb.streams.length - kept.length,
      streams: kept,
    });
  }

  /** hls-ready: the URL a relay serves the stream at (it may be a CDN's). */
  hlsReady(event: {
    userId: string;
    streamId: string;
    hlsUrl: string;
    relayId?: string | undefined;
    webrtcUrl?: string | undefined;
  }): void {
    const key = keyOf(event.userId, event.streamId);
    this.#hls.delete(key);
    while (this.#hls.size >= this.#maxHls) {
      const oldest = this.#hls.keys().next();
      if (oldest.done) break;
      this.#hls.delete(oldest.value);
    }
    this.#hls.set(key, { relayId: event.relayId, hlsUrl: event.hlsUrl, webrtcUrl: event.webrtcUrl ?? null });
  }

  /** The relay said goodbye: it and the URLs it announced go. */
  deregistered(relayId: string): void {
    this.#relays.delete(relayId);
    for (const [key, entry] of this.#hls) if (entry.relayId === relayId) this.#hls.delete(key);
  }

  /** Relays heard from within the expiry, by relayId. */
  relays(): FleetRelay[] {
    return this.#fresh().map(({ streams: _streams, ...relay }) => relay);
  }

  /**
   * One entry per stream of a fresh relay (a stream two relays report is listed once, from the relay that
   * carries it best, then the latest heartbeat), by userId then streamId. `hlsBaseOf` gives a relay's
   * announced HLS base, for streams whose hls-ready this instance did not see.
   */
  streams(hlsBaseOf: (relayId: string) => string | undefined = () => undefined): FleetStream[] {
    const best = new Map<string, FleetStream>();
    for (const relay of this.#fresh()) {
      for (const s of relay.streams) {
        const key = keyOf(s.userId, s.streamId);
        const seen = best.get(key);
        if (
          seen &&
          (STATE_RANK[seen.state] < STATE_RANK[s.state] ||
            (STATE_RANK[seen.state] === STATE_RANK[s.state] && seen.receivedAt >= relay.receivedAt))
        )
          continue;
        best.set(key, {
          userId: s.userId,
          streamId: s.streamId,
          relayId: relay.relayId,
          state: s.state,
          stats: s.stats ? { ...s.stats } : null,
          hlsUrl: this.#hlsUrlOf(s.userId, s.streamId, relay.relayId, hlsBaseOf),
          webrtcUrl: this.#webrtcUrlOf(s.userId, s.streamId, relay.relayId),
          receivedAt: relay.receivedAt,
        });
      }
    }
    return [...best.values()].sort((a, b) => compare(a.userId, b.userId) || compare(a.streamId, b.streamId));
  }

  #hlsUrlOf(
    userId: string,
    streamId: string,
    relayId: string,
    hlsBaseOf: (relayId: string) => string | undefined,
  ): string | null {
    const announced = this.#hls.get(keyOf(userId, streamId));
    // An announcement from another relay is the stream's previous home: derive the URL on this one instead.
    if (announced && (announced.relayId === undefined || announced.relayId === relayId))
      return announced.hlsUrl;
    const base = hlsBaseOf(relayId);
    return base ? streamHlsUrl(base, userId, streamId) : null;
  }

  /** Only what this relay announced: WHEP is not derived (a relay that serves none announces none). */
  #webrtcUrlOf(userId: string, streamId: string, relayId: string): string | null {
    const announced = this.#hls.get(keyOf(userId, streamId));
    return announced && announced.relayId === relayId ? announced.webrtcUrl : null;
  }

  #fresh(): RelayEntry[] {
    const now = this.#now();
    return [...this.#relays.values()]
      .filter((r) => now - r.receivedAt < this.#expiryMs)
      .sort((a, b) => compare(a.relayId, b.relayId));
  }

  /** Drops expired relays; heartbeat order makes them the first entries. */
  #prune(now: number): void {
    for (const relay of this.#relays.values()) {
      if (now - relay.receivedAt < this.#expiryMs) break;
      this.#relays.delete(relay.relayId);
    }
  }

  #dropOldestRelay(): void {
    const oldest = this.#relays.keys().next();
    if (!oldest.done) this.#relays.delete(oldest.value);
  }
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
