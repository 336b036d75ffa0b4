/**
 * Re-streaming on the relay: one RestreamManager per stream (made when the stream is created, closed when it
 * ends), fed the stream's clean input (repaired configuration and tags, from the Stream's `input` and
 * `media` events) so every destination gets the same monotonic timeline the HLS path gets, and the stream's
 * slate while its publisher is gone (`slate-*` events). FLV carries no Opus: a WHIP stream's audio reaches
 * destinations through an Opus → AAC encoder (one FFmpeg, only while the stream has destinations). Destinations
 * come from outside (the agent asks the cloud); each change of a stream's outputs is emitted for the agent
 * to report. A failing or slow destination only ever drops its own media (the pusher's bounded queue).
 */
import {
  type AccessUnit,
  type AudioConfig,
  isAudioConfig,
  type SourceStart,
  type TrackConfig,
} from '../media/access-unit.ts';
import { flvConfigTagOf, flvStartOf, flvTagOf } from '../media/flv-demux.ts';
import {
  type AacEncoderFactory,
  type AacEncoderHandle,
  aacConfigFor,
  flvAudioOf,
} from '../pipeline/aac-encoder.ts';
import type { RestreamDestination, RestreamOutput } from '../restream/manager.ts';
import { RestreamManager, type RestreamManagerOptions } from '../restream/manager.ts';
import type { Logger } from '../shared/logger.ts';
import { TypedEmitter } from '../shared/typed-emitter.ts';
import type { StreamRegistry } from '../stream/registry.ts';
import type { Stream } from '../stream/stream.ts';

export type RestreamingEvents = {
  /** A stream's outputs changed (a destination's status, one added or removed). */
  outputs: [{ userId: string; streamId: string }, RestreamOutput[]];
};

export interface RestreamingOptions {
  streams: StreamRegistry;
  log: Logger;
  /** Pusher timers and limits (tests set them short). */
  tuning?: Omit<RestreamManagerOptions, 'log'>;
  /** Opus → AAC for WHIP streams; absent: their destinations get video only. */
  aacEncoder?: AacEncoderFactory;
}

export class Restreaming extends TypedEmitter<RestreamingEvents> {
  readonly #byKey = new Map<string, RestreamManager>();
  readonly #detach: (() => void)[] = [];

  constructor(options: RestreamingOptions) {
    super();
    const { streams } = options;
    const onCreated = (stream: Stream): void => {
      const log = options.log.child({ key: stream.key, component: 'restream' });
      const manager = new RestreamManager({ ...options.tuning, log });
      this.#byKey.set(stream.key, manager);
      /** The slate's configuration while it runs (the publisher's comes back at `slate-end`). */
      let slate: SourceStart | null = null;
      let aac: AacEncoderHandle | null = null;
      const stopAac = (): void => {
        aac?.close();
        aac = null;
      };
      /** An Opus frame, while somebody takes it: into the encoder, whose AAC frames go out as FLV tags. */
      const encodeAac = (au: AccessUnit, opus: AudioConfig): void => {
        const factory = options.aacEncoder;
        if (!factory) return;
        if (!aac) {
          const config = aacConfigFor(opus);
          aac = factory(
            opus,
            (frame) => {
              const tag = flvTagOf(frame, config);
              if (tag) manager.tag(tag);
            },
            log,
          );
        }
        aac.push(au);
      };
      // Pushers speak RTMP: the stream's configuration and access units go back to FLV tags.
      const onInput = (start: SourceStart): void => {
        stopAac(); // a new publish: its encoder starts with its first frame (another codec needs none)
        if (slate) return; // back during the slate: its configuration goes out at slate-end
        manager.start(flvStartOf(flvAudioOf(start), stream.configTime('video')));
      };
      const onConfig = (config: TrackConfig): void => {
        if (slate) return;
        const tag = flvConfigTagOf(config, stream.configTime(config.kind));
        if (tag) manager.tag(tag);
      };
      // The slate keeps destinations fed while the publisher is gone (YouTube and Twitch end a broadcast
      // whose input stops): its SPS/PPS replace the publisher's until it is back, at a keyframe.
      const onSlateStart = (start: SourceStart): void => {
        slate = start;
        manager.start(flvStartOf(flvAudioOf(start), stream.configTime('video')));
      };
      const onSlateAu = (au: AccessUnit): void => {
        if (manager.size === 0) return stopAac();
        if (!slate) return;
        const config = au.track === 'video' ? slate.video : slate.audio;
        // An Opus stream's slate has silent Opus: through the same encoder, on the same timeline.
        if (isAudioConfig(config) && config.codec === 'opus') return encodeAac(au, config);
        const tag = flvTagOf(au, config);
        if (tag) manager.tag(tag);
      };
      const onSlateEnd = (): void => {
        slate = null;
        const config = stream.configuration;
        if (config) manager.start(flvStartOf(flvAudioOf(config), stream.configTime('video')));
      };
      const onMedia = (au: AccessUnit): void => {
        if (manager.size === 0) return stopAac(); // nothing to push: no FLV to make (most streams have none)
        const config = stream.configuration;
        const trackConfig = au.track === 'video' ? (config?.video ?? null) : (config?.audio ?? null);
        if (isAudioConfig(trackConfig) && trackConfig.codec === 'opus') return encodeAac(au, trackConfig);
        const tag = flvTagOf(au, trackConfig);
        if (tag) manager.tag(tag);
      };
      const onStatus = (): void => {
        this.safeEmit('outputs', { userId: stream.userId, streamId: stream.streamId }, manager.outputs());
      };
      stream.on('input', onInput);
      stream.on('config', onConfig);
      stream.on('au', onMedia);
      stream.on('slate-start', onSlateStart);
      stream.on('slate-au', onSlateAu);
      stream.on('slate-end', onSlateEnd);
      manager.on('status', onStatus);
      stream.once('ended', () => {
        stream.off('input', onInput);
        stream.off('config', onConfig);
        stream.off('au', onMedia);
        stream.off('slate-start', onSlateStart);
        stream.off('slate-au', onSlateAu);
        stream.off('slate-end', onSlateEnd);
        stopAac();
        manager.close(); // emits `stopped` for each destination: the last report
        manager.off('status', onStatus);
        if (this.#byKey.get(stream.key) === manager) this.#byKey.delete(stream.key);
      });
    };
    streams.on('created', onCreated);
    this.#detach.push(() => streams.off('created', onCreated));
  }

  /** The destinations of the stream with this key (diffed: kept ones carry on). Unknown keys are ignored. */
  setDestinations(key: string, destinations: readonly RestreamDestination[]): void {
    this.#byKey.get(key)?.setDestinations([...destinations]);
  }

  outputs(key: string): RestreamOutput[] {
    return this.#byKey.get(key)?.outputs() ?? [];
  }

  close(): void {
    for (const undo of this.#detach.splice(0)) undo();
    for (const m of this.#byKey.values()) m.close();
    this.#byKey.clear();
  }
}
