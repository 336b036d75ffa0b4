/**
 * One authorized SRT publish as a MediaSource (media/source.ts): the MPEG-TS bytes the connection delivers
 * go through the demuxer, and the source decides when the publish starts. `start` waits until every track
 * the PMT declares has its configuration and video has its first keyframe (a TS stream can be joined
 * anywhere, unlike RTMP; and a muxer may complete its first audio PES well after the first keyframe), holding
 * frames meanwhile in a bounded queue; video before its first keyframe is counted, not emitted. Knows nothing of sockets: the connection feeds it and ends it.
 */
import type { EndReason, PublishInfo } from '../contracts/publish.ts';
import type { AccessUnit, SourceStart } from '../media/access-unit.ts';
import { Interleaver } from '../media/interleaver.ts';
import { type DemuxStats, MpegTsDemuxer } from '../media/mpegts-demux.ts';
import type { MediaSource, SourceCounters, SourceEvents, TransportStats } from '../media/source.ts';
import { TypedEmitter } from '../shared/typed-emitter.ts';
import type { SrtConnectionStats } from './conn.ts';

/** Frames held until every track's configuration is known (about 10 s of AAC at 48 kHz); past it the
 * publish starts with what it has. */
const MAX_PENDING = 512;

export interface SrtSourceStats extends SourceCounters {
  /** Frames before the start that were not kept (video before its first keyframe, queue overflow). */
  skippedBeforeStart: number;
  demux: DemuxStats;
}

export class SrtSource extends TypedEmitter<SourceEvents> implements MediaSource {
  readonly info: PublishInfo;
  readonly #demux = new MpegTsDemuxer();
  readonly #counters = { videoFrames: 0, audioFrames: 0, keyframes: 0, mediaBytes: 0, skippedBeforeStart: 0 };
  #pending: AccessUnit[] = [];
  #sawKeyframe = false;
  #started: SourceStart | null = null;
  #ended: EndReason | null = null;
  #interleaver: Interleaver | null = null;
  /** The transport's counters (RTT, loss, buffer), read on demand. */
  readonly #transport: () => SrtConnectionStats;

  constructor(info: PublishInfo, transport: () => SrtConnectionStats) {
    super();
    this.info = info;
    this.#transport = transport;
  }

  get started(): SourceStart | null {
    return this.#started;
  }

  get ended(): EndReason | null {
    return this.#ended;
  }

  get stats(): SrtSourceStats {
    return { ...this.#counters, demux: { ...this.#demux.stats } };
  }

  /** SRT transport statistics of this publish (RTT, loss, retransmissions, drops, receive buffer). */
  transportStats(): SrtConnectionStats & TransportStats {
    return { transport: 'srt', ...this.#transport() };
  }

  /** MPEG-TS bytes, in order, as the connection delivers them. */
  feed(payload: Buffer): void {
    if (this.#ended) return;
    this.#handle(this.#demux.push(payload));
  }

  /** The publish is over: what the demuxer still holds comes out first. Idempotent. */
  end(reason: EndReason): void {
    if (this.#ended) return;
    this.#handle(this.#demux.flush());
    this.#interleaver?.flush();
    this.#ended = reason;
    this.#pending = [];
    this.safeEmit('end', reason);
  }

  #handle(outputs: ReturnType<MpegTsDemuxer['push']>): void {
    for (const o of outputs) {
      if (o.type === 'config') {
        if (this.#started) this.safeEmit('config', o.config);
        continue;
      }
      if (this.#started) this.#emitAu(o.au);
      else this.#beforeStart(o.au);
    }
  }

  #beforeStart(au: AccessUnit): void {
    const tracks = this.#demux.tracks;
    if (au.track === 'video' && !this.#sawKeyframe) {
      if (!au.keyframe) {
        this.#counters.skippedBeforeStart++;
        return;
      }
      this.#sawKeyframe = true;
    }
    this.#pending.push(au);
    const video = this.#demux.videoConfig;
    const audio = this.#demux.audioConfig;
    const ready =
      tracks.known &&
      (!tracks.video || (video !== null && this.#sawKeyframe)) &&
      (!tracks.audio || audio !== null);
    if (!ready && this.#pending.length < MAX_PENDING) return;
    if (!ready && tracks.video && !this.#sawKeyframe) {
      // Waiting for video's first keyframe: keep the newest audio only.
      this.#pending.shift();
      this.#counters.skippedBeforeStart++;
      return;
    }
    this.#started = { video, audio, hasVideo: tracks.video, hasAudio: tracks.audio, metadata: null };
    this.safeEmit('start', this.#started);
    const pending = this.#pending;
    this.#pending = [];
    for (const p of pending) this.#emitAu(p);
  }

  /** Units in DTS order across tracks (media/interleaver.ts): the TS muxer sent audio ahead of its video. */
  #emitAu(au: AccessUnit): void {
    this.#interleaver ??= new Interleaver(
      { video: this.#started?.hasVideo ?? true, audio: this.#started?.hasAudio ?? true },
      (unit) => this.#emitInOrder(unit),
    );
    this.#interleaver.push(au);
  }

  #emitInOrder(au: AccessUnit): void {
    if (au.track === 'video') {
      this.#counters.videoFrames++;
      if (au.keyframe) this.#counters.keyframes++;
    } else this.#counters.audioFrames++;
    this.#counters.mediaBytes += au.data.length;
    this.safeEmit('au', au);
  }
}
