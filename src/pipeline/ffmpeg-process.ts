/**
 * One FFmpeg run: FLV in on stdin, fragmented MP4 out on stdout, read by the fMP4 reader into init and
 * fragments. It counts as up only once it produced its init segment (FFmpeg exits 0 even when it wrote
 * nothing: judge it by its output). "We stopped it" and "it died" are different exits. stderr becomes
 * structured, rate-limited log lines. Restarts are the supervisor's business, not this class's.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import type { FlvStart } from '../media/flv-sink.ts';
import { FlvSink } from '../media/flv-sink.ts';
import type { MediaTag } from '../media/flv-tag.ts';
import { type Fmp4Fragment, type Fmp4Init, Fmp4Reader } from '../media/fmp4.ts';
import { ErrorCodes, RelayError, toRelayError } from '../shared/errors.ts';
import type { Logger } from '../shared/logger.ts';
import { TypedEmitter } from '../shared/typed-emitter.ts';
import type { ChildReaper } from './child-reaper.ts';

/** FFmpeg stderr lines that every healthy run prints (logged at debug). */
const EXPECTED_STDERR = /not enough frames to estimate rate/i;

export interface FfmpegExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** We asked it to stop (stop() or endInput()). */
  requested: boolean;
  /** It produced an init segment before exiting. */
  started: boolean;
  /** Its last stderr line that was not routine (what it said about the input), if any. */
  lastWords?: string;
  error?: RelayError;
}

export type FfmpegProcessEvents = {
  /** An output's init segment; the second argument is the output's index (0 unless `outputs` > 1). */
  init: [Fmp4Init, number];
  fragment: [Fmp4Fragment, number];
  exit: [FfmpegExit];
};

export interface FfmpegProcessOptions {
  args: string[];
  log: Logger;
  reaper: ChildReaper;
  ffmpegPath?: string;
  /** Most FLV bytes queued for stdin before tags are dropped (default 8 MiB). */
  maxStdinBytes?: number;
  /** Most stderr lines logged per 10 s. */
  maxLogLines?: number;
  /** Grace between SIGTERM and SIGKILL. */
  killGraceMs?: number;
  /**
   * fMP4 outputs (default 1): output 0 on stdout, output i > 0 on fd i + 2 (the ABR ladder's `pipe:3`…),
   * each read by its own fMP4 reader. It counts as started once every output produced its init segment.
   */
  outputs?: number;
}

const STDERR_WINDOW_MS = 10_000;

export class FfmpegProcess extends TypedEmitter<FfmpegProcessEvents> {
  readonly #options: FfmpegProcessOptions;
  readonly #log: Logger;
  readonly #readers: Fmp4Reader[];
  readonly #initsSeen = new Set<number>();
  #child: ChildProcess | null = null;
  #sink: FlvSink | null = null;
  #started = false;
  #requested = false;
  #exited = false;
  #error: RelayError | undefined;
  #lastWords: string | undefined;
  #killTimer: NodeJS.Timeout | null = null;
  #logWindowStart = 0;
  #logLines = 0;
  #suppressed = 0;
  readonly exited: Promise<FfmpegExit>;
  #resolveExit: (exit: FfmpegExit) => void = () => {};

  constructor(options: FfmpegProcessOptions) {
    super();
    this.#options = options;
    this.#log = options.log;
    this.#readers = Array.from({ length: Math.max(1, options.outputs ?? 1) }, () => new Fmp4Reader());
    this.exited = new Promise((resolve) => {
      this.#resolveExit = resolve;
    });
  }

  get pid(): number | undefined {
    return this.#child?.pid;
  }

  get started(): boolean {
    return this.#started;
  }

  /** Spawns FFmpeg and writes the FLV header, metadata and codec configuration. */
  start(flv: FlvStart): void {
    if (this.#child) throw new Error('already started');
    const extra = this.#readers.length - 1;
    const stdio: 'pipe'[] = Array.from({ length: 3 + extra }, () => 'pipe');
    const child = spawn(this.#options.ffmpegPath ?? 'ffmpeg', this.#options.args, {
      stdio,
      detached: true, // own process group: killed as a group, and not by a terminal's Ctrl-C
    });
    this.#child = child;
    if (child.pid !== undefined) this.#options.reaper.add(child.pid);
    child.once('error', (err) => {
      this.#error = new RelayError(ErrorCodes.FFMPEG_SPAWN_FAILED, `ffmpeg could not start: ${err.message}`);
      this.#onExit(null, null);
    });
    child.once('close', (code, signal) => this.#onExit(code, signal));
    child.stdin!.on('error', (err: NodeJS.ErrnoException) => {
      // EPIPE: FFmpeg exited; its exit is reported on its own. Anything else is worth a line.
      if (err.code !== 'EPIPE') this.#log.warn({ err }, 'ffmpeg stdin error');
    });
    child.stdout!.on('data', (chunk: Buffer) => this.#onOutput(0, chunk));
    for (let i = 1; i <= extra; i++) {
      const pipe = child.stdio[i + 2] as NodeJS.ReadableStream | null;
      pipe?.on('data', (chunk: Buffer) => this.#onOutput(i, chunk));
      // EPIPE/EOF on an extra pipe follows FFmpeg's exit, reported on its own.
      pipe?.on('error', (err: Error) => this.#log.debug({ err, output: i }, 'ffmpeg output pipe error'));
    }
    createInterface({ input: child.stderr! }).on('line', (line) => this.#onStderr(line));
    this.#sink = new FlvSink(child.stdin!, {
      log: this.#log,
      ...(this.#options.maxStdinBytes ? { maxBufferedBytes: this.#options.maxStdinBytes } : {}),
    });
    this.#sink.start(flv);
  }

  write(tag: MediaTag): void {
    if (!this.#exited && !this.#requested) this.#sink?.write(tag);
  }

  /** Closes stdin: FFmpeg flushes what it has and exits by itself. */
  endInput(): void {
    this.#requested = true;
    this.#sink?.end();
  }

  /** Stops it: SIGTERM to its group, SIGKILL after the grace. Resolves when it is gone. */
  stop(): Promise<FfmpegExit> {
    this.#requested = true;
    const pid = this.#child?.pid;
    if (pid !== undefined && !this.#exited) {
      this.#options.reaper.signal(pid, 'SIGTERM');
      this.#killTimer ??= setTimeout(
        () => this.#options.reaper.signal(pid, 'SIGKILL'),
        this.#options.killGraceMs ?? 2000,
      );
    }
    return this.exited;
  }

  #onOutput(output: number, chunk: Buffer): void {
    if (this.#error) return;
    try {
      this.#readers[output]!.push(chunk, {
        init: (init) => {
          this.#initsSeen.add(output);
          if (this.#initsSeen.size === this.#readers.length) this.#started = true;
          this.safeEmit('init', init, output);
        },
        fragment: (fragment) => this.safeEmit('fragment', fragment, output),
      });
    } catch (err) {
      this.#error = toRelayError(err, ErrorCodes.FFMPEG_OUTPUT_INVALID);
      this.#log.error({ code: this.#error.code }, `ffmpeg output unreadable: ${this.#error.message}`);
      void this.stop();
    }
  }

  #onStderr(line: string): void {
    if (!EXPECTED_STDERR.test(line)) this.#lastWords = line.slice(0, 300);
    // Probing a live pipe always says this on a fresh stream: expected, not a warning. `stderr`, because the
    // logger's `ffmpeg` binding (the start count) would be duplicated in the JSON object.
    if (EXPECTED_STDERR.test(line))
      return void this.#log.debug({ stderr: line.slice(0, 500) }, 'ffmpeg says');
    const now = Date.now();
    if (now - this.#logWindowStart > STDERR_WINDOW_MS) {
      if (this.#suppressed > 0)
        this.#log.warn({ suppressed: this.#suppressed }, 'ffmpeg stderr lines suppressed');
      this.#logWindowStart = now;
      this.#logLines = 0;
      this.#suppressed = 0;
    }
    if (this.#logLines >= (this.#options.maxLogLines ?? 20)) {
      this.#suppressed++;
      return;
    }
    this.#logLines++;
    this.#log.warn({ stderr: line.slice(0, 500) }, 'ffmpeg says');
  }

  #onExit(code: number | null, signal: NodeJS.Signals | null): void {
    if (this.#exited) return;
    this.#exited = true;
    if (this.#killTimer) clearTimeout(this.#killTimer);
    const pid = this.#child?.pid;
    if (pid !== undefined) {
      this.#options.reaper.signal(pid, 'SIGKILL'); // anything left in its group
      this.#options.reaper.delete(pid);
    }
    const exit: FfmpegExit = { code, signal, requested: this.#requested, started: this.#started };
    if (this.#lastWords !== undefined) exit.lastWords = this.#lastWords;
    if (this.#error) exit.error = this.#error;
    else if (!this.#requested && !this.#started) {
      exit.error = new RelayError(
        ErrorCodes.FFMPEG_START_FAILED,
        `ffmpeg exited (${code ?? signal}) before any output`,
      );
    } else if (!this.#requested) {
      exit.error = new RelayError(ErrorCodes.FFMPEG_DIED, `ffmpeg exited unexpectedly (${code ?? signal})`);
    }
    this.safeEmit('exit', exit);
    this.#resolveExit(exit);
  }
}
