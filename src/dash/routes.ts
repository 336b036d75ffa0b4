/**
 * DASH on the origin, a fastify plugin: `GET /dash/{userPath}/{streamId}/index.mpd` (application/dash+xml)
 * and `GET /dash/time` (the UTCTiming source, urn:mpeg:dash:utc:http-iso:2014). The MPD's templates point at
 * the media the HLS routes already serve (`../../../hls/{userPath}/{streamId}/{prefix}-seg$Number$.m4s`): the
 * same bytes under the same immutable names, so a CDN caches them once for HLS and DASH viewers alike.
 *
 * Cache rules follow HLS's: a live MPD `max-age=1` (as a live playlist), an ended one a minute, refusals and
 * unknown streams `no-store`; the time never cached. CORS on every answer (the origin's @fastify/cors when
 * registered there; set here too so the plugin stands alone). Path parameters are checked against the name
 * rules before any lookup: a bad one is a 400, an unknown stream a 404; nothing from the request becomes a
 * path. `authorize` is the hook playback tokens plug into (optional: off means everyone may watch); a token
 * given as `?token=` is carried on every URL the MPD writes.
 */
import { createHash } from 'node:crypto';
import type { FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { STREAM_ID_PATTERN } from '../contracts/names.ts';
import { MPD_TYPE, renderMpd, UTC_DIRECT, UTC_HTTP_ISO } from './mpd.ts';
import { type DashPackager, DashPresentation, type DashRendition, type MpdView } from './presentation.ts';

export interface DashRoutesOptions {
  /** The packager serving /hls/{userPath}/{streamId}/, if any. */
  lookup(userPath: string, streamId: string): DashPackager | undefined;
  /** An ABR stream's renditions (top first), checked before `lookup`. */
  lookupAbr?(userPath: string, streamId: string): readonly DashRendition[] | undefined;
  corsOrigins: '*' | string[];
  /** Whether this request may watch the stream (playback tokens); absent: everyone may. */
  authorize?(request: FastifyRequest, userPath: string, streamId: string): boolean | Promise<boolean>;
}

/** userPath: a userId with `@` written as `-` (as the HLS origin checks it). */
const USER_PATH_PATTERN = /^(?!\.)(?!.*\.\.)[A-Za-z0-9._+-]{1,128}$/;
/** What a token may be to be written back into URLs (a JWT's alphabet). */
const TOKEN_PATTERN = /^[A-Za-z0-9._~-]{1,4096}$/;
/** A Host header fit to write into the UTCTiming URL. */
const HOST_PATTERN = /^(?:[A-Za-z0-9.-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\])(?::\d{1,5})?$/;
const NO_STORE = 'no-store';

interface MpdParams {
  userPath: string;
  streamId: string;
}

/** The DASH MPD path of a stream (relative to the origin). */
export const dashMpdPath = (userPath: string, streamId: string): string =>
  `/dash/${userPath}/${streamId}/index.mpd`;

export function buildDashRoutes(options: DashRoutesOptions): FastifyPluginAsync {
  // One presentation per stream (keyed by its top packager, which lives as long as the stream).
  const presentations = new WeakMap<DashPackager, DashPresentation>();
  /** The last MPD made for each presentation (one per stream: the latest way of asking wins). */
  const rendered = new WeakMap<
    DashPresentation,
    { version: string; text: string; etag: string; cache: string }
  >();

  const presentationOf = (userPath: string, streamId: string): DashPresentation | undefined => {
    const abr = options.lookupAbr?.(userPath, streamId);
    const renditions: readonly DashRendition[] | undefined = abr?.length
      ? abr
      : (() => {
          const packager = options.lookup(userPath, streamId);
          return packager ? [{ id: 'v0', packager }] : undefined;
        })();
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

  return async (app: FastifyInstance) => {
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
        error.statusCode && error.statusCode >= 400 && error.statusCode < 500 ? error.statusCode : 500;
      return reply
        .code(status)
        .header('cache-control', NO_STORE)
        .send({ error: status === 500 ? 'internal error' : 'bad request' });
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
        const view: MpdView = {
          url: (_rendition, name) => `${base}${name}${query}`,
          utcTiming: host
            ? [{ scheme: UTC_HTTP_ISO, value: `${request.protocol}://${host}/dash/time` }]
            : [{ scheme: UTC_DIRECT, value: new Date().toISOString() }],
        };
        // The MPD changes only when a segment completes (or the stream ends): made once per change and per
        // way of asking (token, host), then served from here to every viewer polling it.
        // (Without a usable Host the MPD carries the time itself: never reused.)
        const version = host ? `${presentation.version}|${query}|${host}` : `${Date.now()}`;
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
  };
}
