/**
 * The relay's slates, encoded once per spec (./slate-media.ts) and shared by every stream: the first stream
 * that needs a slate of some size and format runs one short FFmpeg (about a second of wall clock, a third
 * of a CPU second at 540x960), every later one gets the same access units from memory. Nothing runs until a
 * publisher is gone: a stream that never loses its publisher never starts an encode (copy streams stay
 * without FFmpeg). Bounded: at most `maxEntries` slates kept (a few KB each), the oldest dropped first.
 *
 * Each encode is a child in its own process group registered with the relay's reaper, killed past
 * `timeoutMs` and by close(). A failed encode is retried without the text (an FFmpeg built without
 * libfreetype, or no font) and, with SLATE_IMAGE, with the built-in picture; a spec that still fails is
 * remembered for `failureTtlMs`, so a broken FFmpeg costs one process per minute, not one per reconnect.
 */
import { spawn } from 'node:child_process';
import type { ChildReaper } from '../pipeline/child-reaper.ts';
import { ErrorCodes, RelayError } from '../shared/errors.ts';
import type { Logger } from '../shared/logger.ts';
import { type SlateMedia, type SlateSpec, slateArgs, slateFromFlv, slateKey } from './slate-media.ts';

export interface SlateCacheOptions {
  log: Logger;
  reaper: ChildReaper;
  ffmpegPath?: string;
  /** SLATE_IMAGE: a picture file to show instead of the built-in "reconnecting" frame. */
  image?: string | undefined;
  maxEntries?: number;
  timeoutMs?: number;
  failureTtlMs?: number;
}

export interface SlateCacheStats {
  /** FFmpeg runs started (retries included). */
  encodes: number;
  /** Requests answered by an encode already made or under way. */
  hits: number;
  failures: number;
}

/** Most FLV bytes an encode may write (a 2 s still GOP is ~10–60 KB; a runaway is cut off). */
const MAX_OUTPUT_BYTES = 8 * 1024 * 1024;
const DEFAULT_MAX_ENTRIES = 32;
const DEFAULT_TIMEOUT_MS = 30_000;
const DEFAULT_FAILURE_TTL_MS = 60_000;

interface Attempt {
  image?: string;
  text: boolean;
}

export class SlateCache {
  readonly stats: SlateCacheStats = { encodes: 0, hits: 0, failures: 0 };
  readonly #options: SlateCacheOptions;
  readonly #log: Logger;
  readonly #entries = new Map<string, Promise<SlateMedia>>();
  /** Running encodes: their kill, for close(). */
  readonly #running = new Set<() => void>();
  readonly #timers = new Set<NodeJS.Timeout>();
  #closed = false;

  constructor(options: SlateCacheOptions) {
    this.#options = options;
    this.#log = options.log.child({ component: 'slate' });
  }

  /** Encodes running now (tests and the bench check none is left). */
  get running(): number {
    return this.#running.size;
  }

  /** The slate for `spec`: from memory, or from the encode under way, or a new encode. */
  get(spec: SlateSpec): Promise<SlateMedia> {
    if (this.#closed) return Promise.reject(new Error('slate cache closed'));
    const key = slateKey(spec);
    const known = this.#entries.get(key);
    if (known) {
      this.stats.hits++;
      // Most recently used last, so the oldest is what goes when the cache is full.
      this.#entries.delete(key);
      this.#entries.set(key, known);
      return known;
    }
    const made = this.#make(spec);
    this.#entries.set(key, made);
    made.catch(() => {
      // Remembered for a while, then tried again (the error went to every caller, and is logged below).
      const timer = setTimeout(() => {
        this.#timers.delete(timer);
        if (this.#entries.get(key) === made) this.#entries.delete(key);
      }, this.#options.failureTtlMs ?? DEFAULT_FAILURE_TTL_MS);
      timer.unref();
      this.#timers.add(timer);
    });
    const max = this.#options.maxEntries ?? DEFAULT_MAX_ENTRIES;
    while (this.#entries.size > max) this.#entries.delete(this.#entries.keys().next().value!);
    return made;
  }

  /** Kills the encodes under way and forgets every slate. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const kill of this.#running) kill();
    this.#running.clear();
    for (const t of this.#timers) clearTimeout(t);
    this.#timers.clear();
    this.#entries.clear();
  }

  async #make(spec: SlateSpec): Promise<SlateMedia> {
    const image = this.#options.image;
    const attempts: Attempt[] = image
      ? [{ image, text: false }, { text: true }, { text: false }]
      : [{ text: true }, { text: false }];
    let last: unknown;
    for (const attempt of attempts) {
      if (this.#closed) break;
      const started = Date.now();
      try {
        const flv = await this.#encode(slateArgs(spec, attempt));
        const media = slateFromFlv(spec, flv);
        this.#log.info(
          {
            key: slateKey(spec),
            ms: Date.now() - started,
            bytes: flv.length,
            image: attempt.image !== undefined,
          },
          'slate encoded',
        );
        return media;
      } catch (err) {
        last = err;
        const code = err instanceof RelayError ? err.code : 'INTERNAL';
        this.#log.warn({ key: slateKey(spec), code, err: String(err) }, 'slate encode failed');
      }
    }
    this.stats.failures++;
    throw last instanceof Error
      ? last
      : new RelayError(ErrorCodes.SLATE_ENCODE_FAILED, 'slate: cache closed');
  }

  /** One FFmpeg run: its stdout, or SLATE_ENCODE_FAILED (spawn error, exit without output, timeout). */
  #encode(args: string[]): Promise<Buffer> {
    this.stats.encodes++;
    const { reaper } = this.#options;
    return new Promise((resolve, reject) => {
      const child = spawn(this.#options.ffmpegPath ?? 'ffmpeg', args, {
        stdio: ['ignore', 'pipe', 'pipe'],
        detached: true, // its own process group, killed as one (style rule 7)
      });
      const pid = child.pid;
      if (pid !== undefined) reaper.add(pid);
      const chunks: Buffer[] = [];
      let bytes = 0;
      let stderr = '';
      let failure: string | null = null;
      const kill = (why: string): void => {
        failure ??= why;
        if (pid !== undefined) reaper.signal(pid, 'SIGKILL');
      };
      const onClose = (): void => {
        kill('the relay closed');
        // SIGKILLed with its group: nothing of it is left for the reaper to find at exit.
        if (pid !== undefined) reaper.delete(pid);
      };
      this.#running.add(onClose);
      const timer = setTimeout(() => kill('timed out'), this.#options.timeoutMs ?? DEFAULT_TIMEOUT_MS);
      child.stdout.on('data', (chunk: Buffer) => {
        bytes += chunk.length;
        if (bytes > MAX_OUTPUT_BYTES) return kill(`wrote more than ${MAX_OUTPUT_BYTES} bytes`);
        chunks.push(chunk);
      });
      child.stderr.setEncoding('utf8').on('data', (d: string) => {
        stderr = (stderr + d).slice(-1000);
      });
      const done = (err: Error | null, code: number | null): void => {
        clearTimeout(timer);
        this.#running.delete(onClose);
        if (pid !== undefined) reaper.delete(pid);
        const why = err
          ? `cannot run ffmpeg: ${err.message}`
          : (failure ?? (code !== 0 ? `exit ${code}` : null));
        if (why === null && bytes > 0) return resolve(Buffer.concat(chunks));
        reject(
          new RelayError(
            ErrorCodes.SLATE_ENCODE_FAILED,
            `slate encode: ${why ?? 'no output'}${stderr ? `: ${stderr.trim().split('\n').at(-1)}` : ''}`,
          ),
        );
      };
      let settled = false;
      child.once('error', (err) => {
        if (settled) return;
        settled = true;
        done(err, null);
      });
      child.once('close', (code) => {
        if (settled) return;
        settled = true;
        done(null, code);
      });
    });
  }
}
