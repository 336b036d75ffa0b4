/**
 * The HLS origin (fastify, `build(opts)` + `inject()` in tests): playlists, init segments and media
 * segments straight from the packagers in memory. Only names a packager made are served; a request never
 * becomes a file path. CORS on every response (errors and preflight included), short caching for playlists,
 * immutable caching for segments (their names are unique per stream incarnation), ETags.
 */
import { createHash } from 'node:crypto';
import cors from '@fastify/cors';
import Fastify, { type FastifyInstance } from 'fastify';
import { isValidStreamId, STREAM_ID_PATTERN } from '../contracts/names.ts';
import type { Logger } from '../shared/logger.ts';
import type { Packager } from './packager.ts';

export interface OriginOptions {
  /** The packager serving /hls/{userPath}/{streamId}/, if any. */
  lookup(userPath: string, streamId: string): Packager | undefined;
  corsOrigins: '*' | string[];
  log?: Logger;
  /** False while the relay takes no new streams (at capacity, draining): GET /ready answers 503. */
  ready?: () => boolean;
}

export const PLAYLIST_TYPE = 'application/vnd.apple.mpegurl';
/** userPath: a userId with `@` written as `-`, so the same alphabet without `@`. */
const USER_PATH_PATTERN = /^(?!\.)(?!.*\.\.)[A-Za-z0-9._+-]{1,128}$/;
const FILE_PATTERN = /^(index\.m3u8|[0-9a-f]{8}-init\d{1,9}\.mp4|[0-9a-f]{8}-seg\d{1,15}\.m4s)$/;

interface HlsParams {
  userPath: string;
  streamId: string;
  file: string;
}

export function buildOrigin(options: OriginOptions): FastifyInstance {
  // No fastify logger: a line per segment request would drown the relay's logs. Failures are logged below.
  const app: FastifyInstance = Fastify({ routerOptions: { maxParamLength: 200 } });
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

  app.get<{ Params: HlsParams }>(
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
    },
    async (request, reply) => {
      const { userPath, streamId, file } = request.params;
      const packager = isValidStreamId(streamId) ? options.lookup(userPath, streamId) : undefined;
      if (!packager) return reply.code(404).send({ error: 'stream not found' });
      if (file === 'index.m3u8') {
        if (!packager.ready) return reply.code(404).send({ error: 'stream not playable yet' });
        const text = packager.playlist();
        const etag = `"${createHash('sha1').update(text).digest('base64url').slice(0, 16)}"`;
        reply
          .header('content-type', PLAYLIST_TYPE)
          .header('cache-control', packager.ended ? 'public, max-age=60' : 'public, max-age=1, s-maxage=1')
          .header('etag', etag);
        if (request.headers['if-none-match'] === etag) return reply.code(304).send();
        return reply.send(text);
      }
      const resource = packager.resource(file);
      if (!resource) return reply.code(404).send({ error: 'no such segment' });
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
      if (status === 500) options.log?.error({ url: request.url, err: error.message }, 'HLS origin error');
      return reply.code(status).send({ error: status === 500 ? 'internal error' : 'bad request' });
    },
  );
  return app;
}
