/**
 * An RTMP publish as a media source (media/source.ts): the publish's FLV tags go through the FLV demuxer,
 * so the stream gets codec configurations and access units like it does from any other ingest. The
 * publish's own events stay as they are for RTMP-level consumers (tests, the FLV dev recorder).
 */
import type { EndReason, PublishInfo } from '../contracts/publish.ts';
import type { SourceStart } from '../media/access-unit.ts';
import { FlvDemuxer } from '../media/flv-demux.ts';
import type { MediaTag } from '../media/flv-tag.ts';
import type { MediaSource, SourceEvents } from '../media/source.ts';
import { TypedEmitter } from '../shared/typed-emitter.ts';
import type { Publish, PublishStart } from './publish.ts';

export class RtmpSource extends TypedEmitter<SourceEvents> implements MediaSource {
  readonly publish: Publish;
  readonly #demux = new FlvDemuxer();
  #started: SourceStart | null = null;

  constructor(publish: Publish) {
    super();
    this.publish = publish;
    publish.on('start', (start) => this.#onStart(start));
    publish.on('tag', (tag) => this.#onTag(tag));
    publish.once('end', (reason) => this.safeEmit('end', reason));
    if (publish.started) this.#onStart(publish.started);
  }

  get info(): PublishInfo {
    return { ...this.publish.info, protocol: 'rtmp' };
  }

  get started(): SourceStart | null {
    return this.#started;
  }

  get ended(): EndReason | null {
    return this.publish.ended;
  }

  /** Ends the publish with NetStream.Publish.Failed and `reason` (see MediaSource.refuse). */
  refuse(reason: string): void {
    this.publish.refuse(reason);
  }

  /** Tags the demuxer could not read (counted, not fatal). */
  get skipped(): number {
    return this.#demux.skipped;
  }

  #onStart(start: PublishStart): void {
    if (this.#started) return;
    if (start.videoConfig) this.#demux.push(start.videoConfig);
    if (start.audioConfig) this.#demux.push(start.audioConfig);
    this.#started = {
      video: this.#demux.video,
      audio: this.#demux.audio,
      hasVideo: start.hasVideo,
      hasAudio: start.hasAudio,
      metadata: start.metadata as Record<string, unknown> | null,
      metadataAmf0: start.metadataTag,
    };
    this.safeEmit('start', this.#started);
  }

  #onTag(tag: MediaTag): void {
    const out = this.#demux.push(tag);
    if (!out) return;
    // After the start, a configuration is a change (or, for an opaque codec, the first frame naming it).
    if (out.config && this.#started) this.safeEmit('config', out.config);
    if (out.au) this.safeEmit('au', out.au);
  }
}
