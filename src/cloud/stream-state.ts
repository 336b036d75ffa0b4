/**
 * Where managed streams live (issue 16): every stream as one record (its lifecycle state, viewers,
 * destinations, outputs, keep-alive), the user → stream index, the streams that ended lately (so their relay
 * hears to end them), and the glasses command waiting for a socket. In memory for one process (dev, tests),
 * in Redis (`stream-state-redis.ts`) for replicas and restarts: a cloud started on the same Redis finds every
 * stream as it was. A record carries a version; `save` refuses a stale one, so two replicas acting on one
 * stream never overwrite each other: the loser reloads and acts again.
 */
import type { CloudToGlasses } from '../contracts/mentra.ts';
import type { KeepAliveSnapshot } from './keepalive.ts';
import type { LifecycleState } from './lifecycle.ts';

export interface RestreamTarget {
  url: string;
  name?: string | undefined;
}

export interface RestreamOutputRecord {
  url: string;
  name?: string | undefined;
  status: 'active' | 'error' | 'stopped';
  error?: string | undefined;
}

/** One managed stream as data (JSON). */
export interface StreamRecord {
  /** Bumped by every save; a save of an older version is refused. */
  v: number;
  streamId: string;
  userId: string;
  sessionId: string;
  /** Packages of the apps watching. */
  viewers: string[];
  state: LifecycleState;
  keepAlive: KeepAliveSnapshot;
  /** An effect the store could not carry out, tried again at the next relay check. */
  retry: 'place' | 'start' | null;
  /** Since when (ms) no relay had room for the stream, while it waits for one. */
  placeFailedSince?: number | null;
  /** Re-streaming destinations per viewing app. */
  destinations: [string, RestreamTarget[]][];
  /** The relay's last report of those destinations (URLs redacted). */
  outputs: RestreamOutputRecord[];
  createdAt: number;
  /** The publish protocol of the URL the glasses were last handed (absent: RTMP, or an older record). */
  ingest?: 'rtmp' | 'srt' | 'whip';
  /** The glasses reported an error while handed SRT (UDP blocked): every later start uses RTMP. */
  srtFailed?: boolean;
  /**
   * The glasses answered about this stream (a status or an ACK). Keep-alives wait for it while the stream
   * initializes: sent before the start reached them (the start is held in the store first, the keep-alive is
   * not, and they may leave from different replicas), a keep-alive for a stream the glasses do not know makes
   * them stop (protocol) and the stream ends in error (seen under load in cloud-replicas).
   */
  glassesHeard?: boolean;
  /** The WHEP URL the relay announced in its hls-ready (apps get it while that relay serves the stream). */
  webrtc?: { relayId: string; url: string } | null;
  /** An app asked for a recording (`recording: {mode: 'automatic'}`). */
  recording?: 'automatic';
  /** Recordings the relays reported uploaded (id → replay URLs), for the status apps hear. */
  recordings?: RecordingRecord[];
}

/** A recording of the stream as apps hear it. */
export interface RecordingRecord {
  id: string;
  state: 'uploading' | 'ready';
  hlsUrl: string;
  mp4Url: string;
  thumbnailUrl?: string | null;
  durationSeconds?: number;
}

export interface StreamStateStore {
  /** True when the state outlives this process (Redis): a restart resumes, close() ends nothing. */
  readonly shared: boolean;
  get(streamId: string): Promise<StreamRecord | null>;
  byUser(userId: string): Promise<StreamRecord | null>;
  /** Stores a new stream unless the user has one: null when stored, else the user's existing stream. */
  create(record: StreamRecord): Promise<StreamRecord | null>;
  /** Stores `record` if the stored version is `record.v`, as version `v + 1`; false when stale or gone. */
  save(record: StreamRecord): Promise<boolean>;
  /**
   * Removes an ended stream (if the stored version is `record.v`) and remembers for `endedTtlMs` that it
   * ended on `relayId` (null: on no relay). False when stale or gone.
   */
  remove(record: StreamRecord, relayId: string | null, endedTtlMs: number): Promise<boolean>;
  /** The relay a stream ended on lately, or null. */
  endedOn(userId: string, streamId: string): Promise<string | null>;
  /** Every live stream. */
  all(): Promise<StreamRecord[]>;
  /** Keeps the latest start/stop for glasses that have no socket now (replaces an older one). */
  holdCommand(userId: string, message: CloudToGlasses, ttlMs: number): Promise<void>;
  /** Takes the command held for the user, if any. */
  takeCommand(userId: string): Promise<CloudToGlasses | null>;
  /**
   * False once, when the state was lost since the last call (Redis restarted empty); the store is marked
   * intact again, and the caller puts back what it knows with `restore`.
   */
  intact(): Promise<boolean>;
  /** Puts back streams the store lost (each only where none is stored now). */
  restore(records: readonly StreamRecord[]): Promise<number>;
  close(): Promise<void>;
}

const copy = <T>(value: T): T => structuredClone(value);

/** One process: plain maps; records are copied in and out, so callers never share one. */
export class MemoryStreamState implements StreamStateStore {
  readonly shared = false;
  readonly #byId = new Map<string, StreamRecord>();
  readonly #byUser = new Map<string, string>();
  readonly #ended = new Map<string, { relayId: string; until: number }>();
  readonly #commands = new Map<string, { message: CloudToGlasses; until: number }>();
  readonly #now: () => number;
  /** Ended streams remembered at most (the oldest forgotten first). */
  readonly #maxEnded: number;

  constructor(options: { now?: () => number; maxEnded?: number } = {}) {
    this.#now = options.now ?? Date.now;
    this.#maxEnded = options.maxEnded ?? 10_000;
  }

  async get(streamId: string): Promise<StreamRecord | null> {
    const r = this.#byId.get(streamId);
    return r ? copy(r) : null;
  }

  async byUser(userId: string): Promise<StreamRecord | null> {
    const id = this.#byUser.get(userId);
    return id ? this.get(id) : null;
  }

  async create(record: StreamRecord): Promise<StreamRecord | null> {
    const existing = await this.byUser(record.userId);
    if (existing) return existing;
    this.#byId.set(record.streamId, copy(record));
    this.#byUser.set(record.userId, record.streamId);
    return null;
  }

  async save(record: StreamRecord): Promise<boolean> {
    const current = this.#byId.get(record.streamId);
    if (!current || current.v !== record.v) return false;
    record.v++;
    this.#byId.set(record.streamId, copy(record));
    return true;
  }

  async remove(record: StreamRecord, relayId: string | null, endedTtlMs: number): Promise<boolean> {
    const current = this.#byId.get(record.streamId);
    if (!current || current.v !== record.v) return false;
    this.#byId.delete(record.streamId);
    if (this.#byUser.get(record.userId) === record.streamId) this.#byUser.delete(record.userId);
    if (relayId !== null) {
      const key = `${record.userId}/${record.streamId}`;
      this.#ended.delete(key);
      this.#ended.set(key, { relayId, until: this.#now() + endedTtlMs });
      const now = this.#now();
      for (const [k, e] of this.#ended) {
        if (this.#ended.size <= this.#maxEnded && e.until > now) break;
        this.#ended.delete(k); // oldest first: expired, or past the cap
      }
    }
    return true;
  }

  async endedOn(userId: string, streamId: string): Promise<string | null> {
    const e = this.#ended.get(`${userId}/${streamId}`);
    return e && e.until > this.#now() ? e.relayId : null;
  }

  async all(): Promise<StreamRecord[]> {
    return [...this.#byId.values()].map(copy);
  }

  async holdCommand(userId: string, message: CloudToGlasses, ttlMs: number): Promise<void> {
    this.#commands.delete(userId);
    this.#commands.set(userId, { message: copy(message), until: this.#now() + ttlMs });
    const now = this.#now();
    for (const [u, c] of this.#commands) {
      if (c.until > now) break;
      this.#commands.delete(u);
    }
  }

  async takeCommand(userId: string): Promise<CloudToGlasses | null> {
    const c = this.#commands.get(userId);
    this.#commands.delete(userId);
    return c && c.until > this.#now() ? c.message : null;
  }

  async intact(): Promise<boolean> {
    return true; // memory is lost only with the process, and the process with it
  }

  async restore(): Promise<number> {
    return 0;
  }

  async close(): Promise<void> {
    this.#commands.clear();
  }
}
