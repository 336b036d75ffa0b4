/**
 * The cloud's store (architecture §3, §8): which relays are alive, what they carry, and where each stream
 * goes. Two implementations pass one test suite: `store-memory.ts` (one process, dev and tests) and
 * `store-redis.ts` (many cloud instances; every mutation is one Lua script, so nothing is read-modify-write).
 *
 * Semantics both implementations keep:
 * - A relay is live while `now - lastSeen < relayExpiryMs` (register and heartbeat set `lastSeen`). A relay
 *   not seen for `relayRetentionMs` is forgotten; its next heartbeat answers "unknown" and it registers again.
 * - Load of a relay = (streams it reported live in its last heartbeat + unexpired reservations the cloud made
 *   on it for streams it has not reported yet) / maxStreams. Counts are never blind increments: a heartbeat
 *   replaces the relay's stream set, and a reservation for a stream the relay now reports is consumed.
 * - `place` is atomic. Sticky first: a stream live on a live relay stays there (even while it drains, so a
 *   reconnect does not move a stream the relay still holds); a stream only reserved on a live relay keeps
 *   (and renews) its reservation unless that relay drains. Otherwise the least-loaded live, non-draining relay
 *   with room gets it (ties: lower cpu, then relayId), in the requested region when one there has room, else
 *   anywhere; the new reservation expires after `reservationTtlMs`. `null` when no relay has room.
 * - When two live relays report the same stream, the assignment stays with the first (a reservation elsewhere
 *   gives way to a live report, except a draining relay's: a stream reserved elsewhere is being moved off it). `release` drops a reservation and the assignment; a relay still reporting the
 *   stream claims it again at its next heartbeat.
 * - Expiry is by timestamps (`now` is injected, ms); `now` is expected not to go backwards.
 */
import type { RegisterRequest } from '../contracts/relay-api.ts';
import { ErrorCodes, RelayError } from '../shared/errors.ts';

/** A relay as the cloud sees it. */
export interface RelayRecord {
  relayId: string;
  rtmpUrl: string;
  hlsUrl: string;
  maxStreams: number;
  region?: string;
  /** Other ingest bases the relay announced (SRT, WHIP), when it serves them. */
  srtUrl?: string;
  whipUrl?: string;
  /** Process CPU the relay reported (tie-breaker). */
  cpu: number;
  draining: boolean;
  /** ms, the last register or heartbeat. */
  lastSeen: number;
  /** Live streams it reported in its last heartbeat. */
  streams: number;
  /** Unexpired reservations the cloud made on it for streams it has not reported yet. */
  reserved: number;
}

/** Where a stream goes. `reused`: it already had or had reserved this relay. */
export interface Placement {
  relayId: string;
  rtmpUrl: string;
  hlsUrl: string;
  reused: boolean;
}

/** What a heartbeat tells the store: the streams live on the relay (not ended), its cpu, whether it drains. */
export interface RelayReport {
  streams: readonly { userId: string; streamId: string }[];
  cpu: number;
  draining: boolean;
}

export interface PlaceOptions {
  now: number;
  region?: string | undefined;
  reservationTtlMs: number;
}

export interface CloudStore {
  /** Register (idempotent). Keeps what heartbeats reported; a new relay starts idle, cpu 0, not draining. */
  upsertRelay(relay: RegisterRequest, now: number): Promise<void>;
  /** Replaces the relay's stream set; `false` when the relay is unknown (it should register). */
  heartbeat(relayId: string, report: RelayReport, now: number): Promise<boolean>;
  /** Forgets the relay, its reservations and its assignments. */
  removeRelay(relayId: string): Promise<void>;
  /** Relays seen within `relayExpiryMs`, by relayId. */
  liveRelays(now: number): Promise<RelayRecord[]>;
  /** `streamKey` is `${userId}/${streamId}`. */
  place(streamKey: string, options: PlaceOptions): Promise<Placement | null>;
  /** Drops the stream's reservation and assignment. */
  release(streamKey: string): Promise<void>;
  /** The live relay that has or has reserved the stream, or null. */
  relayOf(streamKey: string, now?: number): Promise<string | null>;
  close(): Promise<void>;
}

export interface CloudStoreOptions {
  /** A relay not seen for this long gets nothing new and loses its streams' stickiness. Default 30 s. */
  relayExpiryMs?: number;
  /** A relay not seen for this long is forgotten. Default 5 min; at least `relayExpiryMs`. */
  relayRetentionMs?: number;
}

export const DEFAULT_RELAY_EXPIRY_MS = 30_000;
export const DEFAULT_RELAY_RETENTION_MS = 300_000;

export function resolveStoreOptions(options: CloudStoreOptions): Required<CloudStoreOptions> {
  const relayExpiryMs = options.relayExpiryMs ?? DEFAULT_RELAY_EXPIRY_MS;
  const relayRetentionMs = Math.max(options.relayRetentionMs ?? DEFAULT_RELAY_RETENTION_MS, relayExpiryMs);
  if (!Number.isFinite(relayExpiryMs) || relayExpiryMs <= 0) {
    throw new RelayError(ErrorCodes.CONFIG_INVALID, `relayExpiryMs must be > 0, got ${relayExpiryMs}`);
  }
  if (!Number.isFinite(relayRetentionMs)) {
    throw new RelayError(
      ErrorCodes.CONFIG_INVALID,
      `relayRetentionMs must be finite, got ${relayRetentionMs}`,
    );
  }
  return { relayExpiryMs, relayRetentionMs };
}

export function streamKeyOf(s: { userId: string; streamId: string }): string {
  return `${s.userId}/${s.streamId}`;
}

/**
 * The order among relays of equal load: cpu in millionths, zero-padded so that strings sort like numbers,
 * then relayId. Both stores compare `${cpuOrderKey(cpu)}|${relayId}`; Redis does it as the member of a sorted
 * set (equal scores sort by member).
 */
export function cpuOrderKey(cpu: number): string {
  const micro = Math.round(Math.min(Math.max(Number.isFinite(cpu) ? cpu : 0, 0), 1024) * 1e6);
  return String(micro).padStart(10, '0');
}
