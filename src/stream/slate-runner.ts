/**
 * One stream's slate while its publisher is gone: every `tickMs` it stamps what is due of each slate (./slate.ts)
 * up to the media time that corresponds to now, writes it in-process to CMAF for each of the stream's
 * packagers (the copy output, the transcode output, or every ABR rendition, each with a slate matching its
 * own init: size, profile, audio format) and hands the access units matched to the publisher's own
 * configuration to the re-stream feed. No FFmpeg runs: the slate was encoded once (./slate-cache.ts), so a
 * reconnecting stream costs a timer and a few small fragments per tick.
 *
 * Each packager gets the slate's init at start (its SPS/PPS: a discontinuity before the slate); the stream
 * gives the return its own init (the discontinuity at the return). Media time follows the wall clock from
 * the publisher's last frame, so the slate fills the gap so far at once and then runs in real time, and
 * PROGRAM-DATE-TIME stays true. The owner (the stream) calls stop(); the timer is the runner's.
 */
import type { Packager } from '../hls/packager.ts';
import type { AccessUnit, SourceStart } from '../media/access-unit.ts';
import { CmafWriter } from '../media/cmaf-writer.ts';
import type { Fmp4Fragment } from '../media/fmp4.ts';
import { SlateClock } from './slate.ts';
import type { SlateMedia } from './slate-media.ts';

export const DEFAULT_SLATE_TICK_MS = 100;

export interface SlatePackagerTarget {
  packager: Packager;
  media: SlateMedia;
  fps: number;
}

export interface SlateRunnerOptions {
  /** Where the slate starts on the stream's timeline (past everything the outputs got), ms. */
  startMs: number;
  /** Media time `anchorMs` was "now" at wall-clock `anchorWallMs` (the publisher's last frame). */
  anchorMs: number;
  anchorWallMs: number;
  packagers: readonly SlatePackagerTarget[];
  /** The slate matched to the publisher's configuration, for re-streams; null when none matches. */
  feed: { media: SlateMedia; fps: number } | null;
  onFeedStart: (start: SourceStart) => void;
  onFeedAu: (au: AccessUnit) => void;
  /** Each fragment written to a packager (the stream tracks where its outputs end). */
  onFragment?: (fragment: Fmp4Fragment) => void;
  now?: () => number;
  tickMs?: number;
}

interface Target {
  packager: Packager;
  clock: SlateClock;
  writer: CmafWriter;
}

export class SlateRunner {
  readonly #options: SlateRunnerOptions;
  readonly #now: () => number;
  readonly #targets: Target[];
  readonly #feed: SlateClock | null;
  #timer: NodeJS.Timeout | null = null;
  #stopped = false;
  /** Access units written (all targets and the feed), for stats. */
  written = 0;

  constructor(options: SlateRunnerOptions) {
    this.#options = options;
    this.#now = options.now ?? Date.now;
    this.#targets = options.packagers.map((t) => ({
      packager: t.packager,
      clock: new SlateClock(t.media, t.fps, options.startMs),
      writer: new CmafWriter({ video: t.media.video, audio: t.media.audio }),
    }));
    this.#feed = options.feed ? new SlateClock(options.feed.media, options.feed.fps, options.startMs) : null;
  }

  /** Gives each packager the slate's init, writes the gap so far, and runs on a timer until stop(). */
  start(): void {
    for (const t of this.#targets) t.packager.setInit(t.writer.init);
    const feed = this.#feed;
    if (feed) {
      const { video, audio } = feed.media;
      this.#options.onFeedStart({
        video,
        audio,
        hasVideo: true,
        hasAudio: audio !== null,
        metadata: null,
      });
    }
    this.tick();
    this.#timer = setInterval(() => this.tick(), this.#options.tickMs ?? DEFAULT_SLATE_TICK_MS);
  }

  /** Media time now on the stream's timeline. */
  get mediaNowMs(): number {
    return this.#options.anchorMs + (this.#now() - this.#options.anchorWallMs);
  }

  /**
   * Ends the slate: what is due up to now is written, the writers flushed into the packagers. Returns where
   * the slate's media ends (the return must start there or later). Idempotent.
   */
  stop(): number {
    if (!this.#stopped) {
      this.#stopped = true;
      if (this.#timer) clearInterval(this.#timer);
      this.#timer = null;
      this.#write(this.mediaNowMs);
      // Its audio runs on to its video's end: the publisher's return starts there (no hole a player stalls at).
      for (const t of this.#targets) this.#push(t, t.writer.flush(t.clock.media.silence));
    }
    return this.endMs;
  }

  get endMs(): number {
    let end = this.#options.startMs;
    for (const t of this.#targets) end = Math.max(end, t.clock.endMs);
    if (this.#feed) end = Math.max(end, this.#feed.endMs);
    return end;
  }

  /** Whether re-streams got a slate (`onFeedStart` was called). */
  get feeding(): boolean {
    return this.#feed !== null;
  }

  /** Video frames the first packager (or the feed) got. */
  get frames(): number {
    return this.#targets[0]?.clock.frames ?? this.#feed?.frames ?? 0;
  }

  /** Writes what is due up to now: what the timer does every `tickMs` (a benchmark may drive it). */
  tick(): void {
    if (!this.#stopped) this.#write(this.mediaNowMs);
  }

  #write(untilMs: number): void {
    for (const t of this.#targets) {
      for (const au of t.clock.until(untilMs)) {
        this.written++;
        this.#push(t, t.writer.push(au));
        // The keyframe closed the fragment before it: the segment before it may end now (as copy does).
        if (au.track === 'video' && au.keyframe) t.packager.hintKeyframe(au.dts / 1000);
      }
    }
    if (this.#feed) {
      for (const au of this.#feed.until(untilMs)) {
        this.written++;
        this.#options.onFeedAu(au);
      }
    }
  }

  #push(t: Target, fragments: readonly Fmp4Fragment[]): void {
    for (const f of fragments) {
      t.packager.pushFragment(f);
      this.#options.onFragment?.(f);
    }
  }
}
