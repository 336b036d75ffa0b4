/**
 * Where a recording's objects live in a store, and the names that may appear in a recording URL: the one
 * place keys are built, so nothing from a request becomes a key unchecked. Layout under the store's root:
 *
 *   {userPath}/{streamId}/{recordingId}/parts/{partId}.json     one manifest per relay that wrote media
 *   {userPath}/{streamId}/{recordingId}/{partId}/init{n}.mp4    init segments of that part
 *   {userPath}/{streamId}/{recordingId}/{partId}/seg{n}.m4s     fragments, grouped into ≤ 10 s objects
 *   {userPath}/{streamId}/{recordingId}/{partId}/thumbnail.jpg  the part's last thumbnail
 *   streams/{streamId}.json                                     streamId → userPath (the cloud's listing)
 *
 * A recording is one stream life: its id is the stream's start (ms, the cloud's for a managed stream, so a
 * stream that moved relays writes into the same recording); each relay incarnation that recorded part of it
 * writes its own part manifest, so two relays never rewrite one object.
 */
import { isValidStreamId } from '../contracts/names.ts';

/** userPath: a userId with `@` written as `-` (no separators, never `..`). */
export const USER_PATH_PATTERN = /^(?!\.)(?!.*\.\.)[A-Za-z0-9._+-]{1,128}$/;
/** A recording id: `r` + the stream's start in ms since the epoch. */
export const RECORDING_ID_PATTERN = /^r\d{13,15}$/;
/** A part id: random hex, one per relay incarnation of a stream. */
export const PART_ID_PATTERN = /^[0-9a-f]{16}$/;
/** Media object names inside a part. */
export const MEDIA_FILE_PATTERN = /^(init\d{1,9}\.mp4|seg\d{1,9}\.m4s|thumbnail\.jpg)$/;

export const recordingIdOf = (startedAtMs: number): string => `r${Math.floor(startedAtMs)}`;
export const startOfRecordingId = (id: string): number => Number(id.slice(1));

export const isValidUserPath = (v: string): boolean => USER_PATH_PATTERN.test(v);
export const isValidRecordingId = (v: string): boolean => RECORDING_ID_PATTERN.test(v);
export const isValidPartId = (v: string): boolean => PART_ID_PATTERN.test(v);
export const isValidMediaFile = (v: string): boolean => MEDIA_FILE_PATTERN.test(v);

/** The identity of a recording. */
export interface RecordingRef {
  userPath: string;
  streamId: string;
  recordingId: string;
}

export function checkRef(ref: RecordingRef): RecordingRef {
  if (
    !isValidUserPath(ref.userPath) ||
    !isValidStreamId(ref.streamId) ||
    !isValidRecordingId(ref.recordingId)
  )
    throw new Error('invalid recording reference');
  return ref;
}

export const streamPrefix = (userPath: string, streamId: string): string => {
  if (!isValidUserPath(userPath) || !isValidStreamId(streamId)) throw new Error('invalid stream reference');
  return `${userPath}/${streamId}/`;
};
export const recordingPrefix = (r: RecordingRef): string =>
  `${streamPrefix(r.userPath, r.streamId)}${checkRef(r).recordingId}/`;
export const partManifestKey = (r: RecordingRef, partId: string): string => {
  if (!isValidPartId(partId)) throw new Error('invalid part id');
  return `${recordingPrefix(r)}parts/${partId}.json`;
};
export const mediaKey = (r: RecordingRef, partId: string, file: string): string => {
  if (!isValidPartId(partId) || !isValidMediaFile(file)) throw new Error('invalid media name');
  return `${recordingPrefix(r)}${partId}/${file}`;
};
export const streamIndexKey = (streamId: string): string => {
  if (!isValidStreamId(streamId)) throw new Error('invalid streamId');
  return `streams/${streamId}.json`;
};

export const initFile = (n: number): string => `init${n}.mp4`;
export const segmentFile = (n: number): string => `seg${n}.m4s`;
export const THUMBNAIL_FILE = 'thumbnail.jpg';
