/**
 * The apps' REST surface for managed streams (architecture §3), as a fastify plugin:
 * `POST /api/managed-streams` {userId, packageName, …options} (join or create), `GET /api/managed-streams/:id`,
 * `DELETE /api/managed-streams/:id/viewers/:packageName`, `GET /api/managed-streams/:id/events` (server-sent
 * events, one `managed_stream_status` JSON per event, until the stream ends or the client goes), and the
 * shareable `GET /watch/:id/index.m3u8` (a 302 with CORS to wherever the stream is served now, with a fresh
 * playback token in it when PLAYBACK_AUTH=token).
 * Everything but `/watch` (a link meant to be shared) needs the stream's user (a bearer token). `/watch` is
 * open while playback tokens are off; with them on it redirects only a caller who may watch: the stream's
 * user (a user token) or the holder of a playback token for that stream (401 with neither, 403 with a token
 * that grants nothing here, an unknown stream included, so ids cannot be probed). An unknown
 * stream and another user's stream answer the same 404, so ids cannot be probed. The event stream sends a
 * comment every `sseKeepAliveMs` while idle (proxies cut silent connections at 60 s, Node's fetch at 300 s)
 * and is ended when its client stops reading (more than SSE_MAX_BUFFERED bytes waiting).
 * Every route has zod schemas (http-schemas.ts): a malformed id, package name, query or body is a 400 before
 * any lookup (it names no stream, so it tells nothing about which exist); answers are the contract's
 * `managed_stream_status` and nothing more; errors are the envelope with the registry's status.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { ManagedStreamRequest, ManagedStreamStatus } from '../contracts/mentra.ts';
import { hlsUserPath } from '../contracts/names.ts';
import { UserId } from '../contracts/relay-api.ts';
import { streamIndexKey } from '../record/layout.ts';
import { summarize } from '../record/manifest.ts';
import { parseJson, streamManifests } from '../record/replay.ts';
import type { RecordingStore } from '../record/store.ts';
import { ErrorCodes } from '../shared/errors.ts';
import type { Logger } from '../shared/logger.ts';
import type { PlaybackTokenVerifier } from '../shared/playback-token.ts';
import { cloudErrorHandler, ERROR_RESPONSES, OkResponse, sendError, useZodSchemas } from './http-schemas.ts';
import { ManagedStreamError, type ManagedStreams } from './managed-streams.ts';

export interface ManagedRoutesOptions {
  streams: ManagedStreams;
  /** The userId the request may act for (a bearer token), or null; dev mode trusts the body. */
  authenticate(request: FastifyRequest, claimedUserId: string): Promise<boolean>;
  /**
   * The recordings store (RECORDING_URL, the relays' own), which the listing reads, and the origin base whose
   * /recordings routes serve the replays (the CDN, or any live relay: each reads the same store).
   */
  recordings?: { store: RecordingStore; base: () => Promise<string | null> };
  /** Where requests that fail unexpectedly are told. */
  log?: Logger | undefined;
  /** Comment keep-alives on idle event streams (SSE_KEEPALIVE_SECONDS; default 15 s). */
  sseKeepAliveMs?: number;
  /** PLAYBACK_AUTH=token: `/watch` redirects only the stream's user or a playback token's holder. */
  playbackVerifier?: PlaybackTokenVerifier | null;
}

/** An event stream whose client lets this much pile up is ended (it reconnects and gets the status). */
export const SSE_MAX_BUFFERED = 256 * 1024;
export const DEFAULT_SSE_KEEPALIVE_MS = 15_000;

const CreateBody = ManagedStreamRequest.omit({ type: true }).extend({ userId: UserId });
/** Managed stream ids are the cloud's own (8 base64url-free characters today; room to grow). */
const ManagedStreamId = z.string().regex(/^[A-Za-z0-9]{1,32}$/);
const StreamParams = z.object({ streamId: ManagedStreamId });
const ViewerParams = z.object({
  streamId: ManagedStreamId,
  packageName: z.string().regex(/^[A-Za-z0-9._-]{1,256}$/),
});
/** A user token may ride in the query (EventSource and players cannot set headers); nothing else is read. */
export const TokenQuery = z.object({ token: z.string().max(4096).optional() });
type StreamRequest = { Params: z.infer<typeof StreamParams> };
const RecordingsResponse = z.object({
  recordings: z.array(
    z.object({
      id: z.string(),
      state: z.enum(['uploading', 'ready']),
      startedAt: z.string(),
      endedAt: z.string().nullable(),
      durationSeconds: z.number(),
      hlsUrl: z.string(),
      mp4Url: z.string(),
      thumbnailUrl: z.string().nullable(),
    }),
  ),
});
/** `streams/{streamId}.json` in the recordings store. */
const StreamIndex = z.object({ userId: UserId });

export async function managedRoutes(app: FastifyInstance, options: ManagedRoutesOptions): Promise<void> {
  const { streams } = options;
  useZodSchemas(app);
  app.setErrorHandler(cloudErrorHandler(ErrorCodes.CLOUD_BAD_REQUEST, options.log));

  app.post<{ Body: z.infer<typeof CreateBody> }>(
    '/api/managed-streams',
    { schema: { body: CreateBody, response: { 200: ManagedStreamStatus, ...ERROR_RESPONSES } } },
    async (request, reply) => {
      const { body } = request;
      if (!(await options.authenticate(request, body.userId)))
        return sendError(reply, ErrorCodes.CLOUD_UNAUTHORIZED, 'unauthorized');
      try {
        return await streams.request(body.userId, body.packageName, body.restreamDestinations ?? [], {
          recording: body.recording?.mode,
        });
      } catch (err) {
        if (err instanceof ManagedStreamError) return sendError(reply, err.code, err.message);
        throw err;
      }
    },
  );

  app.get<StreamRequest>(
    '/api/managed-streams/:streamId',
    {
      schema: {
        params: StreamParams,
        querystring: TokenQuery,
        response: { 200: ManagedStreamStatus, ...ERROR_RESPONSES },
      },
    },
    async (request, reply) => {
      const stream = await streams.load(request.params.streamId);
      if (!stream || !(await options.authenticate(request, stream.userId)))
        return sendError(reply, ErrorCodes.MANAGED_STREAM_NOT_FOUND, 'no such stream');
      return streams.statusOf(stream);
    },
  );

  app.delete<{ Params: z.infer<typeof ViewerParams> }>(
    '/api/managed-streams/:streamId/viewers/:packageName',
    {
      schema: {
        params: ViewerParams,
        querystring: TokenQuery,
        response: { 200: OkResponse, ...ERROR_RESPONSES },
      },
    },
    async (request, reply) => {
      const stream = await streams.load(request.params.streamId);
      if (!stream) return sendError(reply, ErrorCodes.MANAGED_STREAM_NOT_FOUND, 'no such stream');
      if (!(await options.authenticate(request, stream.userId)))
        return sendError(reply, ErrorCodes.CLOUD_UNAUTHORIZED, 'unauthorized');
      await streams.stop(stream.userId, request.params.packageName);
      return { ok: true as const };
    },
  );

  // The 200 is an event stream written by hand (one ManagedStreamStatus per event), so only errors have a schema.
  app.get<StreamRequest>(
    '/api/managed-streams/:streamId/events',
    { schema: { params: StreamParams, querystring: TokenQuery, response: ERROR_RESPONSES } },
    async (request, reply) => {
      const stream = await streams.load(request.params.streamId);
      if (!stream || !(await options.authenticate(request, stream.userId)))
        return sendError(reply, ErrorCodes.MANAGED_STREAM_NOT_FOUND, 'no such stream');
      reply.hijack();
      const res = reply.raw;
      res.writeHead(200, {
        'content-type': 'text/event-stream',
        'cache-control': 'no-cache',
        connection: 'keep-alive',
        'access-control-allow-origin': '*',
      });
      let ended = false;
      /** Writes unless the client stopped reading; then the stream is ended (the client reconnects). */
      const write = (text: string): void => {
        if (ended) return;
        if (res.writableLength > SSE_MAX_BUFFERED) return done();
        res.write(text);
      };
      const send = (status: ManagedStreamStatus): void => {
        // Through the contract like every other answer: only its fields go out. One that breaks it is a
        // bug; the stream ends rather than send it (the client reconnects and gets the current status).
        const parsed = ManagedStreamStatus.safeParse(status);
        if (!parsed.success) return done();
        write(`data: ${JSON.stringify(parsed.data)}\n\n`);
        if (status.status === 'stopped' || status.status === 'error') done();
      };
      const keepAlive = setInterval(
        () => write(': keep-alive\n\n'),
        options.sseKeepAliveMs ?? DEFAULT_SSE_KEEPALIVE_MS,
      );
      const onStatus = (who: { streamId: string }, status: ManagedStreamStatus): void => {
        if (who.streamId === stream.streamId) send(status);
      };
      // Owned by the request: released when the stream ends or the client goes.
      const done = (): void => {
        if (ended) return;
        ended = true;
        clearInterval(keepAlive);
        streams.off('status', onStatus);
        res.end();
      };
      streams.on('status', onStatus);
      res.once('close', done);
      send(streams.statusOf(stream));
    },
  );

  // The stream's recordings, from the store (so after the stream and its relay are gone too); the replay URLs
  // are this cloud's own /recordings routes, which read the same store.
  app.get<StreamRequest>(
    '/api/managed-streams/:streamId/recordings',
    {
      schema: {
        params: StreamParams,
        querystring: TokenQuery,
        response: { 200: RecordingsResponse, ...ERROR_RESPONSES },
      },
    },
    async (request, reply) => {
      const store = options.recordings?.store;
      const { streamId } = request.params;
      const stream = await streams.load(streamId);
      let owner = stream ? { userId: stream.userId, userPath: hlsUserPath(stream.userId) } : null;
      if (!owner && store) {
        // A stream the cloud forgot: the store's index names its user.
        const body = await store.get(streamIndexKey(streamId));
        const index = body ? StreamIndex.safeParse(parseJson(body)) : null;
        if (index?.success) owner = { userId: index.data.userId, userPath: hlsUserPath(index.data.userId) };
      }
      if (!owner || !(await options.authenticate(request, owner.userId)))
        return sendError(reply, ErrorCodes.MANAGED_STREAM_NOT_FOUND, 'no such stream');
      if (!store) return { recordings: [] };
      const { parts, unreadable } = await streamManifests(store, owner.userPath, streamId);
      const origin = (await options.recordings?.base())?.replace(/\/+$/, '') ?? '';
      const base = `${origin}/recordings/${owner.userPath}/${streamId}`;
      // The replay URLs play as the live ones do: with a playback token for this stream (when on).
      const token = streams.replayToken(owner.userId, streamId);
      const replayQuery = token ? `token=${encodeURIComponent(token)}` : '';
      return reply
        .header('cache-control', 'no-store')
        .send({ recordings: summarize(parts, base, Date.now(), replayQuery, unreadable) });
    },
  );

  // A 302 (no body) or an error.
  app.get<StreamRequest>(
    '/watch/:streamId/index.m3u8',
    { schema: { params: StreamParams, querystring: TokenQuery, response: ERROR_RESPONSES } },
    async (request, reply) => {
      reply.header('access-control-allow-origin', '*');
      const stream = await streams.load(request.params.streamId);
      const verify = options.playbackVerifier;
      if (verify) {
        const token = (request.query as { token?: string }).token;
        const bearer = request.headers.authorization?.startsWith('Bearer ');
        const allowed =
          stream !== undefined &&
          ((await options.authenticate(request, stream.userId)) ||
            (
              await verify(token, {
                userPath: hlsUserPath(stream.userId),
                streamId: stream.streamId,
              })
            ).allow);
        if (!allowed) {
          reply.header('cache-control', 'no-store');
          return token || bearer
            ? sendError(reply, ErrorCodes.PLAYBACK_FORBIDDEN, 'not allowed to watch this stream')
            : sendError(reply, ErrorCodes.PLAYBACK_UNAUTHORIZED, 'a user or playback token is required');
        }
      }
      const url = stream ? streams.statusOf(stream).hlsUrl : undefined;
      if (!url) return sendError(reply, ErrorCodes.MANAGED_STREAM_NOT_PLAYABLE, 'not playable now');
      return reply.header('cache-control', 'no-store').redirect(url, 302);
    },
  );
}
