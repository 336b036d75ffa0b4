/**
 * Puts the access units of two tracks back in decode order across tracks. A muxer interleaves by its own
 * buffering (an MPEG-TS muxer sends audio up to a second ahead of the video of the same time), while the
 * timestamp repair (and FLV for FFmpeg and re-streams) reads arrival order as the streams' common clock: a
 * video frame arriving 500 ms "behind" the audio would be moved later as skew. Units are held per track
 * and released in DTS order once the other track has something later, or once a track holds more than
 * `maxHoldMs` of media (the other track stalled or ended). Pure: no timers; the source flushes at its end.
 */
import type { AccessUnit, TrackKind } from './access-unit.ts';

export const DEFAULT_MAX_HOLD_MS = 1500;

export class Interleaver {
  readonly #queues: Record<TrackKind, AccessUnit[]> = { video: [], audio: [] };
  readonly #tracks: { video: boolean; audio: boolean };
  readonly #maxHoldMs: number;
  readonly #emit: (au: AccessUnit) => void;

  constructor(
    tracks: { video: boolean; audio: boolean },
    emit: (au: AccessUnit) => void,
    maxHoldMs = DEFAULT_MAX_HOLD_MS,
  ) {
    this.#tracks = tracks;
    this.#emit = emit;
    this.#maxHoldMs = maxHoldMs;
  }

  /** Units held now (both tracks). */
  get held(): number {
    return this.#queues.video.length + this.#queues.audio.length;
  }

  push(au: AccessUnit): void {
    // One track only: nothing to interleave with.
    if (!(this.#tracks.video && this.#tracks.audio)) return this.#emit(au);
    this.#queues[au.track].push(au);
    this.#release();
  }

  /** Everything held, in DTS order (the publish ended). */
  flush(): void {
    const { video, audio } = this.#queues;
    while (video.length > 0 || audio.length > 0) this.#emit(this.#take(this.#earlier()));
  }

  #release(): void {
    const { video, audio } = this.#queues;
    for (;;) {
      if (video.length > 0 && audio.length > 0) {
        this.#emit(this.#take(this.#earlier()));
        continue;
      }
      const waiting = video.length > 0 ? video : audio;
      if (waiting.length > 1 && waiting.at(-1)!.dts - waiting[0]!.dts > this.#maxHoldMs) {
        this.#emit(waiting.shift()!);
        continue;
      }
      return;
    }
  }

  #earlier(): TrackKind {
    const { video, audio } = this.#queues;
    if (video.length === 0) return 'audio';
    if (audio.length === 0) return 'video';
    return audio[0]!.dts < video[0]!.dts ? 'audio' : 'video';
  }

  #take(track: TrackKind): AccessUnit {
    return this.#queues[track].shift()!;
  }
}
