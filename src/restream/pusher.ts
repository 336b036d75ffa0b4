/**
 * One re-streaming destination: an in-process RTMP publisher (../rtmp/client.ts) kept alive with its own
 * retries and backoff, fed the stream's tags without ever slowing the caller.
 *
 *   idle ──start()──▶ connecting ──Publish.Start──▶ active
 *                        ▲   │ failed                 │ failed, or stalled
 *                        │   ▼                        ▼
 *                        └── retrying (backoff) ◀─────┘
 *   invalid: a destination that can never work (bad URL, over the cap); it never connects
 *   every state ──close()──▶ stopped
 *
 * What the destination gets, per connection: metadata and the sequence headers at timestamp 0, then media
 * from the next video keyframe on, rebased so the connection starts at 0 (ingests dislike a stream that
 * starts minutes in). A new start() while live (the publisher reconnected upstream) resends what changed of
 * the configuration, waits for a keyframe again and keeps timestamps monotonic.
 *
 * Back-pressure (style rule 8): the queue is the publisher's socket buffer, bounded at a few seconds of the
 * stream's own rate (at most `maxQueueBytes`). Past it, media is dropped and counted until the buffer is
 * back under half and a keyframe comes, so what the destination gets next decodes; sequence headers and
 * metadata are never dropped. A destination that stays backed up for `stallTimeoutMs` is dropped and
 * reconnected. tag() never waits and never throws.
 *
 * Reported status (the `outputs[]` of managed_stream_status): `active` while publishing, `error` from the
 * first failure until the next Publish.Start (with the error's message), `stopped` once closed; none before
 * the first attempt has an outcome.
 */
import { createHash } from 'node:crypto';
import { FlvTagType, type MediaTag } from '../media/flv-tag.ts';
import {
  type PublisherClosed,
  RtmpPublisher,
  type RtmpPublisherEvents,
  type RtmpPublisherOptions,
} from '../rtmp/client.ts';
import { parseRtmpUrl, type RtmpUrl, redactRtmpUrl } from '../rtmp/client-url.ts';
import { type ErrorCode, ErrorCodes, RelayError } from '../shared/errors.ts';
import type { Logger } from '../shared/logger.ts';
import { TypedEmitter } from '../shared/typed-emitter.ts';

export const PusherState = {
  Idle: 'idle',
  Connecting: 'connecting',
  Active: 'active',
  Retrying: 'retrying',
  Invalid: 'invalid',
  Stopped: 'stopped',
} as const;
export type PusherStateName = (typeof PusherState)[keyof typeof PusherState];

const TRANSITIONS: Record<PusherStateName, readonly PusherStateName[]> = {
  idle: ['connecting', 'stopped'],
  connecting: ['active', 'retrying', 'stopped'],
  active: ['retrying', 'stopped'],
  retrying: ['connecting', 'stopped'],
  invalid: ['stopped'],
  stopped: [],
};

/** The wire status of an output (contracts/mentra.ts `outputs[].status`). */
export type OutputStatus = 'active' | 'error' | 'stopped';

export interface PusherStatus {
  /** Stable and key-free: a hash of the destination URL, for matching statuses to destinations. */
  id: string;
  /** The destination URL with its stream key redacted. */
  url: string;
  name?: string;
  state: PusherStateName;
  /** What apps see; null until the first connection attempt has an outcome. */
  status: OutputStatus | null;
  /** The last failure, while `status` is `error`. */
  error?: string;
  errorCode?: ErrorCode;
  /** Bytes written to the destination, over every connection. */
  bytesSent: number;
  /** Media tags dropped because the destination was too slow. */
  dropped: number;
  /** Connection attempts after the first. */
  reconnects: number;
}

/** What the pusher needs of a publish's start (a PublishStart or FlvStart satisfies it). */
export interface RestreamStart {
  /** onMetaData body (`@setDataFrame` stripped), or null. */
  metadataTag: Buffer | null;
  videoConfig: MediaTag | null;
  audioConfig: MediaTag | null;
  /** When false, media starts with any tag instead of waiting for a video keyframe. */
  hasVideo: boolean;
}

/** The part of RtmpPublisher a pusher uses (style rule 9: fakes in tests implement just this). */
export interface PublisherLike {
  readonly writableLength: number;
  start(): void;
  send(tag: MediaTag, timestamp?: number): number;
  close(): void;
  destroy(): void;
  on<K extends keyof RtmpPublisherEvents & string>(
    event: K,
    listener: (...args: RtmpPublisherEvents[K]) => void,
  ): unknown;
}

export type CreatePublisher = (options: RtmpPublisherOptions) => PublisherLike;

/** Publisher settings a pusher passes through (every timer configurable from outside). */
export type PusherPublisherOptions = Pick<
  RtmpPublisherOptions,
  'ca' | 'connectTimeoutMs' | 'handshakeTimeoutMs' | 'publishTimeoutMs' | 'chunkSize'
>;

export interface RestreamPusherTuning {
  /** Pauses before successive retries; the last repeats (default 1, 2, 5, 10, 30 s). */
  backoffMs?: readonly number[];
  /** Hard cap on bytes queued for the destination (default 4 MiB). */
  maxQueueBytes?: number;
  /** Queue bound in seconds of the stream's own rate, within [256 KiB, maxQueueBytes] (default 5). */
  maxQueueSeconds?: number;
  /** A destination backed up this long without recovering is reconnected (default 30 s). */
  stallTimeoutMs?: number;
  /** A connection that lasted this long resets the backoff to its first step (default 30 s). */
  stableAfterMs?: number;
  publisher?: PusherPublisherOptions;
}

export interface RestreamPusherOptions extends RestreamPusherTuning {
  destination: { url: string; name?: string | undefined };
  log: Logger;
  /** Builds the publisher (default: a real RtmpPublisher). */
  createPublisher?: CreatePublisher;
  /** Makes the pusher `invalid` with this error from the start: it never connects. */
  refused?: RelayError;
  /** Clock in ms (tests). */
  now?: () => number;
}

export const DEFAULT_BACKOFF_MS: readonly number[] = [1000, 2000, 5000, 10_000, 30_000];
export const DEFAULT_MAX_QUEUE_BYTES = 4 * 1024 * 1024;
export const DEFAULT_MAX_QUEUE_SECONDS = 5;
export const DEFAULT_STALL_TIMEOUT_MS = 30_000;
export const DEFAULT_STABLE_AFTER_MS = 30_000;
const MIN_QUEUE_BYTES = 256 * 1024;
/** After an upstream reconnect, a step forward larger than this is closed up (as is any step back). */
const RESYNC_MAX_GAP_MS = 5000;
const WARN_INTERVAL_MS = 5000;

/** A destination's stable, key-free id. */
export function destinationId(url: string): string {
  return createHash('sha256').update(url).digest('hex').slice(0, 12);
}

const defaultCreatePublisher: CreatePublisher = (options) => new RtmpPublisher(options);

/** Index of a tag type in per-track arrays. */
function track(type: number): 0 | 1 | 2 {
  return type === FlvTagType.Video ? 0 : type === FlvTagType.Audio ? 1 : 2;
}

export class RestreamPusher extends TypedEmitter<{ status: [PusherStatus] }> {
  readonly id: string;
  /** Redacted URL. */
  readonly url: string;
  readonly #rawUrl: string;
  readonly #parsed: RtmpUrl | null;
  readonly #log: Logger;
  readonly #options: RestreamPusherOptions;
  readonly #backoff: readonly number[];
  readonly #maxQueue: number;
  readonly #now: () => number;
  #name: string | undefined;
  #state: PusherStateName = PusherState.Idle;
  #wire: OutputStatus | null = null;
  #error: RelayError | null = null;
  #publisher: PublisherLike | null = null;
  #retryTimer: NodeJS.Timeout | null = null;
  #failures = 0;
  #attempts = 0;
  #activeSince = 0;
  #config: RestreamStart | null = null;
  #bytesSent = 0;
  #dropped = 0;
  #lastReported = '';
  #lastWarn = Number.NEGATIVE_INFINITY;
  #droppedSinceWarn = 0;
  // Per connection:
  #sent: { metadata: Buffer | null; video: Buffer | null; audio: Buffer | null } = {
    metadata: null,
    video: null,
    audio: null,
  };
  #awaitKeyframe = true;
  #offset: number | null = null;
  readonly #lastOut = [0, 0, 0];
  #lastMax = 0;
  #resync = false;
  #dropping = false;
  #backedUpSince = 0;
  #offeredBytes = 0;
  #firstTs: number | null = null;
  #lastTs = 0;

  constructor(options: RestreamPusherOptions) {
    super();
    this.#options = options;
    this.#rawUrl = options.destination.url;
    this.#name = options.destination.name;
    this.id = destinationId(this.#rawUrl);
    this.url = redactRtmpUrl(this.#rawUrl);
    this.#log = options.log.child({ component: 'restream', destination: this.url, id: this.id });
    this.#backoff = options.backoffMs?.length ? options.backoffMs : DEFAULT_BACKOFF_MS;
    this.#maxQueue = options.maxQueueBytes ?? DEFAULT_MAX_QUEUE_BYTES;
    this.#now = options.now ?? Date.now;
    const parsed = parseRtmpUrl(this.#rawUrl);
    this.#parsed = parsed.ok ? parsed.url : null;
    const refusal =
      options.refused ??
      (parsed.ok
        ? null
        : new RelayError(ErrorCodes.RTMP_CLIENT_URL_INVALID, `invalid URL: ${parsed.reason}`));
    if (refusal) {
      this.#error = refusal;
      this.#state = PusherState.Invalid;
      this.#wire = 'error';
      this.#log.warn({ code: refusal.code }, `destination refused: ${refusal.message}`);
    }
  }

  protected override onListenerError(event: string, err: unknown): void {
    this.#log.error({ err, event }, 'a restream pusher listener threw');
  }

  get state(): PusherStateName {
    return this.#state;
  }

  get name(): string | undefined {
    return this.#name;
  }

  /** Renames the destination (same URL, new label); reported with the next status. */
  set name(name: string | undefined) {
    this.#name = name;
  }

  status(): PusherStatus {
    const s: PusherStatus = {
      id: this.id,
      url: this.url,
      state: this.#state,
      status: this.#wire,
      bytesSent: this.#bytesSent,
      dropped: this.#dropped,
      reconnects: Math.max(0, this.#attempts - 1),
    };
    if (this.#name !== undefined) s.name = this.#name;
    if (this.#wire === 'error' && this.#error) {
      s.error = this.#error.message;
      s.errorCode = this.#error.code;
    }
    return s;
  }

  /**
   * The stream's configuration: at the first call the pusher connects; while live (a publisher reconnect
   * upstream) what changed is resent and media waits for the next keyframe.
   */
  start(config: RestreamStart): void {
    if (this.#state === PusherState.Stopped || this.#state === PusherState.Invalid) return;
    this.#config = config;
    if (this.#state === PusherState.Idle) {
      this.#connect();
      return;
    }
    if (this.#state === PusherState.Active) {
      const at = this.#lastMax;
      if (config.metadataTag) this.#sendConfig(FlvTagType.Script, config.metadataTag, at);
      if (config.videoConfig) this.#sendConfig(FlvTagType.Video, config.videoConfig.data, at);
      if (config.audioConfig) this.#sendConfig(FlvTagType.Audio, config.audioConfig.data, at);
      this.#awaitKeyframe = config.hasVideo;
      this.#resync = true;
    }
  }

  /** One tag of the stream. Never blocks and never throws; does nothing unless publishing. */
  tag(tag: MediaTag): void {
    const publisher = this.#publisher;
    if (this.#state !== PusherState.Active || publisher === null) return;
    if (tag.isConfig) {
      this.#onConfigTag(tag);
      return;
    }
    const hasVideo = this.#config?.hasVideo ?? true;
    const videoKeyframe = tag.type === FlvTagType.Video && tag.keyframe;
    if (this.#awaitKeyframe) {
      if (hasVideo && !videoKeyframe) return;
      this.#awaitKeyframe = false;
    }
    this.#offeredBytes += tag.data.length;
    this.#firstTs ??= tag.timestamp;
    if (tag.timestamp > this.#lastTs) this.#lastTs = tag.timestamp;

    const queued = publisher.writableLength;
    const limit = this.#queueLimit();
    if (!this.#dropping && queued > limit) {
      this.#dropping = true;
      this.#backedUpSince = this.#now();
    }
    if (this.#dropping) {
      const stallMs = this.#options.stallTimeoutMs ?? DEFAULT_STALL_TIMEOUT_MS;
      if (this.#now() - this.#backedUpSince >= stallMs) {
        this.#restart(
          new RelayError(
            ErrorCodes.RESTREAM_DESTINATION_STALLED,
            `the destination stayed backed up for ${stallMs} ms (${queued} bytes unsent); reconnecting`,
          ),
        );
        return;
      }
      if (queued > limit / 2 || (hasVideo && !videoKeyframe)) {
        this.#drop();
        return;
      }
      this.#dropping = false;
    }
    this.#bytesSent += publisher.send(tag, this.#timestamp(tag));
  }

  /** Stops for good: unpublishes, releases the retry timer, reports `stopped`. Idempotent. */
  close(): void {
    if (this.#state === PusherState.Stopped) return;
    if (this.#retryTimer) clearTimeout(this.#retryTimer);
    this.#retryTimer = null;
    const publisher = this.#publisher;
    this.#publisher = null;
    publisher?.close();
    this.#to(PusherState.Stopped);
    this.#log.info({ bytesSent: this.#bytesSent, dropped: this.#dropped }, 'restream stopped');
    this.#report();
  }

  // ------------------------------------------------------------------------------------------ lifecycle

  #to(state: PusherStateName): void {
    if (!TRANSITIONS[this.#state].includes(state)) {
      throw new Error(`restream pusher: ${this.#state} → ${state} is not a transition`);
    }
    this.#state = state;
    if (state === PusherState.Active) this.#wire = 'active';
    else if (state === PusherState.Retrying) this.#wire = 'error';
    else if (state === PusherState.Stopped) this.#wire = 'stopped';
  }

  /** Emits `status` when what apps see changed (status or error). */
  #report(): void {
    const s = this.status();
    if (s.status === null) return;
    const key = `${s.status}\u0000${s.error ?? ''}\u0000${s.name ?? ''}`;
    if (key === this.#lastReported) return;
    this.#lastReported = key;
    this.safeEmit('status', s);
  }

  /** Reports the current status again if the name changed (called by the manager after a rename). */
  refresh(): void {
    this.#report();
  }

  #connect(): void {
    this.#to(PusherState.Connecting);
    this.#attempts++;
    const create = this.#options.createPublisher ?? defaultCreatePublisher;
    let publisher: PublisherLike;
    try {
      publisher = create({ url: this.#parsed!, log: this.#log, ...this.#options.publisher });
    } catch (err) {
      const error =
        err instanceof RelayError
          ? err
          : new RelayError(
              ErrorCodes.RTMP_CLIENT_CONNECT_FAILED,
              `cannot create the publisher: ${String(err)}`,
            );
      this.#retry(error);
      return;
    }
    this.#publisher = publisher;
    publisher.on('started', () => this.#onStarted(publisher));
    publisher.on('closed', (closed) => this.#onClosed(publisher, closed));
    publisher.start();
  }

  #onStarted(publisher: PublisherLike): void {
    if (publisher !== this.#publisher || this.#state !== PusherState.Connecting) return;
    this.#to(PusherState.Active);
    this.#error = null;
    this.#activeSince = this.#now();
    this.#offset = null;
    this.#lastOut.fill(0);
    this.#lastMax = 0;
    this.#resync = false;
    this.#dropping = false;
    this.#offeredBytes = 0;
    this.#firstTs = null;
    this.#lastTs = 0;
    this.#sent = { metadata: null, video: null, audio: null };
    const config = this.#config;
    if (config?.metadataTag) this.#sendConfig(FlvTagType.Script, config.metadataTag, 0);
    if (config?.videoConfig) this.#sendConfig(FlvTagType.Video, config.videoConfig.data, 0);
    if (config?.audioConfig) this.#sendConfig(FlvTagType.Audio, config.audioConfig.data, 0);
    this.#awaitKeyframe = config?.hasVideo ?? true;
    this.#log.info({ reconnects: Math.max(0, this.#attempts - 1) }, 'restream active');
    this.#report();
  }

  #onClosed(publisher: PublisherLike, closed: PublisherClosed): void {
    if (publisher !== this.#publisher) return; // replaced or stopped: nothing to do
    this.#publisher = null;
    if (this.#state !== PusherState.Connecting && this.#state !== PusherState.Active) return;
    const error =
      closed.error ?? new RelayError(ErrorCodes.RTMP_CLIENT_DISCONNECTED, `the publisher ${closed.reason}`);
    this.#retry(error);
  }

  /** Drops the current connection (stalled) and retries. */
  #restart(error: RelayError): void {
    const publisher = this.#publisher;
    this.#publisher = null;
    publisher?.destroy();
    this.#retry(error);
  }

  #retry(error: RelayError): void {
    if (this.#state === PusherState.Active && this.#now() - this.#activeSince >= this.#stableAfter()) {
      this.#failures = 0; // it worked for a while: start the backoff over
    }
    this.#to(PusherState.Retrying);
    this.#error = error;
    const delay = this.#backoff[Math.min(this.#failures, this.#backoff.length - 1)]!;
    this.#failures++;
    this.#log.warn(
      { code: error.code, retryInMs: delay, failures: this.#failures },
      `restream failed: ${error.message}`,
    );
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = null;
      if (this.#state === PusherState.Retrying) this.#connect();
    }, delay);
    this.#report();
  }

  #stableAfter(): number {
    return this.#options.stableAfterMs ?? DEFAULT_STABLE_AFTER_MS;
  }

  // -------------------------------------------------------------------------------------------- sending

  /** Sends a configuration tag unless the destination already has these exact bytes. */
  #sendConfig(
    type: typeof FlvTagType.Script | typeof FlvTagType.Video | typeof FlvTagType.Audio,
    data: Buffer,
    at: number,
  ): void {
    const slot = type === FlvTagType.Script ? 'metadata' : type === FlvTagType.Video ? 'video' : 'audio';
    const previous = this.#sent[slot];
    if (previous?.equals(data)) return;
    this.#sent[slot] = data;
    const tag: MediaTag = { type, timestamp: at, data, keyframe: type !== FlvTagType.Video, isConfig: true };
    this.#bytesSent += this.#publisher?.send(tag, at) ?? 0;
  }

  /** A configuration change mid-stream: forwarded at once, never dropped. */
  #onConfigTag(tag: MediaTag): void {
    if (tag.type !== FlvTagType.Video && tag.type !== FlvTagType.Audio && tag.type !== FlvTagType.Script)
      return;
    const config = this.#config;
    if (config) {
      if (tag.type === FlvTagType.Video) this.#config = { ...config, videoConfig: tag };
      else if (tag.type === FlvTagType.Audio) this.#config = { ...config, audioConfig: tag };
      else this.#config = { ...config, metadataTag: tag.data };
    }
    this.#sendConfig(tag.type, tag.data, this.#lastMax);
  }

  /** The tag's timestamp on this connection: rebased to start at 0, monotonic per track. */
  #timestamp(tag: MediaTag): number {
    const ts = tag.timestamp;
    this.#offset ??= ts;
    let out = ts - this.#offset;
    if (this.#resync) {
      this.#resync = false;
      if (out < this.#lastMax || out > this.#lastMax + RESYNC_MAX_GAP_MS) {
        this.#offset = ts - (this.#lastMax + 1);
        out = this.#lastMax + 1;
      }
    }
    const t = track(tag.type);
    if (out < this.#lastOut[t]!) out = this.#lastOut[t]!;
    this.#lastOut[t] = out;
    if (out > this.#lastMax) this.#lastMax = out;
    return out;
  }

  /** Bytes the destination may have waiting: a few seconds of the stream's own rate, within bounds. */
  #queueLimit(): number {
    const spanMs = this.#firstTs === null ? 0 : this.#lastTs - this.#firstTs;
    if (spanMs < 1000) return this.#maxQueue;
    const seconds = this.#options.maxQueueSeconds ?? DEFAULT_MAX_QUEUE_SECONDS;
    const bySeconds = (this.#offeredBytes / spanMs) * 1000 * seconds;
    return Math.min(this.#maxQueue, Math.max(MIN_QUEUE_BYTES, bySeconds));
  }

  #drop(): void {
    this.#dropped++;
    this.#droppedSinceWarn++;
    const now = this.#now();
    if (now - this.#lastWarn >= WARN_INTERVAL_MS) {
      this.#log.warn(
        { dropped: this.#droppedSinceWarn, total: this.#dropped },
        'destination too slow, dropping media until it catches up',
      );
      this.#lastWarn = now;
      this.#droppedSinceWarn = 0;
    }
  }
}
