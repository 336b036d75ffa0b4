/**
 * The HLS origin (fastify, `build(opts)` + `inject()` in tests): playlists, init segments, media segments and
 * LL-HLS parts straight from the packagers in memory. Only names a packager made are served; a request never
 * becomes a file path. CORS on every response (errors and preflight included), short caching for playlists,
 * immutable caching for segments and parts (their names are unique per stream incarnation), ETags.
 *
 * Low-latency streams (rfc8216bis §6.2.5, §6.2.6):
 * - `_HLS_msn=M[&_HLS_part=P]` holds the playlist request until segment M (or part P of it) is listed, then
 *   answers with the whole playlist; `_HLS_part` without `_HLS_msn` or a malformed value is a 400, and so is
 *   a request too far ahead (`Packager.tooFarAhead`). Directives are ignored once the playlist has ENDLIST,
 *   and for classic streams.
 * - `_HLS_skip=YES|v2` answers with a delta update (EXT-X-SKIP) while the stream is live.
 * - A stream that just started answers its first plain playlist requests once complete segments after the
 *   first hold PART-HOLD-BACK of media (`Packager.startable`: where hls.js starts on parts without a stall),
 *   and never later than a second after the first segment is complete; answered before that rule holds,
 *   the playlist leaves the open segment's parts out (its preload hint names that segment's first part).
 * - A request for the part the preload hint names is held until that part exists, then sent whole.
 * Every hold is bounded (ParkedRequests): per stream and overall caps (503 when full), the longest wait
 * (three TARGETDURATIONs, at most 10 s; then 503, as §6.2.5.2 asks), the client leaving, the stream ending
 * (parked playlist requests get the final playlist, parked part requests a 404 unless the part came) and
 * the origin closing (preClose: 503 at once, so close() never waits on a held request).
 *
 * ABR streams (`lookupAbr`): `index.m3u8` is the multivariant playlist (404 until every rendition is
 * playable), `{rung}.m3u8` (e.g. `540p.m3u8`) each rendition's media playlist, with everything above
 * (blocking reload, delta updates, startable) per rendition plus EXT-X-RENDITION-REPORTs for the others, and
 * inits, segments and parts are found by their name's prefix, unique per rendition.
 *
 * Playback tokens (`playback`, PLAYBACK_AUTH=token): every request under /hls/ (playlists, inits, segments,
 * parts, blocking reloads) passes the guard first (401/403 otherwise), and a playlist answered to a request
 * that carried `?token=` lists every URI with it (segments, parts, the preload hint, EXT-X-MAP, rendition
 * reports, the multivariant's variants), appended to the rendered text at serve time. The token is never
 * logged (URLs in logs are redacted).
 *
 * Caching: the plain playlist `max-age=1`; a blocking answer is keyed by its query and stays true (it holds
 * what was asked for), so it may be cached for one TARGETDURATION; refusals and 404s of names that may exist
 * later (a playlist before the first segment, a part before it is made) `no-store`.
 */
import { createHash } from 'node:crypto';
import cors from '@fastify/cors';
import Fastify, { type FastifyInstance, type FastifyReply } from 'fastify';
import { isValidStreamId, STREAM_ID_PATTERN } from '../contracts/names.ts';
import { type Logger, redactUrl } from '../shared/logger.ts';
import { type PlaybackGuard, playbackQuery } from '../shared/playback-token.ts';
import type { Packager } from './packager.ts';
import { ParkedRequests, type ParkLimits } from './parked.ts';
import { type RenditionReport, withUriQuery } from './playlist.ts';

/**
 * An ABR stream's renditions, as the origin needs them: `index.m3u8` is the multivariant playlist, each
 * rendition's media playlist is `{rung}.m3u8`, and every init, segment and part belongs to one packager.
 */
export interface AbrSource {
  /** The multivariant playlist; null until every rendition is playable. */
  multivariant(): string | null;
  /** The packager behind a rendition playlist name (`540p.m3u8`). */
  rendition(file: string): Packager | undefined;
  /** The packager that made an init, segment or part name. */
  packagerFor(file: string): Packager | undefined;
  /** EXT-X-RENDITION-REPORT entries for the renditions other than `self`. */
  reports(self: Packager): RenditionReport[];
}

export interface OriginOptions {
  /** The packager serving /hls/{userPath}/{streamId}/, if any. */
  lookup(userPath: string, streamId: string): Packager | undefined;
  /** The renditions of an ABR stream at that path, if it is one (checked before `lookup`). */
  lookupAbr?(userPath: string, streamId: string): AbrSource | undefined;
  corsOrigins: '*' | string[];
  /** The playback-token check every /hls/ request passes (absent or `off`: none). */
  playback?: PlaybackGuard;
  log?: Logger;
  /** False while the relay takes no new streams (at capacity, draining): GET /ready answers 503. */
  ready?: () => boolean;
  /** Bounds of held requests (blocking reloads, preload-hinted parts). */
  blocking?: Partial<ParkLimits> & {
    /** Longest hold in ms; default three TARGETDURATIONs of the stream, at most MAX_HOLD_MS. */
    maxHoldMs?: number;
  };
}

export const PLAYLIST_TYPE = 'application/vnd.apple.mpegurl';
/** The longest a request is held by default (below the 10 s a player's first-byte timeout usually is). */
export const MAX_HOLD_MS = 10_000;
/** userPath: a userId with `@` written as `-`, so the same alphabet without `@`. */
const USER_PATH_PATTERN = /^(?!\.)(?!.*\.\.)[A-Za-z0-9._+-]{1,128}$/;
const FILE_PATTERN =
  /^(index\.m3u8|[1-9]\d{1,4}p\.m3u8|[0-9a-f]{8}-init\d{1,9}\.mp4|[0-9a-f]{8}-seg\d{1,15}\.m4s|[0-9a-f]{8}-part\d{1,15}\.m4s)$/;
const DECIMAL_INTEGER = /^\d{1,15}$/;
const NO_STORE = 'no-store';

interface HlsParams {
  userPath: string;
  streamId: string;
  file: string;
}

type Query = Record<string, string | string[] | undefined>;

/** `_HLS_msn` / `_HLS_part` as numbers; an error message for what §6.2.5.2 calls a bad request. */
function deliveryDirectives(query: Query): { msn?: number; part?: number } | { error: string } {
  const one = (name: string): string | undefined | null => {
    const v = query[name];
    return Array.isArray(v) ? null : v;
  };
  const msn = one('_HLS_msn');
  const part = one('_HLS_part');
  if (msn === null || part === null) return { error: 'repeated delivery directive' };
  if (part !== undefined && msn === undefined) return { error: '_HLS_part without _HLS_msn' };
  if (msn !== undefined && !DECIMAL_INTEGER.test(msn)) return { error: '_HLS_msn is not a decimal integer' };
  if (part !== undefined && !DECIMAL_INTEGER.test(part))
    return { error: '_HLS_part is not a decimal integer' };
  return {
    ...(msn !== undefined ? { msn: Number(msn) } : {}),
    ...(part !== undefined ? { part: Number(part) } : {}),
  };
}

const parkedByOrigin = new WeakMap<FastifyInstance, ParkedRequests>();

/** The requests an origin holds now (blocking reloads, hinted parts), for tests and metrics. */
export function heldRequests(origin: FastifyInstance): number {
  return parkedByOrigin.get(origin)?.size ?? 0;
}

export function buildOrigin(options: OriginOptions): FastifyInstance {
  // No fastify logger: a line per segment request would drown the relay's logs. Failures are logged below.
  const app: FastifyInstance = Fastify({ routerOptions: { maxParamLength: 200 } });
  const parked = new ParkedRequests(options.blocking);
  const holdMs = (packager: Packager): number =>
    options.blocking?.maxHoldMs ?? Math.min(3 * packager.targetDuration * 1000, MAX_HOLD_MS);
  // Held requests end before fastify waits for requests in flight to finish.
  app.addHook('preClose', async () => parked.close());
  app.addHook('onClose', async () => parked.close());
  parkedByOrigin.set(app, parked);

  void app.register(cors, {
    origin: options.corsOrigins === '*' ? '*' : options.corsOrigins,
    methods: ['GET', 'HEAD', 'OPTIONS'],
    maxAge: 86_400,
  });

  app.get('/health', async () => ({ status: 'ok' }));
  app.get('/ready', { schema: {} }, async (_request, reply) =>
    (options.ready?.() ?? true)
      ? reply.send({ status: 'ready' })
      : reply.code(503).send({ status: 'not ready' }),
  );

  /** A held request that could not be answered as asked. */
  const unavailable = (reply: FastifyReply, why: string): FastifyReply =>
    reply.code(503).header('cache-control', NO_STORE).header('retry-after', '1').send({ error: why });

  const sendPlaylist = async (
    packager: Packager,
    query: Query,
    headers: Record<string, string | string[] | undefined>,
    reply: FastifyReply,
    uriQuery: string,
    reports?: () => RenditionReport[],
  ): Promise<FastifyReply> => {
    if (!packager.ready) {
      return reply.code(404).header('cache-control', NO_STORE).send({ error: 'stream not playable yet' });
    }
    const directives = deliveryDirectives(query);
    if ('error' in directives) {
      return reply.code(400).header('cache-control', NO_STORE).send({ error: directives.error });
    }
    // Directives apply to a live low-latency playlist only (§6.2.5.1, §6.2.5.2: ignored after ENDLIST).
    const live = packager.lowLatency && !packager.ended;
    const { msn, part } = directives;
    const blocking = live && msn !== undefined;
    if (!blocking && !packager.startable) {
      // A stream just starting: the first playlist waits until a player can start on parts (see startable).
      const outcome = await parked.park(packager, () => packager.startable, holdMs(packager), reply.raw);
      if (outcome === 'closed') return unavailable(reply, 'origin closing');
      if (outcome === 'aborted') return reply.code(503).header('cache-control', NO_STORE).send();
    }
    if (blocking) {
      if (packager.tooFarAhead(msn, part)) {
        return reply.code(400).header('cache-control', NO_STORE).send({ error: 'too far ahead' });
      }
      const outcome = await parked.park(packager, () => packager.has(msn, part), holdMs(packager), reply.raw);
      if (outcome === 'full') return unavailable(reply, 'too many held requests');
      if (outcome === 'timeout') return unavailable(reply, 'not produced in time');
      if (outcome === 'closed') return unavailable(reply, 'origin closing');
      if (outcome === 'aborted') return reply.code(503).header('cache-control', NO_STORE).send();
    }
    const skip = live && (query._HLS_skip === 'YES' || query._HLS_skip === 'v2');
    const renditionReports = reports?.();
    const text = withUriQuery(
      packager.playlist({
        skip,
        plain: !blocking,
        ...(renditionReports ? { renditionReports } : {}),
      }),
      uriQuery,
    );
    const etag = `"${createHash('sha1').update(text).digest('base64url').slice(0, 16)}"`;
    const cache = packager.ended
      ? 'public, max-age=60'
      : blocking
        ? `public, max-age=${packager.targetDuration}`
        : 'public, max-age=1, s-maxage=1';
    reply.header('content-type', PLAYLIST_TYPE).header('cache-control', cache).header('etag', etag);
    if (headers['if-none-match'] === etag) return reply.code(304).send();
    return reply.send(text);
  };

  app.get<{ Params: HlsParams; Querystring: Query }>(
    '/hls/:userPath/:streamId/:file',
    {
      schema: {
        params: {
          type: 'object',
          required: ['userPath', 'streamId', 'file'],
          properties: {
            userPath: { type: 'string', pattern: USER_PATH_PATTERN.source },
            streamId: { type: 'string', pattern: STREAM_ID_PATTERN.source },
            file: { type: 'string', pattern: FILE_PATTERN.source },
          },
        },
      },
      ...(options.playback?.mode === 'token' ? { onRequest: options.playback } : {}),
    },
    async (request, reply) => {
      const { userPath, streamId, file } = request.params;
      const uriQuery = playbackQuery(request);
      const valid = isValidStreamId(streamId);
      const abr = valid ? options.lookupAbr?.(userPath, streamId) : undefined;
      let packager = abr ? undefined : valid ? options.lookup(userPath, streamId) : undefined;
      if (abr) {
        if (file === 'index.m3u8') {
          const text = abr.multivariant();
          if (text === null) {
            return reply
              .code(404)
              .header('cache-control', NO_STORE)
              .send({ error: 'stream not playable yet' });
          }
          return reply
            .header('content-type', PLAYLIST_TYPE)
            .header('cache-control', 'public, max-age=1, s-maxage=1')
            .send(withUriQuery(text, uriQuery));
        }
        const rendition = file.endsWith('.m3u8') ? abr.rendition(file) : undefined;
        if (rendition) {
          return sendPlaylist(rendition, request.query, request.headers, reply, uriQuery, () =>
            abr.reports(rendition),
          );
        }
        packager = file.endsWith('.m3u8') ? undefined : abr.packagerFor(file);
        if (!packager) return reply.code(404).header('cache-control', NO_STORE).send({ error: 'not found' });
      }
      if (!packager) return reply.code(404).send({ error: 'stream not found' });
      if (file === 'index.m3u8')
        return sendPlaylist(packager, request.query, request.headers, reply, uriQuery);
      if (file.endsWith('.m3u8')) return reply.code(404).send({ error: 'not found' });
      let resource = packager.resource(file);
      if (!resource && packager.isNextPart(file)) {
        // The preload hint's part: sent whole once it exists (§6.2.6), never in pieces.
        const outcome = await parked.park(
          packager,
          () => packager.resource(file) !== undefined,
          holdMs(packager),
          reply.raw,
        );
        if (outcome === 'full') return unavailable(reply, 'too many held requests');
        if (outcome === 'timeout') return unavailable(reply, 'not produced in time');
        if (outcome === 'closed') return unavailable(reply, 'origin closing');
        resource = packager.resource(file);
        if (!resource)
          return reply.code(404).header('cache-control', NO_STORE).send({ error: 'no such part' });
      }
      // no-store: a part asked for before it exists must not stay a 404 in a CDN.
      if (!resource)
        return reply.code(404).header('cache-control', NO_STORE).send({ error: 'no such segment' });
      const etag = `"${file}"`;
      reply
        .header('content-type', 'video/mp4')
        .header('cache-control', 'public, max-age=31536000, immutable')
        .header('etag', etag);
      if (request.headers['if-none-match'] === etag) return reply.code(304).send();
      return reply.send(resource.data);
    },
  );

  app.setNotFoundHandler((_request, reply) => reply.code(404).send({ error: 'not found' }));
  app.setErrorHandler(
    (error: { statusCode?: number; validation?: unknown; message?: string }, request, reply) => {
      // A name that fails the route's schema is simply not something this origin made.
      if (error.validation) return reply.code(404).send({ error: 'not found' });
      const status = error.statusCode && error.statusCode >= 400 ? error.statusCode : 500;
      if (status === 500)
        options.log?.error({ url: redactUrl(request.url), err: error.message }, 'HLS origin error');
      return reply.code(status).send({ error: status === 500 ? 'internal error' : 'bad request' });
    },
  );
  return app;
}
