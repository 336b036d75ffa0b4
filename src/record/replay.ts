/**
 * Reading recordings back from a store: a stream's part manifests, one recording's parts, and the MP4 of a
 * recording as a stream of bytes (init + shifted fragments, see mp4.ts). Used by the replay routes of every
 * relay and by the cloud; nothing here holds state, so any process with the store's configuration can serve.
 */
import { Readable } from 'node:stream';
import {
  initFile,
  mediaKey,
  type RecordingRef,
  recordingPrefix,
  segmentFile,
  streamPrefix,
} from './layout.ts';
import { PartManifest } from './manifest.ts';
import { planMp4, shiftTfdt } from './mp4.ts';
import type { RecordingStore } from './store.ts';

/** Most part manifests read for one listing (a stream recorded by more relays than this is cut short). */
const MAX_PARTS = 2000;

/** Part manifests, and the recordings one of whose manifests could not be read now (not known complete). */
export interface Manifests {
  parts: PartManifest[];
  unreadable: Set<string>;
}

async function readManifests(store: RecordingStore, keys: string[]): Promise<Manifests> {
  const out: Manifests = { parts: [], unreadable: new Set() };
  for (const key of keys.slice(0, MAX_PARTS)) {
    let body: Buffer | null;
    try {
      body = await store.get(key);
    } catch {
      // An object being written, or a store hiccup: that recording is listed as not complete yet.
      out.unreadable.add(key.split('/')[2] ?? '');
      continue;
    }
    if (!body) continue; // deleted meanwhile (retention)
    const parsed = PartManifest.safeParse(parseJson(body));
    if (parsed.success) out.parts.push(parsed.data);
    else out.unreadable.add(key.split('/')[2] ?? '');
  }
  return out;
}

/** JSON, or undefined for bytes that are not (a store that shows an object while it is being written). */
export function parseJson(body: Buffer): unknown {
  try {
    return JSON.parse(body.toString('utf8'));
  } catch {
    return undefined; // read again at the next listing
  }
}

const isManifestKey = (key: string): boolean => /\/parts\/[0-9a-f]{16}\.json$/.test(key);

/** Every part manifest of every recording of a stream. */
export async function streamManifests(
  store: RecordingStore,
  userPath: string,
  streamId: string,
): Promise<Manifests> {
  const objects = await store.list(streamPrefix(userPath, streamId));
  return readManifests(store, objects.map((o) => o.key).filter(isManifestKey));
}

/** The part manifests of one recording. */
export async function recordingManifests(store: RecordingStore, ref: RecordingRef): Promise<Manifests> {
  const objects = await store.list(`${recordingPrefix(ref)}parts/`);
  return readManifests(store, objects.map((o) => o.key).filter(isManifestKey));
}

export interface Mp4Download {
  size: number;
  /** Segments left out (an init unlike the first). */
  skipped: number;
  stream: Readable;
}

/** The recording as one MP4 (null when it has no media yet). */
export async function recordingMp4(
  store: RecordingStore,
  ref: RecordingRef,
  parts: readonly PartManifest[],
): Promise<Mp4Download | null> {
  const inits = new Map<string, Buffer | null>();
  const initOf = async (partId: string, n: number): Promise<Buffer | null> => {
    const key = mediaKey(ref, partId, initFile(n));
    if (!inits.has(key)) inits.set(key, await store.get(key));
    return inits.get(key) ?? null;
  };
  for (const p of parts) for (const s of p.segments) await initOf(p.partId, s.init);
  const firstPlan = planMp4(parts, () => true);
  if (!firstPlan.init) return null;
  const first = await initOf(firstPlan.init.partId, firstPlan.init.n);
  if (!first) return null;
  const plan = planMp4(parts, (partId, n) => {
    const init = inits.get(mediaKey(ref, partId, initFile(n)));
    return init?.equals(first) === true;
  });
  const size = first.length + plan.pieces.reduce((sum, p) => sum + p.segment.bytes, 0);
  async function* bytes(): AsyncGenerator<Buffer> {
    yield first!;
    for (const piece of plan.pieces) {
      const data = await store.get(mediaKey(ref, piece.partId, segmentFile(piece.segment.n)));
      if (!data) throw new Error('a recorded segment is missing from the store');
      yield shiftTfdt(data, piece.shift);
    }
  }
  return { size, skipped: plan.skipped, stream: Readable.from(bytes()) };
}
