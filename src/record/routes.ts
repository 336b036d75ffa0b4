/**
 * The replay routes (fastify plugin, registered on a relay's origin; `inject()` in tests), all read from
 * the store, so any relay answers for any stream and a stream that moved relays is one recording:
 *
 *   GET /recordings/{userPath}/{streamId}                         → {recordings: [RecordingSummary]}
 *   GET /recordings/{userPath}/{streamId}/{id}/index.m3u8         the replay playlist (VOD once ready)
 *   GET /recordings/{userPath}/{streamId}/{id}/recording.mp4      the whole recording as one MP4
 *   GET /recordings/{userPath}/{streamId}/{id}/thumbnail.jpg      the last thumbnail kept with it
 *   GET /recordings/{userPath}/{streamId}/{id}/{part}/{file}      inits and segments the playlist names
 *
 * Every parameter is checked against the naming patterns before it becomes a store key (a path for the
 * directory store): anything else is a 404. `authorize` (playback tokens) may refuse a request and may give
 * a query to append to every URL written (the token).
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { isValidStreamId } from '../contracts/names.ts';
import {
  isValidMediaFile,
  isValidPartId,
  isValidRecordingId,
  isValidUserPath,
  mediaKey,
  type RecordingRef,
  THUMBNAIL_FILE,
} from './layout.ts';
import { orderParts, partClosed, renderReplayPlaylist, summarize } from './manifest.ts';
import { recordingManifests, recordingMp4, streamManifests } from './replay.ts';
import type { RecordingStore } from './store.ts';

export interface RecordingTarget {
  userPath: string;
  streamId: string;
  /** Absent for the listing. */
  recordingId?: string;
}

/** A refusal (401/403), or permission with a query to append to the URLs written (a token). */
export type RecordingAuthorization = { ok: true; query?: string } | { ok: false; status: 401 | 403 };

export interface RecordingRoutesOptions {
  store: RecordingStore;
  authorize?: (
    request: FastifyRequest,
    target: RecordingTarget,
  ) => Promise<RecordingAuthorization> | RecordingAuthorization;
  /** The base of URLs in listings (HLS_PUBLIC_BASE_URL); default: the request's own host. */
  publicBase?: string;
  now?: () => number;
}

const PLAYLIST_TYPE = 'application/vnd.apple.mpegurl';

const paramsSchema = (names: string[]) => ({
  type: 'object',
  required: names,
  properties: Object.fromEntries(names.map((n) => [n, { type: 'string', maxLength: 128 }])),
});

type Params = { userPath: string; streamId: string; id?: string; part?: string; file?: string };

export function buildRecordingRoutes(options: RecordingRoutesOptions) {
  const { store } = options;
  const now = options.now ?? Date.now;
  return async function recordingRoutes(app: FastifyInstance): Promise<void> {
    const notFound = (reply: FastifyReply): FastifyReply =>
      reply.code(404).header('cache-control', 'no-store').send({ error: 'not found' });

    /** Checks names and asks `authorize`; null when the reply was sent. */
    const admit = async (
      request: FastifyRequest<{ Params: Params }>,
      reply: FastifyReply,
    ): Promise<{ ref: RecordingRef | null; target: RecordingTarget; query: string } | null> => {
      const { userPath, streamId, id } = request.params;
      if (
        !isValidUserPath(userPath) ||
        !isValidStreamId(streamId) ||
        (id !== undefined && !isValidRecordingId(id))
      ) {
        notFound(reply);
        return null;
      }
      const target: RecordingTarget = {
        userPath,
        streamId,
        ...(id !== undefined ? { recordingId: id } : {}),
      };
      const auth = options.authorize ? await options.authorize(request, target) : { ok: true as const };
      if (!auth.ok) {
        reply.code(auth.status).header('cache-control', 'no-store').send({ error: 'not allowed' });
        return null;
      }
      const ref = id !== undefined ? { userPath, streamId, recordingId: id } : null;
      return { ref, target, query: auth.query ?? '' };
    };

    const baseOf = (request: FastifyRequest, userPath: string, streamId: string): string => {
      const origin =
        options.publicBase?.replace(/\/+$/, '') ??
        `${request.protocol}://${request.headers.host ?? 'localhost'}`;
      return `${origin}/recordings/${userPath}/${streamId}`;
    };

    app.get<{ Params: Params }>(
      '/recordings/:userPath/:streamId',
      { schema: { params: paramsSchema(['userPath', 'streamId']) } },
      async (request, reply) => {
        const admitted = await admit(request, reply);
        if (!admitted) return reply;
        const { userPath, streamId } = request.params;
        const { parts, unreadable } = await streamManifests(store, userPath, streamId);
        const base = baseOf(request, userPath, streamId);
        const recordings = summarize(parts, base, now(), admitted.query, unreadable);
        return reply.header('cache-control', 'no-store').send({ recordings });
      },
    );

    app.get<{ Params: Params }>(
      '/recordings/:userPath/:streamId/:id/index.m3u8',
      { schema: { params: paramsSchema(['userPath', 'streamId', 'id']) } },
      async (request, reply) => {
        const admitted = await admit(request, reply);
        if (!admitted?.ref) return reply;
        const { parts, unreadable } = await recordingManifests(store, admitted.ref);
        if (parts.length === 0) return notFound(reply);
        const ready = unreadable.size === 0 && parts.every((p) => partClosed(p, now()));
        return (
          reply
            .header('content-type', PLAYLIST_TYPE)
            // A ready recording never changes; one still uploading grows.
            .header('cache-control', ready ? 'public, max-age=3600' : 'no-store')
            .send(renderReplayPlaylist(parts, ready, admitted.query))
        );
      },
    );

    app.get<{ Params: Params }>(
      '/recordings/:userPath/:streamId/:id/recording.mp4',
      { schema: { params: paramsSchema(['userPath', 'streamId', 'id']) } },
      async (request, reply) => {
        const admitted = await admit(request, reply);
        if (!admitted?.ref) return reply;
        const { parts, unreadable } = await recordingManifests(store, admitted.ref);
        const mp4 = parts.length > 0 ? await recordingMp4(store, admitted.ref, parts) : null;
        if (!mp4) return notFound(reply);
        const ready = unreadable.size === 0 && parts.every((p) => partClosed(p, now()));
        return reply
          .header('content-type', 'video/mp4')
          .header('content-length', String(mp4.size))
          .header(
            'content-disposition',
            `attachment; filename="${admitted.ref.streamId}-${admitted.ref.recordingId}.mp4"`,
          )
          .header('cache-control', ready ? 'public, max-age=3600' : 'no-store')
          .send(mp4.stream);
      },
    );

    app.get<{ Params: Params }>(
      `/recordings/:userPath/:streamId/:id/${THUMBNAIL_FILE}`,
      { schema: { params: paramsSchema(['userPath', 'streamId', 'id']) } },
      async (request, reply) => {
        const admitted = await admit(request, reply);
        if (!admitted?.ref) return reply;
        const { parts: all } = await recordingManifests(store, admitted.ref);
        const parts = orderParts(all).filter((p) => p.thumbnail);
        const last = parts.at(-1);
        const jpeg = last ? await store.get(mediaKey(admitted.ref, last.partId, THUMBNAIL_FILE)) : null;
        if (!jpeg) return notFound(reply);
        return reply
          .header('content-type', 'image/jpeg')
          .header('cache-control', 'public, max-age=60')
          .send(jpeg);
      },
    );

    app.get<{ Params: Params }>(
      '/recordings/:userPath/:streamId/:id/:part/:file',
      { schema: { params: paramsSchema(['userPath', 'streamId', 'id', 'part', 'file']) } },
      async (request, reply) => {
        const { part, file } = request.params;
        if (!part || !file || !isValidPartId(part) || !isValidMediaFile(file)) return notFound(reply);
        const admitted = await admit(request, reply);
        if (!admitted?.ref) return reply;
        const data = await store.get(mediaKey(admitted.ref, part, file));
        if (!data) return notFound(reply);
        const type = file.endsWith('.jpg')
          ? 'image/jpeg'
          : file.endsWith('.mp4')
            ? 'video/mp4'
            : 'video/iso.segment';
        // Objects never change once uploaded (names are unique per part).
        return reply
          .header('content-type', type)
          .header('cache-control', 'public, max-age=31536000, immutable')
          .send(data);
      },
    );
  };
}
