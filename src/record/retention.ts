/**
 * Retention (RECORDING_RETENTION_DAYS): recordings that ended longer ago than that are deleted completely,
 * every object under the recording's prefix (media, thumbnails, manifests), and the stream's index entry
 * once the stream has no recording left: nothing of a deleted recording stays behind. Runs at start and
 * then every `intervalMs` on every relay (deletes are idempotent); a sweep that fails is logged and tried
 * at the next.
 */
import type { Logger } from '../shared/logger.ts';
import { type RecordingRef, recordingPrefix, streamIndexKey, streamPrefix } from './layout.ts';
import { PartManifest, partClosed } from './manifest.ts';
import { parseJson } from './replay.ts';
import type { RecordingStore } from './store.ts';

export interface RetentionOptions {
  store: RecordingStore;
  days: number;
  log: Logger;
  /** Default 1 h. */
  intervalMs?: number;
  now?: () => number;
}

export class Retention {
  readonly #o: RetentionOptions;
  readonly #log: Logger;
  readonly #now: () => number;
  #timer: NodeJS.Timeout | null = null;
  #running: Promise<number> | null = null;
  #closed = false;

  constructor(options: RetentionOptions) {
    this.#o = options;
    this.#log = options.log.child({ component: 'recording-retention' });
    this.#now = options.now ?? Date.now;
  }

  start(): void {
    if (this.#closed || this.#timer) return;
    void this.sweep();
    this.#timer = setInterval(() => void this.sweep(), this.#o.intervalMs ?? 3_600_000);
    this.#timer.unref();
  }

  /** Deletes every recording past retention; resolves with how many. One sweep at a time. */
  sweep(): Promise<number> {
    if (!this.#running) {
      this.#running = this.#sweep()
        .catch((err: Error) => {
          this.#log.warn({ err: err.message }, 'recording retention sweep failed; next one later');
          return 0;
        })
        .finally(() => {
          this.#running = null;
        });
    }
    return this.#running;
  }

  async #sweep(): Promise<number> {
    const { store } = this.#o;
    const now = this.#now();
    const cutoff = now - this.#o.days * 86_400_000;
    const objects = await store.list('');
    /** recording prefix → its newest end, and whether every part is closed. */
    const recordings = new Map<string, { ref: RecordingRef; end: number; closed: boolean }>();
    for (const o of objects) {
      if (!/\/parts\/[0-9a-f]{16}\.json$/.test(o.key)) continue;
      const body = await store.get(o.key);
      if (!body) continue;
      const parsed = PartManifest.safeParse(parseJson(body));
      if (!parsed.success) continue;
      const m = parsed.data;
      const ref = { userPath: m.userPath, streamId: m.streamId, recordingId: m.recordingId };
      const prefix = recordingPrefix(ref);
      if (!o.key.startsWith(prefix)) continue; // a manifest that names another place: not trusted
      const r = recordings.get(prefix) ?? { ref, end: 0, closed: true };
      r.end = Math.max(r.end, m.endedAt ?? m.updatedAt);
      r.closed &&= partClosed(m, now);
      recordings.set(prefix, r);
    }
    let deleted = 0;
    const touched = new Set<string>();
    for (const [prefix, r] of recordings) {
      if (!r.closed || r.end >= cutoff) continue;
      // Media first, manifests last: a sweep cut short leaves a listed recording, never an unlisted orphan.
      const keys = objects.map((o) => o.key).filter((k) => k.startsWith(prefix));
      await store.delete(keys.filter((k) => !k.includes('/parts/')));
      await store.delete(keys.filter((k) => k.includes('/parts/')));
      deleted++;
      touched.add(`${r.ref.userPath}\n${r.ref.streamId}`);
      this.#log.info({ recording: prefix, objects: keys.length }, 'recording past retention deleted');
    }
    for (const t of touched) {
      const [userPath, streamId] = t.split('\n') as [string, string];
      const left = await store.list(streamPrefix(userPath, streamId));
      if (left.length === 0) await store.delete([streamIndexKey(streamId)]);
    }
    return deleted;
  }

  close(): void {
    this.#closed = true;
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
  }
}
