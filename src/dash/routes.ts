/**
 * DASH on the origin, a fastify plugin: `GET /dash/{userPath}/{streamId}/index.mpd` (application/dash+xml)
 * and `GET /dash/time` (the UTCTiming source, urn:mpeg:dash:utc:http-iso:2014). The MPD's templates point at
 * the media the HLS routes already serve (`../../../hls/{userPath}/{streamId}/{prefix}-seg$Number$.m4s`): the
 * same bytes under the same immutable names, so a CDN caches them once for HLS and DASH viewers alike (inits
 * always; media segments unless `?ll=1`, below).
 *
 * Cache rules follow HLS's: a live MPD `max-age=1` (as a live playlist), an ended one a minute, refusals and
 * unknown streams `no-store`; the time never cached. CORS on every answer (the origin's @fastify/cors when
 * registered there; set here too so the plugin stands alone). Path parameters are checked against the name
 * rules before any lookup: a bad one is a 400, an unknown stream a 404; nothing from the request becomes a
 * path. `index.mpd?ll=1` of a low-latency stream (HLS_LOW_LATENCY) is low-latency DASH: the MPD lists the
 * segment being made, and `/dash/{userPath}/{streamId}/{prefix}-seg{n}.m4s` streams it as its parts come
 * (chunked transfer), complete segments as HLS serves them. `authorize` is the hook
 * playback tokens plug into (optional: off means everyone may watch); a token given as `?token=` is carried
 * on every URL the MPD writes. Hand-written: no fastify plugin serves DASH from an in-memory packager.
 */
import { createHash } from 'node:crypto';
import { PassThrough } from 'node:stream';
import type { FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { STREAM_ID_PATTERN } from '../contracts/names.ts';
import type { Packager, Part, Segment } from '../hls/packager.ts';
import { MPD_TYPE, renderMpd, UTC_DIRECT, UTC_HTTP_ISO } from './mpd.ts';
import { DashPresentation, type DashRendition, type MpdView } from './presentation.ts';

/** A rendition as the routes need it: its packager whole (the segment being made is streamed from it). */
export type LiveRendition = DashRendition & { packager: Packager };

export interface DashRoutesOptions {
  /** The packager serving /hls/{userPath}/{streamId}/, if any. */
  lookup(userPath: string, streamId: string): Packager | undefined;
  /** An ABR stream's renditions (top first), checked before `lookup`. */
  lookupAbr?(userPath: string, streamId: string): readonly LiveRendition[] | undefined;
  corsOrigins: '*' | string[];
  /** Whether this request may watch the stream (playback tokens); absent: everyone may. */
  authorize?(request: FastifyRequest, userPath: string, streamId: string): boolean | Promise<boolean>;
  /** Segments being made streamed at once, over all streams (default 2000); more get 503. */
  maxStreaming?: number;
}

/** userPath: a userId with `@` written as `-` (as the HLS origin checks it). */
const USER_PATH_PATTERN = /^(?!\.)(?!.*\.\.)[A-Za-z0-9._+-]{1,128}$/;
/** What a token may be to be written back into URLs (a JWT's alphabet). */
const TOKEN_PATTERN = /^[A-Za-z0-9._~-]{1,4096}$/;
/** A Host header fit to write into the UTCTiming URL. */
const HOST_PATTERN = /^(?:[A-Za-z0-9.-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\])(?::\d{1,5})?$/;
const NO_STORE = 'no-store';
const SEGMENT_PATTERN = /^([0-9a-f]{8})-seg(\d{1,15})\.m4s$/;
const IMMUTABLE = 'public, max-age=31536000, immutable';

interface MpdParams {
  userPath: string;
  streamId: string;
}

/** The DASH MPD path of a stream (relative to the origin). */
export const dashMpdPath = (userPath: string, streamId: string): string =>
  `/dash/${userPath}/${streamId}/index.mpd`;

export function buildDashRoutes(options: DashRoutesOptions): FastifyPluginAsync {
  // One presentation per stream (keyed by its top packager, which lives as long as the stream).
  const presentations = new WeakMap<Packager, DashPresentation>();
  /** Ends every segment being streamed (the origin closing). */
  const streaming = new Set<() => void>();
  const maxStreaming = options.maxStreaming ?? 2000;
  /** The last MPD made for each presentation (one per stream: the latest way of asking wins). */
  const rendered = new WeakMap<
    DashPresentation,
    { version: string; text: string; etag: string; cache: string }
  >();

  const renditionsOf = (userPath: string, streamId: string): readonly LiveRendition[] | undefined => {
    const abr = options.lookupAbr?.(userPath, streamId);
    if (abr?.length) return abr;
    const packager = options.lookup(userPath, streamId);
    return packager ? [{ id: 'v0', packager }] : undefined;
  };

  const presentationOf = (userPath: string, streamId: string): DashPresentation | undefined => {
    const renditions = renditionsOf(userPath, streamId);
    if (!renditions) return undefined;
    const key = renditions[0]!.packager;
    let presentation = presentations.get(key);
    if (!presentation) {
      presentation = new DashPresentation(renditions);
      presentations.set(key, presentation);
    }
    return presentation;
  };

  const allowOrigin = (request: FastifyRequest): string | undefined => {
    if (options.corsOrigins === '*') return '*';
    const origin = request.headers.origin;
    return origin && options.corsOrigins.includes(origin) ? origin : undefined;
  };

  /**
   * Sends segment `msn` of `packager` as it is made: the parts it has, each next part as it closes, the end
   * when the segment completes (chunked transfer: what low-latency DASH players fetch). Bounded: the
   * segment's longest possible duration plus 10 s, the client leaving, the origin closing.
   */
  const streamSegment = (packager: Packager, msn: number, reply: FastifyReply): FastifyReply => {
    const body = new PassThrough();
    let last = -1;
    let initUri: string | null = null;
    let done = false;
    const write = (parts: readonly Part[]): void => {
      for (const p of parts) {
        if (p.n <= last) continue;
        body.write(p.data);
        last = p.n;
      }
    };
    const finish = (complete: boolean): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      packager.off('part', onPart);
      packager.off('segment', onSegment);
      packager.off('update', onUpdate);
      streaming.delete(abort);
      if (complete) body.end();
      // Before any byte was sent the error handler answers 503 (try again); after, the response is cut.
      else body.destroy(Object.assign(new Error('segment not completed'), { statusCode: 503 }));
    };
    const abort = (): void => finish(false);
    const onPart = (): void => {
      const open = packager.openSegment;
      if (open?.msn !== msn) return;
      initUri ??= open.initUri;
      if (open.initUri !== initUri) return finish(false); // another run took the number: not this segment
      write(open.parts);
    };
    const onSegment = (segment: Segment): void => {
      if (segment.msn < msn) return;
      if (segment.msn > msn || (initUri !== null && segment.initUri !== initUri)) return finish(false);
      write(segment.parts);
      finish(true);
    };
    const onUpdate = (): void => {
      if (packager.ended) finish(packager.resource(`${packager.prefix}-seg${msn}.m4s`) !== undefined);
    };
    const timer = setTimeout(abort, (packager.targetDuration + 10) * 1000);
    packager.on('part', onPart);
    packager.on('segment', onSegment);
    packager.on('update', onUpdate);
    streaming.add(abort);
    reply.raw.once('close', abort);
    onPart();
    return reply.header('content-type', 'video/mp4').header('cache-control', NO_STORE).send(body);
  };

  return async (app: FastifyInstance) => {
    // Segments being streamed end before fastify waits for requests in flight (and again at onClose).
    const endAll = async (): Promise<void> => {
      for (const abort of [...streaming]) abort();
    };
    app.addHook('preClose', endAll);
    app.addHook('onClose', endAll);

    app.addHook('onSend', async (request, reply, payload) => {
      if (!reply.hasHeader('access-control-allow-origin')) {
        const allowed = allowOrigin(request);
        if (allowed) reply.header('access-control-allow-origin', allowed);
        if (allowed && allowed !== '*') reply.header('vary', 'Origin');
      }
      return payload;
    });

    app.setErrorHandler((error: { statusCode?: number; validation?: unknown }, _request, reply) => {
      // A path that breaks the name rules is a bad request, never a lookup.
      if (error.validation)
        return reply.code(400).header('cache-control', NO_STORE).send({ error: 'bad path' });
      const status =
        error.statusCode && error.statusCode >= 400 && error.statusCode < 600 ? error.statusCode : 500;
      const message = status === 500 ? 'internal error' : status === 503 ? 'try again' : 'bad request';
      // (JSON even where a segment's content type was already set.)
      return reply
        .code(status)
        .type('application/json; charset=utf-8')
        .header('cache-control', NO_STORE)
        .send({ error: message });
    });

    app.get('/dash/time', async (_request, reply) =>
      reply
        .header('content-type', 'text/plain; charset=utf-8')
        .header('cache-control', NO_STORE)
        .send(new Date().toISOString()),
    );

    app.get<{ Params: MpdParams; Querystring: Record<string, string | string[] | undefined> }>(
      '/dash/:userPath/:streamId/index.mpd',
      {
        schema: {
          params: {
            type: 'object',
            required: ['userPath', 'streamId'],
            properties: {
              userPath: { type: 'string', pattern: USER_PATH_PATTERN.source },
              streamId: { type: 'string', pattern: STREAM_ID_PATTERN.source },
            },
          },
        },
      },
      async (request, reply): Promise<FastifyReply> => {
        const { userPath, streamId } = request.params;
        if (options.authorize && !(await options.authorize(request, userPath, streamId))) {
          return reply.code(403).header('cache-control', NO_STORE).send({ error: 'not allowed' });
        }
        const presentation = presentationOf(userPath, streamId);
        if (!presentation) {
          return reply.code(404).header('cache-control', NO_STORE).send({ error: 'stream not found' });
        }
        const token = typeof request.query.token === 'string' ? request.query.token : undefined;
        const query = token && TOKEN_PATTERN.test(token) ? `?token=${token}` : '';
        const base = `../../../hls/${userPath}/${streamId}/`;
        const header = request.headers.host;
        const host = header && HOST_PATTERN.test(header) ? header : null;
        // Low-latency streams: media from the DASH route beside the MPD (it streams the segment being made);
        // inits, and every segment of the others, from the HLS routes.
        // `?ll=1` asks for low-latency DASH (a low-latency stream only). Not the default: dash.js 5.2 stalled
        // on it under load here (bench/dash.ts), while the MPD of complete segments played every run.
        const lowLatency =
          renditionsOf(userPath, streamId)?.[0]?.packager.lowLatency === true && request.query.ll === '1';
        const view: MpdView = {
          lowLatency,
          url: (_rendition, name, kind) =>
            kind === 'media' && lowLatency ? `${name}${query}` : `${base}${name}${query}`,
          utcTiming: host
            ? [{ scheme: UTC_HTTP_ISO, value: `${request.protocol}://${host}/dash/time` }]
            : [{ scheme: UTC_DIRECT, value: new Date().toISOString() }],
        };
        // The MPD changes only when a segment completes (or the stream ends): made once per change and per
        // way of asking (token, host), then served from here to every viewer polling it.
        // (Without a usable Host the MPD carries the time itself: never reused.)
        const version = host ? `${presentation.version}|${query}|${host}|${lowLatency}` : `${Date.now()}`;
        let doc = rendered.get(presentation);
        if (doc?.version !== version) {
          const model = presentation.model(view);
          if (!model) {
            return reply
              .code(404)
              .header('cache-control', NO_STORE)
              .send({ error: 'stream not playable yet' });
          }
          const text = renderMpd(model);
          doc = {
            version,
            text,
            etag: `"${createHash('sha1').update(text).digest('base64url').slice(0, 16)}"`,
            cache: model.type === 'static' ? 'public, max-age=60' : 'public, max-age=1, s-maxage=1',
          };
          rendered.set(presentation, doc);
        }
        const { text, etag } = doc;
        reply.header('content-type', MPD_TYPE).header('cache-control', doc.cache).header('etag', etag);
        if (request.headers['if-none-match'] === etag) return reply.code(304).send();
        return reply.send(text);
      },
    );

    // Media segments of low-latency streams: complete ones as the HLS route sends them, the one being made
    // (and the next) streamed as it is made.
    app.get<{ Params: MpdParams & { file: string } }>(
      '/dash/:userPath/:streamId/:file',
      {
        schema: {
          params: {
            type: 'object',
            required: ['userPath', 'streamId', 'file'],
            properties: {
              userPath: { type: 'string', pattern: USER_PATH_PATTERN.source },
              streamId: { type: 'string', pattern: STREAM_ID_PATTERN.source },
              file: { type: 'string', maxLength: 64 },
            },
          },
        },
      },
      async (request, reply): Promise<FastifyReply> => {
        const { userPath, streamId, file } = request.params;
        const match = SEGMENT_PATTERN.exec(file);
        if (!match) return reply.code(404).header('cache-control', NO_STORE).send({ error: 'not found' });
        if (options.authorize && !(await options.authorize(request, userPath, streamId))) {
          return reply.code(403).header('cache-control', NO_STORE).send({ error: 'not allowed' });
        }
        const packager = renditionsOf(userPath, streamId)?.find(
          (r) => r.packager.prefix === match[1],
        )?.packager;
        if (!packager) return reply.code(404).header('cache-control', NO_STORE).send({ error: 'not found' });
        const made = packager.resource(file);
        if (made?.kind === 'segment') {
          const etag = `"${file}"`;
          reply.header('content-type', 'video/mp4').header('cache-control', IMMUTABLE).header('etag', etag);
          if (request.headers['if-none-match'] === etag) return reply.code(304).send();
          return reply.send(made.data);
        }
        const msn = Number(match[2]);
        const openMsn = packager.edge.openMsn;
        if (!packager.lowLatency || packager.ended || msn < openMsn || msn > openMsn + 1) {
          return reply.code(404).header('cache-control', NO_STORE).send({ error: 'no such segment' });
        }
        if (streaming.size >= maxStreaming) {
          return reply.code(503).header('cache-control', NO_STORE).header('retry-after', '1').send();
        }
        return streamSegment(packager, msn, reply);
      },
    );
  };
}
