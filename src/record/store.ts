/**
 * What the recorder, the replay routes and retention need of an object store: put, get, list by prefix and
 * delete, keyed by the names of layout.ts. Two implementations: a directory (dir-store.ts) and S3 or an
 * S3-compatible server (s3-store.ts). `RECORDING_URL` picks one: `s3://BUCKET/PREFIX` or a directory.
 */
import type { Readable } from 'node:stream';

export interface StoredObject {
  key: string;
  size: number;
  /** ms since the epoch. */
  modifiedAt: number;
}

export interface RecordingStore {
  /** A description safe to log (no credentials). */
  readonly description: string;
  put(key: string, body: Buffer, contentType?: string): Promise<void>;
  /** The object's bytes, or null when there is none. */
  get(key: string): Promise<Buffer | null>;
  /** The object as a stream (large media), or null when there is none. */
  getStream(key: string): Promise<Readable | null>;
  /** Every object whose key starts with `prefix`, in key order. */
  list(prefix: string): Promise<StoredObject[]>;
  /** Deletes these objects (missing ones are fine). */
  delete(keys: readonly string[]): Promise<void>;
  close(): void;
}

export interface S3Location {
  bucket: string;
  /** Key prefix ('' or ending in '/'). */
  prefix: string;
}

/** `s3://BUCKET/PREFIX` → bucket and prefix; null for anything that is not an s3 URL (a directory). */
export function parseS3Url(url: string): S3Location | null {
  const m = /^s3:\/\/([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:\/(.*))?$/.exec(url);
  if (!m) {
    if (url.startsWith('s3://')) throw new Error(`RECORDING_URL ${url}: not s3://BUCKET/PREFIX`);
    return null;
  }
  const raw = (m[2] ?? '').replace(/\/+$/, '');
  const bad =
    raw !== '' &&
    (!/^[A-Za-z0-9._/-]+$/.test(raw) || raw.split('/').some((p) => p === '..' || p === '.' || p === ''));
  if (bad)
    throw new Error(
      `RECORDING_URL ${url}: the prefix may hold A-Z a-z 0-9 . _ - and /, no empty or dot segments`,
    );
  return { bucket: m[1]!, prefix: raw === '' ? '' : `${raw}/` };
}
