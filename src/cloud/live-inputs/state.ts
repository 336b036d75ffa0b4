/**
 * Where live inputs live: each input as one versioned record (what the API set: meta, recording options,
 * outputs, the relay it is placed on), and beside it what relays report about it (the publish's connection
 * and stats from heartbeats, the re-stream outputs' statuses), plus a short-lived note of inputs deleted
 * while live so their relay hears to end them. In memory for one process, in Redis (`state-redis.ts`) for
 * replicas and restarts. A save carries the version it read and is refused when another writer came first
 * (the caller reads again), so two replicas never overwrite each other's change. Relay reports are written
 * only while the input exists: a late heartbeat cannot bring a deleted input's keys back.
 */
import type { RelayStreamState, StreamStats } from '../../contracts/relay-api.ts';
import type { RestreamOutputRecord } from '../stream-state.ts';

export interface OutputRecord {
  uid: string;
  url: string;
  /** The destination's secret; never logged, answered masked. */
  streamKey: string;
  enabled: boolean;
}

export interface RecordingOptions {
  mode: 'off' | 'automatic';
  timeoutSeconds: number;
  requireSignedURLs: boolean;
  allowedOrigins: string[];
  hideLiveViewerCount: boolean;
}

export interface LiveInputRecord {
  /** Bumped by every save. */
  v: number;
  uid: string;
  /** meta.userId, else the configured default: whose stream this is (names the publish and HLS paths). */
  userId: string;
  /** ms. */
  created: number;
  modified: number;
  meta: Record<string, unknown>;
  enabled: boolean;
  defaultCreator?: string | undefined;
  deleteRecordingAfterDays: number | null;
  recording: RecordingOptions;
  /** The relay the input's ingest URLs point at; null when no relay had room. */
  relayId: string | null;
  /** ms: when it was placed there (the publish token is signed as of this moment, so it stays the same). */
  placedAt: number;
  outputs: OutputRecord[];
}

/** A relay's latest word about the input's publish. */
export interface ConnectionReport {
  relayId: string;
  state: RelayStreamState;
  /** ms, when the cloud heard it. */
  at: number;
  stats?: StreamStats | undefined;
}

/** The playback URLs a relay announced with hls-ready (DASH and WHEP, once relays serve them). */
export interface PlaybackReport {
  relayId: string;
  dashUrl?: string | undefined;
  webrtcUrl?: string | undefined;
}

export interface LiveInputReports {
  connection: ConnectionReport | null;
  outputs: RestreamOutputRecord[];
  playback?: PlaybackReport | null;
}

/** The account's opt-in webhook (Cloudflare's `/stream/webhook`): where events go and the signing secret. */
export interface WebhookConfig {
  notificationUrl: string;
  secret: string;
  /** ms. */
  modified: number;
}

export interface LiveInputStore {
  readonly shared: boolean;
  /** False when the uid is taken (the caller draws another). */
  create(record: LiveInputRecord): Promise<boolean>;
  get(uid: string): Promise<LiveInputRecord | null>;
  all(): Promise<LiveInputRecord[]>;
  count(): Promise<number>;
  /** Stores `record` if the stored version is `record.v`, as `v + 1`; false when stale or gone. */
  save(record: LiveInputRecord): Promise<boolean>;
  /**
   * Removes the input and its reports; when `endedOn` names a relay, remembers for `ttlMs` that the stream
   * `key` must end there. False when it did not exist.
   */
  remove(uid: string, ended?: { key: string; relayId: string; ttlMs: number }): Promise<boolean>;
  reports(uid: string): Promise<LiveInputReports>;
  /** Records a relay's report, only while the input exists. */
  setConnection(uid: string, report: ConnectionReport): Promise<void>;
  setOutputs(uid: string, outputs: RestreamOutputRecord[]): Promise<void>;
  setPlayback(uid: string, playback: PlaybackReport): Promise<void>;
  /** The relay a deleted live input's stream must end on, or null. */
  endedOn(key: string): Promise<string | null>;
  /** The relay ended it: nothing to remember. */
  forgetEnded(key: string): Promise<void>;
  webhook(): Promise<WebhookConfig | null>;
  /** Sets (or with null removes) the webhook. */
  setWebhook(config: WebhookConfig | null): Promise<void>;
  close(): Promise<void>;
}

const copy = <T>(value: T): T => structuredClone(value);

/** One process: plain maps; records are copied in and out. */
export class MemoryLiveInputStore implements LiveInputStore {
  readonly shared = false;
  readonly #inputs = new Map<string, LiveInputRecord>();
  readonly #reports = new Map<string, LiveInputReports>();
  readonly #ended = new Map<string, { relayId: string; until: number }>();
  #webhook: WebhookConfig | null = null;
  readonly #now: () => number;

  constructor(options: { now?: () => number } = {}) {
    this.#now = options.now ?? Date.now;
  }

  async create(record: LiveInputRecord): Promise<boolean> {
    if (this.#inputs.has(record.uid)) return false;
    this.#inputs.set(record.uid, copy(record));
    return true;
  }

  async get(uid: string): Promise<LiveInputRecord | null> {
    const r = this.#inputs.get(uid);
    return r ? copy(r) : null;
  }

  async all(): Promise<LiveInputRecord[]> {
    return [...this.#inputs.values()].map(copy);
  }

  async count(): Promise<number> {
    return this.#inputs.size;
  }

  async save(record: LiveInputRecord): Promise<boolean> {
    const current = this.#inputs.get(record.uid);
    if (!current || current.v !== record.v) return false;
    record.v++;
    this.#inputs.set(record.uid, copy(record));
    return true;
  }

  async remove(uid: string, ended?: { key: string; relayId: string; ttlMs: number }): Promise<boolean> {
    const existed = this.#inputs.delete(uid);
    this.#reports.delete(uid);
    if (existed && ended) {
      const now = this.#now();
      for (const [k, e] of this.#ended) if (e.until <= now) this.#ended.delete(k);
      this.#ended.set(ended.key, { relayId: ended.relayId, until: now + ended.ttlMs });
    }
    return existed;
  }

  async reports(uid: string): Promise<LiveInputReports> {
    return copy(this.#reports.get(uid) ?? { connection: null, outputs: [] });
  }

  async setConnection(uid: string, report: ConnectionReport): Promise<void> {
    if (!this.#inputs.has(uid)) return;
    const r = this.#reports.get(uid) ?? { connection: null, outputs: [] };
    this.#reports.set(uid, { ...r, connection: copy(report) });
  }

  async setOutputs(uid: string, outputs: RestreamOutputRecord[]): Promise<void> {
    if (!this.#inputs.has(uid)) return;
    const r = this.#reports.get(uid) ?? { connection: null, outputs: [] };
    this.#reports.set(uid, { ...r, outputs: copy(outputs) });
  }

  async setPlayback(uid: string, playback: PlaybackReport): Promise<void> {
    if (!this.#inputs.has(uid)) return;
    const r = this.#reports.get(uid) ?? { connection: null, outputs: [] };
    this.#reports.set(uid, { ...r, playback: copy(playback) });
  }

  async endedOn(key: string): Promise<string | null> {
    const e = this.#ended.get(key);
    return e && e.until > this.#now() ? e.relayId : null;
  }

  async forgetEnded(key: string): Promise<void> {
    this.#ended.delete(key);
  }

  async webhook(): Promise<WebhookConfig | null> {
    return this.#webhook ? copy(this.#webhook) : null;
  }

  async setWebhook(config: WebhookConfig | null): Promise<void> {
    this.#webhook = config ? copy(config) : null;
  }

  async close(): Promise<void> {
    this.#ended.clear();
  }
}
