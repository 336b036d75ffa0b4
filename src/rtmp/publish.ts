/**
 * What one accepted publish yields: typed events `start` (metadata and codec configuration), `tag` (each
 * audio/video tag with its timestamp, plus later configuration changes) and `end` (with a reason).
 *
 * `start` waits for the first coded frame, so a consumer gets the metadata and both sequence headers that
 * publishers send first (rtmp.md, step 5) in one event. Only the first metadata is kept, with
 * `@setDataFrame` stripped: FFmpeg 5.1 turns repeated metadata into a stray data stream. Enhanced RTMP
 * video and audio are recognised and refused (Debian's FFmpeg 5.1 cannot read them).
 */

import {
  ENHANCED_VIDEO_FOURCC,
  FlvTagType,
  type MediaTag,
  parseAudioTag,
  parseVideoTag,
} from '../media/flv-tag.ts';
import type { Amf0Object, Amf0Value } from './amf0.ts';

export type { MediaTag };

import type { EndReason, PublishInfo } from '../contracts/publish.ts';
import { ErrorCodes, RelayError } from '../shared/errors.ts';
import { TypedEmitter } from '../shared/typed-emitter.ts';
import type { PublishTarget } from './stream-key.ts';

export type { EndReason, EndReasonKind, PublishInfo } from '../contracts/publish.ts';

export interface PublishStart {
  /** The decoded onMetaData object, or null when the publisher sent none before its first frame. */
  metadata: Amf0Object | null;
  /** The onMetaData script tag body, `@setDataFrame` stripped, ready for an FLV script tag. */
  metadataTag: Buffer | null;
  videoConfig: MediaTag | null;
  audioConfig: MediaTag | null;
  hasVideo: boolean;
  hasAudio: boolean;
}

export interface PublishStats {
  videoFrames: number;
  audioFrames: number;
  keyframes: number;
  mediaBytes: number;
  /** Metadata messages after the first, not forwarded. */
  droppedMetadata: number;
  /** Empty or unreadable media messages skipped. */
  skippedTags: number;
}

export type PublishEvents = {
  start: [PublishStart];
  tag: [MediaTag];
  end: [EndReason];
  /** Private to the connection: what took the publish asks it to end it with NetStream.Publish.Failed. */
  '@refuse': [string];
};

const SET_DATA_FRAME = '@setDataFrame';

export class Publish extends TypedEmitter<PublishEvents> {
  readonly info: PublishInfo;
  readonly stats: PublishStats = {
    videoFrames: 0,
    audioFrames: 0,
    keyframes: 0,
    mediaBytes: 0,
    droppedMetadata: 0,
    skippedTags: 0,
  };
  #started: PublishStart | null = null;
  #metadata: Amf0Object | null = null;
  #metadataTag: Buffer | null = null;
  #metadataSeen = false;
  #videoConfig: MediaTag | null = null;
  #audioConfig: MediaTag | null = null;
  #ended: EndReason | null = null;

  constructor(id: number, target: PublishTarget, remoteAddress: string, now = Date.now()) {
    super();
    this.info = {
      id,
      key: target.key,
      userId: target.userId,
      streamId: target.streamId,
      params: target.params,
      remoteAddress,
      startedAt: now,
    };
  }

  get started(): PublishStart | null {
    return this.#started;
  }

  get ended(): EndReason | null {
    return this.#ended;
  }

  /**
   * A data message on the publish stream. `values` are the decoded AMF0 values, `body` their bytes.
   * Keeps the first onMetaData only.
   */
  pushData(values: Amf0Value[], body: Buffer, timestamp: number): void {
    if (this.#ended) return;
    let first = values[0];
    let tagBody = body;
    if (first === SET_DATA_FRAME) {
      // Strip the leading AMF0 string: marker (1) + length (2) + "@setDataFrame".
      tagBody = body.subarray(3 + Buffer.byteLength(SET_DATA_FRAME));
      values = values.slice(1);
      first = values[0];
    }
    if (first !== 'onMetaData') return;
    if (this.#metadataSeen) {
      this.stats.droppedMetadata++;
      return;
    }
    this.#metadataSeen = true;
    const meta = values[1];
    this.#metadata =
      meta !== null && typeof meta === 'object' && !Array.isArray(meta) && !(meta instanceof Date)
        ? meta
        : null;
    this.#metadataTag = Buffer.from(tagBody);
    if (this.#started) {
      this.safeEmit('tag', {
        type: FlvTagType.Script,
        timestamp,
        data: this.#metadataTag,
        keyframe: false,
        isConfig: true,
      });
    }
  }

  /** An audio or video message. Throws RTMP_UNSUPPORTED_CODEC for Enhanced RTMP media. */
  pushMedia(type: typeof FlvTagType.Audio | typeof FlvTagType.Video, timestamp: number, data: Buffer): void {
    if (this.#ended) return;
    let tag: MediaTag;
    if (type === FlvTagType.Video) {
      const info = parseVideoTag(data);
      if (info === null || info.isCommand) {
        this.stats.skippedTags++;
        return;
      }
      if (info.enhanced) {
        const name = ENHANCED_VIDEO_FOURCC[info.codec as string] ?? `FourCC ${JSON.stringify(info.codec)}`;
        throw new RelayError(
          ErrorCodes.RTMP_UNSUPPORTED_CODEC,
          `Enhanced RTMP video (${name}) is not supported: this relay's FFmpeg cannot read it; publish H.264`,
        );
      }
      tag = { type, timestamp, data, keyframe: info.keyframe, isConfig: info.isConfig };
      if (info.isConfig) this.#videoConfig = tag;
      else {
        this.stats.videoFrames++;
        if (info.keyframe) this.stats.keyframes++;
      }
    } else {
      const info = parseAudioTag(data);
      if (info === null) {
        this.stats.skippedTags++;
        return;
      }
      if (info.enhanced) {
        throw new RelayError(
          ErrorCodes.RTMP_UNSUPPORTED_CODEC,
          `Enhanced RTMP audio (FourCC ${JSON.stringify(info.codec)}) is not supported; publish AAC`,
        );
      }
      tag = { type, timestamp, data, keyframe: true, isConfig: info.isConfig };
      if (info.isConfig) this.#audioConfig = tag;
      else this.stats.audioFrames++;
    }
    this.stats.mediaBytes += data.length;

    if (!this.#started) {
      if (tag.isConfig) return; // held until the first frame, delivered in `start`
      this.#start();
    }
    // After start, configuration changes are forwarded in order with the frames.
    this.safeEmit('tag', tag);
  }

  /**
   * The relay cannot use what this publish sends (issue 15: a codec FFmpeg cannot decode): the connection
   * tells the publisher `NetStream.Publish.Failed` with `reason` and closes, which ends the publish.
   */
  refuse(reason: string): void {
    if (this.#ended) return;
    this.safeEmit('@refuse', reason);
  }

  /** Ends the publish once; later calls are ignored. */
  end(reason: EndReason): void {
    if (this.#ended) return;
    this.#ended = reason;
    this.safeEmit('end', reason);
  }

  #start(): void {
    const meta = this.#metadata;
    const metaSays = (codecKey: string, flagKey: string): boolean =>
      meta !== null && ((meta[codecKey] !== undefined && meta[codecKey] !== null) || meta[flagKey] === true);
    this.#started = {
      metadata: meta,
      metadataTag: this.#metadataTag,
      videoConfig: this.#videoConfig,
      audioConfig: this.#audioConfig,
      hasVideo:
        this.#videoConfig !== null || this.stats.videoFrames > 0 || metaSays('videocodecid', 'hasVideo'),
      hasAudio:
        this.#audioConfig !== null || this.stats.audioFrames > 0 || metaSays('audiocodecid', 'hasAudio'),
    };
    this.safeEmit('start', this.#started);
  }
}
