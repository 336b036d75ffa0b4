/**
 * A small JPEG of a stream's latest keyframe, every few seconds, at the cost of decoding one frame: the
 * stream hands over each input keyframe (with its decoder configuration) and, at most every `intervalMs`,
 * a short-lived FFmpeg decodes that single frame from a three-tag FLV (header, AVC sequence header,
 * keyframe) and scales it to `width` (height from the aspect ratio, even). Nothing is decoded between
 * keyframes and nothing runs while no new keyframe came. One child at a time per stream, supervised like
 * the others (own process group, in the reaper, killed on close and after `timeoutMs`).
 *
 * On demand: the first thumbnail is made as soon as a keyframe comes, later ones only while somebody asked
 * for one in the last `demandWindowMs` (`fresh()`). Spawning a child blocks the relay's event loop for the
 * fork (measured: 3 ms at 44 MB RSS, 18–60 ms at 345 MB), so a thumbnail per stream every 5 s that nobody
 * looks at cost a 20-stream relay 60+ ms event-loop stalls; now it costs what its viewers ask for.
 */
import { spawn } from 'node:child_process';
import { FlvTagType, type MediaTag } from '../media/flv-tag.ts';
import { flvHeader, flvTag } from '../media/flv-writer.ts';
import type { Logger } from '../shared/logger.ts';
import { TypedEmitter } from '../shared/typed-emitter.ts';
import type { ChildReaper } from './child-reaper.ts';

export type ThumbnailerEvents = {
  thumbnail: [Thumbnail];
  failed: [{ code: number | null }];
};

export interface ThumbnailerOptions {
  reaper: ChildReaper;
  log: Logger;
  /** Least time between two thumbnails (THUMBNAIL_SECONDS). */
  intervalMs: number;
  /** Output width in pixels (THUMBNAIL_WIDTH); portrait input gives a portrait thumbnail. */
  width: number;
  ffmpegPath?: string;
  /** A decode taking longer is killed (default 5 s). */
  timeoutMs?: number;
  /** After the first, thumbnails are made only this long after somebody asked (default 3 × intervalMs). */
  demandWindowMs?: number;
  now?: () => number;
}

export interface Thumbnail {
  jpeg: Buffer;
  /** ms since the epoch when it was made. */
  at: number;
}

/** JPEGs start with SOI (FF D8) and end with EOI (FF D9). */
export function isJpeg(data: Buffer): boolean {
  return (
    data.length > 4 && data[0] === 0xff && data[1] === 0xd8 && data.at(-2) === 0xff && data.at(-1) === 0xd9
  );
}

/** The argv (pure): one frame from FLV on stdin to a scaled JPEG on stdout. */
export function thumbnailArgs(width: number): string[] {
  return [
    '-hide_banner',
    '-nostdin',
    '-loglevel',
    'error',
    '-f',
    'flv',
    '-i',
    'pipe:0',
    '-map',
    '0:v:0',
    '-frames:v',
    '1',
    '-vf',
    `scale=${width}:-2`,
    '-q:v',
    '5',
    '-f',
    'image2',
    '-c:v',
    'mjpeg',
    'pipe:1',
  ];
}

/** Callers of fresh() that may wait for one decode; more are answered with what there is. */
const MAX_WAITERS = 64;

export class Thumbnailer extends TypedEmitter<ThumbnailerEvents> {
  readonly #options: ThumbnailerOptions;
  readonly #now: () => number;
  #config: MediaTag | null = null;
  #pending: MediaTag | null = null;
  #latest: Thumbnail | null = null;
  #lastStart = Number.NEGATIVE_INFINITY;
  #running: { pid: number | undefined; kill(): void } | null = null;
  #timer: NodeJS.Timeout | null = null;
  #closed = false;
  #askedAt = Number.NEGATIVE_INFINITY;
  /** Callers of fresh() waiting for the decode in progress. */
  readonly #waiters = new Set<() => void>();
  readonly stats = { made: 0, failed: 0 };

  constructor(options: ThumbnailerOptions) {
    super();
    this.#options = options;
    this.#now = options.now ?? Date.now;
  }

  /** The latest thumbnail, if one was made. */
  get latest(): Thumbnail | null {
    return this.#latest;
  }

  /** The decoder configuration (AVC sequence header) for the keyframes that follow. */
  setConfig(config: MediaTag | null): void {
    this.#config = config;
  }

  /** An input keyframe: it becomes the next thumbnail when the interval allows. */
  keyframe(tag: MediaTag): void {
    if (this.#closed || tag.type !== FlvTagType.Video || !tag.keyframe || tag.isConfig) return;
    this.#pending = tag;
    this.#schedule();
  }

  /**
   * The latest thumbnail for somebody who wants it now: counts as demand (later keyframes get decoded), and
   * when the latest is older than `maxAgeMs` and a decode is running, waits for it (at most `timeoutMs`).
   */
  async fresh(maxAgeMs: number): Promise<Thumbnail | null> {
    this.#askedAt = this.#now();
    this.#schedule();
    const latest = this.#latest;
    const young = latest !== null && this.#now() - latest.at <= maxAgeMs;
    // A crowd asking at once is served what there is rather than parked without bound.
    if (young || !this.#running || this.#closed || this.#waiters.size >= MAX_WAITERS) return latest;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, this.#options.timeoutMs ?? 5000);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.#waiters.add(done);
    });
    return this.#latest;
  }

  close(): void {
    this.#closed = true;
    this.#wake();
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    this.#running?.kill();
    this.#pending = null;
  }

  #wake(): void {
    for (const done of this.#waiters) done();
    this.#waiters.clear();
  }

  #wanted(): boolean {
    const window = this.#options.demandWindowMs ?? 3 * this.#options.intervalMs;
    return this.#latest === null || this.#now() - this.#askedAt <= window;
  }

  #schedule(): void {
    if (this.#running || this.#timer || !this.#pending || !this.#wanted()) return;
    const wait = this.#lastStart + this.#options.intervalMs - this.#now();
    if (wait > 0) {
      this.#timer = setTimeout(() => {
        this.#timer = null;
        this.#schedule();
      }, wait);
      return;
    }
    const frame = this.#pending;
    const config = this.#config;
    this.#pending = null;
    if (!config) return; // a keyframe without its configuration cannot be decoded
    this.#lastStart = this.#now();
    this.#decode(config, frame);
  }

  #decode(config: MediaTag, frame: MediaTag): void {
    const { reaper, log } = this.#options;
    const child = spawn(this.#options.ffmpegPath ?? 'ffmpeg', thumbnailArgs(this.#options.width), {
      stdio: ['pipe', 'pipe', 'pipe'],
      detached: true,
    });
    const pid = child.pid;
    if (pid !== undefined) reaper.add(pid);
    const chunks: Buffer[] = [];
    let size = 0;
    let stderr = '';
    const kill = (): void => {
      if (pid !== undefined) reaper.signal(pid, 'SIGKILL');
    };
    this.#running = { pid, kill };
    const timer = setTimeout(kill, this.#options.timeoutMs ?? 5000);
    child.stdout.on('data', (d: Buffer) => {
      size += d.length;
      if (size > 4 * 1024 * 1024) return kill(); // a thumbnail is small; anything else is a fault
      chunks.push(d);
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      stderr = (stderr + d).slice(-1000);
    });
    child.stdin.on('error', () => {}); // EPIPE when FFmpeg exits first: reported through its exit
    child.once('error', (err) => {
      stderr += err.message;
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      if (pid !== undefined) reaper.delete(pid);
      this.#running = null;
      const jpeg = Buffer.concat(chunks);
      if (code === 0 && isJpeg(jpeg)) {
        this.#latest = { jpeg, at: this.#now() };
        this.stats.made++;
        this.safeEmit('thumbnail', this.#latest);
      } else if (!this.#closed) {
        this.stats.failed++;
        log.warn({ code, stderr: stderr.trim().slice(-300) }, 'thumbnail failed');
        this.safeEmit('failed', { code });
      }
      this.#wake();
      if (!this.#closed) this.#schedule();
    });
    const ts = 0; // one frame: its own clock
    child.stdin.end(
      Buffer.concat([
        flvHeader({ hasAudio: false, hasVideo: true }),
        flvTag(FlvTagType.Video, ts, config.data),
        flvTag(FlvTagType.Video, ts, frame.data),
      ]),
    );
  }
}
