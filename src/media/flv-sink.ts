/**
 * Writes one publish as an FLV byte stream into a Writable (FFmpeg's stdin, a file) without ever letting a
 * slow consumer make the relay buffer without bound (style rule 8): past `maxBufferedBytes` unread, media
 * tags are dropped and counted until the consumer drains below half of that and a video keyframe arrives,
 * so what it gets next decodes. Configuration tags are never dropped. The publisher never waits.
 */
import type { Writable } from 'node:stream';
import type { Logger } from '../shared/logger.ts';
import { FlvTagType, type MediaTag } from './flv-tag.ts';
import { flvHeader, flvTag } from './flv-writer.ts';

export interface FlvStart {
  hasAudio: boolean;
  hasVideo: boolean;
  /** onMetaData script tag body (`@setDataFrame` already stripped). */
  metadataTag: Buffer | null;
  videoConfig: MediaTag | null;
  audioConfig: MediaTag | null;
}

export interface FlvSinkStats {
  tagsWritten: number;
  bytesWritten: number;
  tagsDropped: number;
}

export const DEFAULT_SINK_BUFFER_BYTES = 8 * 1024 * 1024;
const WARN_INTERVAL_MS = 5000;

export class FlvSink {
  readonly stats: FlvSinkStats = { tagsWritten: 0, bytesWritten: 0, tagsDropped: 0 };
  readonly #out: Writable;
  readonly #maxBuffered: number;
  readonly #log: Logger | undefined;
  #hasVideo = true;
  #dropping = false;
  #lastWarn = 0;
  #droppedSinceWarn = 0;

  constructor(out: Writable, options: { maxBufferedBytes?: number; log?: Logger } = {}) {
    this.#out = out;
    this.#maxBuffered = options.maxBufferedBytes ?? DEFAULT_SINK_BUFFER_BYTES;
    this.#log = options.log;
  }

  /** Writes the header, the first metadata and the codec configuration. */
  start(start: FlvStart): void {
    this.#hasVideo = start.hasVideo;
    this.#put(flvHeader({ hasAudio: start.hasAudio, hasVideo: start.hasVideo }));
    if (start.metadataTag) this.#put(flvTag(FlvTagType.Script, 0, start.metadataTag));
    if (start.videoConfig)
      this.#put(flvTag(FlvTagType.Video, start.videoConfig.timestamp, start.videoConfig.data));
    if (start.audioConfig)
      this.#put(flvTag(FlvTagType.Audio, start.audioConfig.timestamp, start.audioConfig.data));
  }

  write(tag: MediaTag): void {
    if (this.#out.destroyed || this.#out.writableEnded) return;
    const buffered = this.#out.writableLength;
    if (!tag.isConfig) {
      if (!this.#dropping && buffered > this.#maxBuffered) this.#dropping = true;
      if (this.#dropping) {
        const resumes =
          buffered <= this.#maxBuffered / 2 &&
          (!this.#hasVideo || (tag.type === FlvTagType.Video && tag.keyframe));
        if (!resumes) return this.#drop();
        this.#dropping = false;
      }
    }
    this.#put(flvTag(tag.type, tag.timestamp, tag.data));
  }

  end(): void {
    if (!this.#out.destroyed && !this.#out.writableEnded) this.#out.end();
  }

  #put(bytes: Buffer): void {
    this.#out.write(bytes);
    this.stats.tagsWritten++;
    this.stats.bytesWritten += bytes.length;
  }

  #drop(): void {
    this.stats.tagsDropped++;
    this.#droppedSinceWarn++;
    const now = Date.now();
    if (now - this.#lastWarn >= WARN_INTERVAL_MS) {
      this.#log?.warn(
        { dropped: this.#droppedSinceWarn, total: this.stats.tagsDropped },
        'FLV consumer too slow, dropping tags',
      );
      this.#lastWarn = now;
      this.#droppedSinceWarn = 0;
    }
  }
}
