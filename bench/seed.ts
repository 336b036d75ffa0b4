/**
 * The seed as the benchmarks run it: its exact FFmpeg command (../shared/reference/ffmpeg.md, "The seed's
 * setup") writing HLS files, its FLV input on a pipe fed in real time, as the reference says to reproduce it.
 * With -use_wallclock_as_timestamps it cannot pace itself on a file: `-re` then reads a fraction of real
 * time and the encoder fills the rest with repeated frames, which is cheap and not what the seed did live.
 */
import { once } from 'node:events';
import path from 'node:path';
import type { Writable } from 'node:stream';
import type { FlvHeaderFlags } from '../src/media/flv-reader.ts';
import type { MediaTag } from '../src/media/flv-tag.ts';
import { flvHeader, flvTag } from '../src/media/flv-writer.ts';
import { SEED_AUDIO_ENCODE, SEED_VIDEO_ENCODE } from '../src/pipeline/ffmpeg-args.ts';
import { mediaSchedule } from './fixture-loop.ts';

/** The seed's command reading FLV from stdin; its encode is the same list ours uses for `transcode`. */
export function seedArgs(dir: string): string[] {
  return [
    ...['-fflags', '+genpts+igndts', '-use_wallclock_as_timestamps', '1', '-analyzeduration', '3M'],
    ...['-loglevel', 'error', '-f', 'flv', '-i', 'pipe:0'],
    ...SEED_VIDEO_ENCODE,
    ...SEED_AUDIO_ENCODE,
    '-reset_timestamps',
    '1',
    ...['-f', 'hls', '-hls_time', '2', '-hls_list_size', '5', '-hls_flags', 'delete_segments'],
    ...['-hls_segment_filename', path.join(dir, 'segment_%03d.ts'), path.join(dir, 'index.m3u8')],
  ];
}

export interface PacedFeed {
  /** Settles when every tag is written, the pipe closed or `stop()` was called. */
  done: Promise<void>;
  /** The worst lateness (ms) of a write against its real-time schedule since the last call. */
  takeMaxLateMs(): number;
  stop(): void;
}

/**
 * Writes an FLV stream into `out` in real time by the tags' timestamps (a jump counts as at most 1 s, as a
 * publisher's would), waiting whenever the pipe is full: a reader that falls behind shows as lateness, not
 * as an unbounded buffer. Configuration and metadata go out at once.
 */
export function feedFlvPaced(out: Writable, flags: FlvHeaderFlags, tags: readonly MediaTag[]): PacedFeed {
  let stopped = false;
  let maxLateMs = 0;
  out.on('error', () => {
    stopped = true; // the reader exited (EPIPE): nothing more to measure
  });
  const closed = new Promise<void>((resolve) =>
    out.once('close', () => {
      stopped = true;
      resolve();
    }),
  );
  const done = (async () => {
    out.write(flvHeader(flags));
    const start = performance.now();
    const dueAt = mediaSchedule();
    for (const tag of tags) {
      if (stopped) return;
      if (!tag.isConfig) {
        const media = dueAt(tag.timestamp);
        const wait = start + media - performance.now();
        if (wait > 0) await new Promise<void>((r) => setTimeout(r, wait));
        if (stopped) return;
        maxLateMs = Math.max(maxLateMs, performance.now() - start - media);
      }
      if (!out.write(flvTag(tag.type, tag.timestamp, tag.data))) {
        await Promise.race([once(out, 'drain').catch(() => undefined), closed]);
      }
    }
  })();
  return {
    done,
    takeMaxLateMs: () => {
      const late = maxLateMs;
      maxLateMs = 0;
      return late;
    },
    stop: () => {
      stopped = true;
      out.end();
    },
  };
}
