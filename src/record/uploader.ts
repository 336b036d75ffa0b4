/**
 * Moves spooled parts to the store in the background: for each part, in order, the init a segment needs,
 * the segment, then the part's manifest (which only ever names uploaded objects), and finally, once the part
 * is closed and everything is up, its spool directory goes. A failed call leaves the part as it was and
 * retries after a pause that doubles up to a ceiling (a store down for a while costs pauses, never media
 * that fit the spool). At most `concurrency` parts upload at once. Nothing here is awaited by the stream.
 */
import type { Logger } from '../shared/logger.ts';
import {
  initFile,
  mediaKey,
  partManifestKey,
  type RecordingRef,
  segmentFile,
  streamIndexKey,
  THUMBNAIL_FILE,
} from './layout.ts';
import type { PartManifest } from './manifest.ts';
import type { Spool, SpoolState } from './spool.ts';
import type { RecordingStore } from './store.ts';

export interface UploaderOptions {
  store: RecordingStore;
  spool: Spool;
  log: Logger;
  /** Pause after a failure: first and most, ms (default 500 ms, 30 s). */
  retryMs?: { first: number; max: number };
  concurrency?: number;
  now?: () => number;
}

/** One part being uploaded: its spool state, changed only through `run` (one change at a time). */
export class UploadPart {
  readonly state: SpoolState;
  readonly ref: RecordingRef;
  #chain: Promise<void> = Promise.resolve();
  busy = false;
  retryAt = 0;
  pause = 0;
  indexUploaded = false;
  /** Closed, uploaded, and gone from the spool. */
  done = false;
  /** Called when the part is closed and uploaded (its spool is gone). */
  onDone: (() => void) | null = null;

  constructor(state: SpoolState) {
    this.state = state;
    const m = state.manifest;
    this.ref = { userPath: m.userPath, streamId: m.streamId, recordingId: m.recordingId };
  }

  get partId(): string {
    return this.state.manifest.partId;
  }

  /** Runs `fn` after every change queued before it. */
  run(fn: () => Promise<void>): Promise<void> {
    const next = this.#chain.then(fn);
    this.#chain = next.catch(() => {});
    return next;
  }

  get hasWork(): boolean {
    const s = this.state;
    if (this.done) return false;
    return (
      s.uploadedSegments < s.manifest.segments.length ||
      (s.manifest.thumbnail && !s.thumbnailUploaded) ||
      !s.manifestUploaded ||
      s.manifest.closed
    );
  }
}

export class Uploader {
  readonly #o: UploaderOptions;
  readonly #log: Logger;
  readonly #parts = new Map<string, UploadPart>();
  readonly #now: () => number;
  #timer: NodeJS.Timeout | null = null;
  #closed = false;
  #active = 0;
  /** For metrics and tests. */
  readonly stats = { uploadedObjects: 0, uploadedBytes: 0, failures: 0, partsDone: 0 };
  #lastFailureLog = 0;

  constructor(options: UploaderOptions) {
    this.#o = options;
    this.#log = options.log.child({ component: 'recording-upload' });
    this.#now = options.now ?? Date.now;
  }

  get parts(): UploadPart[] {
    return [...this.#parts.values()];
  }

  /** Bytes and parts waiting for the store. */
  get pending(): { parts: number; segments: number } {
    let segments = 0;
    for (const p of this.#parts.values())
      segments += p.state.manifest.segments.length - p.state.uploadedSegments;
    return { parts: this.#parts.size, segments };
  }

  add(part: UploadPart): void {
    this.#parts.set(part.partId, part);
    this.kick();
  }

  /** Something changed: upload what can be. */
  kick(): void {
    if (this.#closed) return;
    const limit = this.#o.concurrency ?? 4;
    const now = this.#now();
    let nextRetry = Number.POSITIVE_INFINITY;
    for (const part of this.#parts.values()) {
      if (this.#active >= limit) break;
      if (part.busy || !part.hasWork) continue;
      if (part.retryAt > now) {
        nextRetry = Math.min(nextRetry, part.retryAt);
        continue;
      }
      part.busy = true;
      this.#active++;
      void this.#drive(part).finally(() => {
        part.busy = false;
        this.#active--;
        this.kick();
      });
    }
    if (nextRetry !== Number.POSITIVE_INFINITY && !this.#timer) {
      this.#timer = setTimeout(
        () => {
          this.#timer = null;
          this.kick();
        },
        Math.max(10, nextRetry - now),
      );
    }
  }

  /** Uploads the part's next steps until it has none or one fails. */
  async #drive(part: UploadPart): Promise<void> {
    try {
      while (!this.#closed && part.hasWork) {
        await part.run(() => this.#step(part));
      }
      part.pause = 0;
    } catch (err) {
      this.stats.failures++;
      const retry = this.#o.retryMs ?? { first: 500, max: 30_000 };
      part.pause = Math.min(retry.max, part.pause ? part.pause * 2 : retry.first);
      part.retryAt = this.#now() + part.pause;
      // Once per 10 s at most: a store down for an hour must not flood the log.
      if (this.#now() - this.#lastFailureLog > 10_000) {
        this.#lastFailureLog = this.#now();
        this.#log.warn(
          {
            err: (err as Error).message,
            store: this.#o.store.description,
            retryInMs: part.pause,
            ...this.pending,
          },
          'recording upload failed: kept in the spool, retrying',
        );
      }
    }
  }

  /** One upload step of the part (inside its chain). */
  async #step(part: UploadPart): Promise<void> {
    const { store, spool } = this.#o;
    const s = part.state;
    const m = s.manifest;
    if (s.uploadedSegments < m.segments.length) {
      const seg = m.segments[s.uploadedSegments]!;
      if (!s.uploadedInits.includes(seg.init)) {
        const data = spool.readMedia(part.partId, initFile(seg.init));
        await store.put(mediaKey(part.ref, part.partId, initFile(seg.init)), data, 'video/mp4');
        this.#count(data.length);
        s.uploadedInits.push(seg.init);
        await spool.writeState(s);
      }
      const file = segmentFile(seg.n);
      const data = spool.readMedia(part.partId, file);
      await store.put(mediaKey(part.ref, part.partId, file), data, 'video/iso.segment');
      this.#count(data.length);
      s.uploadedSegments++;
      s.manifestUploaded = false;
      await spool.writeState(s);
      await spool.removeMedia(part.partId, file);
      spool.release(data.length);
      return;
    }
    if (m.thumbnail && !s.thumbnailUploaded) {
      const data = spool.readMedia(part.partId, THUMBNAIL_FILE);
      await store.put(mediaKey(part.ref, part.partId, THUMBNAIL_FILE), data, 'image/jpeg');
      this.#count(data.length);
      s.thumbnailUploaded = true;
      s.manifestUploaded = false;
      await spool.writeState(s);
      return;
    }
    if (!s.manifestUploaded) {
      if (!part.indexUploaded) {
        // streamId → userPath, so the cloud finds a managed stream's recordings from its id alone.
        const index = JSON.stringify({ userId: m.userId, userPath: m.userPath, streamId: m.streamId });
        await store.put(streamIndexKey(m.streamId), Buffer.from(index), 'application/json');
        part.indexUploaded = true;
      }
      const uploaded: PartManifest = {
        ...m,
        updatedAt: this.#now(),
        segments: m.segments.slice(0, s.uploadedSegments),
        thumbnail: s.thumbnailUploaded,
      };
      await store.put(
        partManifestKey(part.ref, part.partId),
        Buffer.from(JSON.stringify(uploaded)),
        'application/json',
      );
      this.#count(0);
      s.manifestUploaded = true;
      await spool.writeState(s);
      return;
    }
    if (m.closed) {
      // Everything is up and the manifest says closed: the spool forgets the part.
      spool.removePart(part.partId);
      part.done = true;
      this.#parts.delete(part.partId);
      this.stats.partsDone++;
      part.onDone?.();
    }
  }

  #count(bytes: number): void {
    this.stats.uploadedObjects++;
    this.stats.uploadedBytes += bytes;
  }

  /** Waits until every part is uploaded, or `timeoutMs` passes; true when nothing is left. */
  async flush(timeoutMs: number): Promise<boolean> {
    const deadline = this.#now() + timeoutMs;
    while (this.#parts.size > 0 && this.#now() < deadline && !this.#closed) {
      for (const p of this.#parts.values()) p.retryAt = Math.min(p.retryAt, this.#now());
      this.kick();
      await new Promise((r) => setTimeout(r, 100));
    }
    return this.#parts.size === 0;
  }

  close(): void {
    this.#closed = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
  }
}
