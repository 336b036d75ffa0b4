/**
 * The relay's streams by key and by HLS path. Every ingest hands its publishes over as media sources
 * (`addSource`, or `attach` to a server's `publish` events: a hook that returns its undo): a publish attaches
 * to the stream of its key, created on first use, whatever protocol it came by; a stream stays registered
 * through `reconnecting` and after `ended` until its end grace is over, so the URL keeps answering.
 */
import { hlsUserPath } from '../contracts/names.ts';
import type { PublishAuthRequest } from '../contracts/publish.ts';
import type { MediaSource } from '../media/source.ts';
import type { ChildReaper } from '../pipeline/child-reaper.ts';
import type { RelayConfig } from '../shared/config.ts';
import type { Logger } from '../shared/logger.ts';
import { TypedEmitter } from '../shared/typed-emitter.ts';
import { SlateCache } from './slate-cache.ts';
import { CLEAN_PROFILES, type CleanProfile, Stream, type StreamOptions } from './stream.ts';

export type StreamRegistryEvents = {
  created: [Stream];
  ready: [Stream];
  ended: [Stream];
};

/** What `attach` needs of an ingest server. */
export interface SourceServer {
  on(event: 'publish', listener: (source: MediaSource) => void): unknown;
  off(event: 'publish', listener: (source: MediaSource) => void): unknown;
}

export interface StreamRegistryOptions {
  hls: RelayConfig['hls'];
  stream: RelayConfig['stream'];
  log: Logger;
  reaper: ChildReaper;
  /** The H.264 encoder and GPU sessions for transcodes (relay start probes them). */
  encoder?: StreamOptions['encoder'];
  /** Opus → AAC for transcoding WHIP streams (see StreamOptions). */
  aacEncoder?: StreamOptions['aacEncoder'];
}

export class StreamRegistry extends TypedEmitter<StreamRegistryEvents> {
  readonly #options: StreamRegistryOptions;
  readonly #log: Logger;
  readonly #byKey = new Map<string, Stream>();
  readonly #byPath = new Map<string, Stream>();
  /** The slates every stream shares (SLATE=on); null when off. */
  readonly slates: SlateCache | null;

  constructor(options: StreamRegistryOptions) {
    super();
    this.#options = options;
    this.#log = options.log.child({ component: 'streams' });
    const slate = options.stream.slate;
    this.slates = slate
      ? new SlateCache({
          log: options.log,
          reaper: options.reaper,
          ffmpegPath: options.stream.ffmpegPath,
          image: slate.image,
        })
      : null;
  }

  get streams(): Stream[] {
    return [...this.#byKey.values()];
  }

  /** The stream served at /hls/{userPath}/{streamId}/, live, reconnecting or recently ended. */
  byHlsPath(userPath: string, streamId: string): Stream | undefined {
    return this.#byPath.get(`${userPath}/${streamId}`);
  }

  /**
   * Checked before Publish.Start: refuses an unknown `profile` parameter, and a key whose HLS path another
   * live or reconnecting stream holds (`a@b` and `a-b` share `a-b`). Returns the reason, or null.
   */
  checkPublish(request: PublishAuthRequest): string | null {
    const profile = request.params.profile;
    if (profile !== undefined && !CLEAN_PROFILES.includes(profile as CleanProfile)) {
      return `unknown profile "${profile.slice(0, 32)}" (use ${CLEAN_PROFILES.join(', ')})`;
    }
    const holder = this.#byPath.get(`${hlsUserPath(request.userId)}/${request.streamId}`);
    if (holder && holder.key !== request.key && holder.state !== 'ended') {
      return 'another stream is using this HLS path';
    }
    return null;
  }

  /** Follows an ingest's publishes (any emitter of `publish: [MediaSource]`); returns the undo. */
  attach(server: SourceServer): () => void {
    const onPublish = (source: MediaSource): void => this.addSource(source);
    server.on('publish', onPublish);
    return () => server.off('publish', onPublish);
  }

  /** An authorized publish went live: it feeds the stream of its key (created on first use). */
  addSource(source: MediaSource): void {
    const { key, userId, streamId, params } = source.info;
    let stream = this.#byKey.get(key);
    if (stream && stream.state === 'ended') {
      // The old incarnation is over; a new one gets a new playlist (and new segment names).
      stream.free();
      stream = undefined;
    }
    if (!stream) {
      const profile = (params.profile as CleanProfile | undefined) ?? this.#options.stream.profile;
      stream = new Stream({
        key,
        userId,
        streamId,
        profile,
        segmentSeconds: this.#options.hls.segmentSeconds,
        listSize: this.#options.hls.listSize,
        lowLatency: this.#options.hls.lowLatency,
        partSeconds: this.#options.hls.partSeconds,
        copyMaxSegmentSeconds: this.#options.hls.copyMaxSegmentSeconds,
        reconnectWindowMs: this.#options.stream.reconnectWindowMs,
        unpublishGraceMs: this.#options.stream.unpublishGraceMs,
        endGraceMs: this.#options.hls.endGraceMs,
        watchdogMs: this.#options.stream.watchdogMs,
        backoffMs: this.#options.stream.backoffMs,
        ffmpegPath: this.#options.stream.ffmpegPath,
        ...(this.#options.encoder ? { encoder: this.#options.encoder } : {}),
        ...(this.#options.aacEncoder ? { aacEncoder: this.#options.aacEncoder } : {}),
        ...(this.slates && this.#options.stream.slate
          ? { slate: { cache: this.slates, afterMs: this.#options.stream.slate.afterMs } }
          : {}),
        log: this.#log,
        reaper: this.#options.reaper,
      });
      this.#register(stream);
    }
    stream.attach(source);
  }

  #register(stream: Stream): void {
    const path = `${hlsUserPath(stream.userId)}/${stream.streamId}`;
    this.#byKey.set(stream.key, stream);
    this.#byPath.set(path, stream);
    stream.once('ready', () => this.safeEmit('ready', stream));
    stream.once('ended', () => this.safeEmit('ended', stream));
    stream.once('@freed', () => {
      if (this.#byKey.get(stream.key) === stream) this.#byKey.delete(stream.key);
      if (this.#byPath.get(path) === stream) this.#byPath.delete(path);
    });
    this.safeEmit('created', stream);
  }

  /** Ends every stream (ENDLIST, no FFmpeg left) and frees them. */
  async close(): Promise<void> {
    const streams = this.streams;
    await Promise.all(streams.map((s) => s.close()));
    for (const s of streams) s.free();
    this.slates?.close();
  }
}
