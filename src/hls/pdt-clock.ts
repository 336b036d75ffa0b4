/**
 * The EXT-X-PROGRAM-DATE-TIME clock of one packager: maps media time (the stream's one timeline, seconds) to
 * the wall clock with one offset per output run, so within a run PDTs advance exactly with the EXTINFs
 * (hls.js aligns reloads by PDT and stalls on a disagreement).
 *
 * The offset is fixed when the run's first segment is first listed (the first `dateOf` of the run): the
 * smallest (arrival − media end) over the last CLOCK_WINDOW_MS of arrivals, i.e. the ingest time of a sample
 * plus the producer's delay. At a fresh start a little of FFmpeg's start-up shows; after a restart the
 * replayed GOP comes in a burst, so that run's PDTs can be late by up to the replayed part of the GOP. Time
 * comes from an injected clock, so tests need no timers. Pure: no timers, no I/O.
 */

/** The PROGRAM-DATE-TIME offset is the smallest seen over this window (drift between the clocks). */
export const CLOCK_WINDOW_MS = 10_000;

export class PdtClock {
  readonly #now: () => number;
  /** (arrival ms, arrival − media end ms), increasing offsets: the front is the window's minimum. */
  #window: { at: number; offset: number }[] = [];
  /** Wall clock − media time (ms) of this run, fixed by the run's first `dateOf`. */
  #runOffset: number | null = null;

  constructor(now: () => number) {
    this.#now = now;
  }

  /** A new output run: a new timeline, a new offset. */
  newRun(): void {
    this.#window = [];
    this.#runOffset = null;
  }

  /** Media up to `mediaEndSeconds` arrived now. */
  arrived(mediaEndSeconds: number): void {
    const at = this.#now();
    const offset = at - mediaEndSeconds * 1000;
    // A monotonic deque: an arrival with a smaller offset makes every larger one before it irrelevant.
    while (this.#window.length > 0 && this.#window.at(-1)!.offset >= offset) this.#window.pop();
    this.#window.push({ at, offset });
    while (this.#window[0]!.at < at - CLOCK_WINDOW_MS) this.#window.shift();
  }

  /** Wall-clock ms of media time `mediaSeconds`; the run's first call fixes the run's offset. */
  dateOf(mediaSeconds: number): number {
    this.#runOffset ??= this.#window[0]?.offset ?? this.#now() - mediaSeconds * 1000;
    return Math.round(mediaSeconds * 1000 + this.#runOffset);
  }
}
