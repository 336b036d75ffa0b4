/**
 * Re-streaming for one stream: the set of destinations (from the cloud's
 * `GET /api/relay/destinations/{userId}/{streamId}`, fed by the app's `restreamDestinations`), one
 * RestreamPusher each, changed live by setDestinations (diffed by URL: new ones start, removed ones stop,
 * kept ones carry on untouched). Every tag of the stream is fanned out to every pusher; a pusher that throws
 * or is slow never affects the others or the caller (pushers only ever drop). Status transitions are
 * re-emitted as `status` for the relay to report to the cloud (and on to apps as `outputs[]`).
 *
 * Ownership (style rule 4): the manager owns its pushers and closes them; close() is idempotent.
 * A bad entry (not rtmp:// or rtmps://, no host, too long, over the per-stream cap) becomes a pusher in
 * `error` with a clear message, never a crash.
 */
import type { ManagedStreamStatus } from '../contracts/mentra.ts';
import type { MediaTag } from '../media/flv-tag.ts';
import { parseRtmpUrl } from '../rtmp/client-url.ts';
import { ErrorCodes, RelayError } from '../shared/errors.ts';
import type { Logger } from '../shared/logger.ts';
import { TypedEmitter } from '../shared/typed-emitter.ts';
import {
  type PusherStatus,
  RestreamPusher,
  type RestreamPusherOptions,
  type RestreamPusherTuning,
  type RestreamStart,
} from './pusher.ts';

export interface RestreamDestination {
  url: string;
  name?: string | undefined;
}

/** One entry of managed_stream_status.outputs. */
export type RestreamOutput = NonNullable<ManagedStreamStatus['outputs']>[number];

export interface RestreamManagerOptions extends RestreamPusherTuning {
  log: Logger;
  /** Most destinations pushed per stream (default 5); later entries are reported in error. */
  maxDestinations?: number;
  /** Builds each pusher (tests). */
  createPusher?: (options: RestreamPusherOptions) => RestreamPusher;
}

export type RestreamManagerEvents = {
  /** A destination's reported status changed (also `stopped` when it is removed or the manager closes). */
  status: [PusherStatus];
};

export const DEFAULT_MAX_DESTINATIONS = 5;
/** Entries looked at per update; anything past this is ignored (the contract allows 10). */
const MAX_ENTRIES = 32;
const MAX_NAME_LENGTH = 128;
const WARN_INTERVAL_MS = 5000;

interface Entry {
  pusher: RestreamPusher;
  detach: () => void;
}

export class RestreamManager extends TypedEmitter<RestreamManagerEvents> {
  readonly #log: Logger;
  readonly #options: RestreamManagerOptions;
  readonly #max: number;
  /** Pushers by destination URL, in the order they were given. */
  #entries = new Map<string, Entry>();
  #config: RestreamStart | null = null;
  #closed = false;
  #pusherErrors = 0;
  #lastWarn = Number.NEGATIVE_INFINITY;

  constructor(options: RestreamManagerOptions) {
    super();
    this.#options = options;
    this.#log = options.log.child({ component: 'restream' });
    this.#max = options.maxDestinations ?? DEFAULT_MAX_DESTINATIONS;
  }

  protected override onListenerError(event: string, err: unknown): void {
    this.#log.error({ err, event }, 'a restream manager listener threw');
  }

  get size(): number {
    return this.#entries.size;
  }

  /** Exceptions pushers threw while fed (each caught and logged, rate-limited). */
  get pusherErrors(): number {
    return this.#pusherErrors;
  }

  /**
   * Replaces the destination list. Destinations are matched by URL: new ones start (at once when the stream
   * is live), removed ones stop and report `stopped`, kept ones carry on (a new name is taken).
   */
  setDestinations(given: readonly RestreamDestination[]): void {
    if (this.#closed) return;
    const list = Array.isArray(given) ? given : [];
    if (list.length > MAX_ENTRIES) {
      this.#log.warn({ given: list.length, kept: MAX_ENTRIES }, 'too many destinations given; extra ignored');
    }
    const next = new Map<string, { name: string | undefined; invalid: boolean; refused?: RelayError }>();
    let valid = 0;
    for (const item of list.slice(0, MAX_ENTRIES)) {
      const url = typeof item?.url === 'string' ? item.url.trim() : '';
      if (next.has(url)) continue;
      const name =
        typeof item?.name === 'string' && item.name.trim() !== ''
          ? item.name.trim().slice(0, MAX_NAME_LENGTH)
          : undefined;
      // An unusable URL becomes a pusher in error (it says why); it does not count against the cap.
      if (!parseRtmpUrl(url).ok) {
        next.set(url, { name, invalid: true });
      } else if (valid >= this.#max) {
        const refused = new RelayError(
          ErrorCodes.RESTREAM_TOO_MANY_DESTINATIONS,
          `at most ${this.#max} destinations per stream`,
        );
        next.set(url, { name, invalid: true, refused });
      } else {
        valid++;
        next.set(url, { name, invalid: false });
      }
    }

    for (const [url, entry] of this.#entries) {
      const wanted = next.get(url);
      // Gone, or crossed the cap either way: stop this one (a replacement is made below).
      if (!wanted || wanted.invalid !== (entry.pusher.state === 'invalid')) this.#remove(url);
    }
    const ordered = new Map<string, Entry>();
    for (const [url, wanted] of next) {
      const existing = this.#entries.get(url);
      if (existing) {
        if (existing.pusher.name !== wanted.name) {
          existing.pusher.name = wanted.name;
          existing.pusher.refresh();
        }
        ordered.set(url, existing);
        continue;
      }
      ordered.set(url, this.#add(url, wanted.name, wanted.refused));
    }
    this.#entries = ordered;
    for (const { pusher } of ordered.values()) {
      if (this.#config && pusher.state === 'idle') this.#guard(pusher, () => pusher.start(this.#config!));
    }
  }

  /** The stream's configuration (its first publish, or the publisher back after a reconnect). */
  start(config: RestreamStart): void {
    if (this.#closed) return;
    this.#config = config;
    for (const { pusher } of this.#entries.values()) this.#guard(pusher, () => pusher.start(config));
  }

  /** One tag, to every destination. Never blocks and never throws. */
  tag(tag: MediaTag): void {
    for (const { pusher } of this.#entries.values()) {
      try {
        pusher.tag(tag);
      } catch (err) {
        this.#onPusherError(pusher, err);
      }
    }
  }

  /** Every destination's status, in the order given. */
  statuses(): PusherStatus[] {
    return [...this.#entries.values()].map((e) => e.pusher.status());
  }

  /** What apps see (managed_stream_status.outputs): destinations whose first attempt has an outcome. */
  outputs(): RestreamOutput[] {
    const out: RestreamOutput[] = [];
    for (const s of this.statuses()) {
      if (s.status === null) continue;
      out.push({
        url: s.url,
        ...(s.name !== undefined ? { name: s.name } : {}),
        status: s.status,
        ...(s.error !== undefined ? { error: s.error } : {}),
      });
    }
    return out;
  }

  /** Stops every destination (each reports `stopped`). Idempotent. */
  close(): void {
    if (this.#closed) return;
    for (const url of [...this.#entries.keys()]) this.#remove(url);
    this.#closed = true;
    this.#entries.clear();
  }

  #add(url: string, name: string | undefined, refused: RelayError | undefined): Entry {
    const options: RestreamPusherOptions = {
      backoffMs: this.#options.backoffMs,
      maxQueueBytes: this.#options.maxQueueBytes,
      maxQueueSeconds: this.#options.maxQueueSeconds,
      stallTimeoutMs: this.#options.stallTimeoutMs,
      stableAfterMs: this.#options.stableAfterMs,
      publisher: this.#options.publisher,
      destination: { url, name },
      log: this.#log,
      ...(refused ? { refused } : {}),
    };
    const pusher = this.#options.createPusher?.(options) ?? new RestreamPusher(options);
    const onStatus = (status: PusherStatus): void => {
      this.safeEmit('status', status);
    };
    pusher.on('status', onStatus);
    // An invalid pusher knows its status at once: report it.
    if (pusher.state === 'invalid') this.safeEmit('status', pusher.status());
    return { pusher, detach: () => pusher.off('status', onStatus) };
  }

  #remove(url: string): void {
    const entry = this.#entries.get(url);
    if (!entry) return;
    this.#entries.delete(url);
    this.#guard(entry.pusher, () => entry.pusher.close()); // reports `stopped` through the listener
    entry.detach();
  }

  #guard(pusher: RestreamPusher, fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.#onPusherError(pusher, err);
    }
  }

  #onPusherError(pusher: RestreamPusher, err: unknown): void {
    this.#pusherErrors++;
    const now = Date.now();
    if (now - this.#lastWarn < WARN_INTERVAL_MS) return;
    this.#lastWarn = now;
    this.#log.error({ err, destination: pusher.url, total: this.#pusherErrors }, 'a restream pusher threw');
  }
}
