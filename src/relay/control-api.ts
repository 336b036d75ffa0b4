/**
 * The relay's control API (architecture §3, port API_PORT, 9997): `/health` and `/ready` for probes, and,
 * behind `Authorization: Bearer <CONTROL_API_TOKEN>` (constant-time compare), the operator routes: list the
 * streams with their stats, kick a live publish, relay info. Without a configured token the operator routes
 * answer 503. fastify `build(opts)`, a schema on every route, tested through `inject()`.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { PUBLISH_APP, STREAM_ID_PATTERN, USER_ID_PATTERN } from '../contracts/names.ts';
import type { StreamStats } from '../contracts/relay-api.ts';
import type { TransportStats } from '../media/source.ts';
import type { StreamRegistry } from '../stream/registry.ts';
import type { Stream } from '../stream/stream.ts';
import { streamStats, streamTransport } from './stream-stats.ts';
import type { ViewerTracker } from './viewers.ts';

export interface ControlApiOptions {
  /** Closes the live publish of a stream key, whatever its ingest (RTMP, SRT, WHIP); false when none. */
  kick: (key: string) => boolean;
  streams: StreamRegistry;
  /** CONTROL_API_TOKEN; unset: the operator routes answer 503. */
  token: string | undefined;
  /** What GET /api/relay answers (id, URLs, capacity…); called per request. */
  relayInfo: () => Record<string, unknown>;
  /** False while the relay takes no new streams (at capacity, draining): /ready answers 503. */
  ready: () => boolean;
  /** Viewers per stream, counted at the origin. */
  viewers?: ViewerTracker;
  now?: () => number;
}

export interface StreamSummary {
  key: string;
  userId: string;
  streamId: string;
  state: string;
  profile: string;
  pipelineProfile: string | null;
  decision: string;
  segments: number;
  breaches: number;
  discontinuities: number;
  ffmpeg: { starts: number; restarts: number; crashes: number; stalls: number };
  repairs: Record<string, number>;
  /** Input codecs and size, fps, keyframe interval, bitrate, viewers (the heartbeat's stats). */
  ingest: StreamStats;
  /** The live publish's transport (SRT, WHIP): RTT, loss, retransmissions, drops, receive buffer; null for RTMP
   * or while nothing publishes. */
  transport: TransportStats | null;
  /** Seconds since the relay first saw this stream (this incarnation). */
  uptimeSeconds: number;
}

interface KickParams {
  userId: string;
  streamId: string;
}

const digest = (value: string): Buffer => createHash('sha256').update(value).digest();

export function buildControlApi(options: ControlApiOptions): FastifyInstance {
  const app: FastifyInstance = Fastify({ routerOptions: { maxParamLength: 200 } });
  const now = options.now ?? Date.now;

  const summary = (stream: Stream): StreamSummary => ({
    key: stream.key,
    userId: stream.userId,
    streamId: stream.streamId,
    state: stream.state,
    profile: stream.profile,
    pipelineProfile: stream.pipelineProfile,
    decision: stream.decision,
    segments: stream.packager.stats.segments,
    breaches: stream.packager.stats.breaches,
    discontinuities: stream.packager.stats.discontinuities,
    ffmpeg: { ...stream.supervisor.stats },
    repairs: { ...stream.repair.counts },
    ingest: streamStats(stream, options.viewers, now()),
    transport: streamTransport(stream),
    uptimeSeconds: Math.max(0, Math.round((now() - stream.createdAt) / 1000)),
  });

  app.get('/health', { schema: {} }, async () => ({ status: 'ok' }));
  app.get('/ready', { schema: {} }, async (_request, reply) =>
    options.ready() ? reply.send({ status: 'ready' }) : reply.code(503).send({ status: 'not ready' }),
  );

  void app.register(async (api) => {
    const expected = options.token === undefined ? null : digest(options.token);
    api.addHook('onRequest', async (request: FastifyRequest, reply: FastifyReply) => {
      if (!expected) {
        return reply
          .code(503)
          .send({ error: 'control API token not configured', code: 'CONTROL_API_DISABLED' });
      }
      const header = request.headers.authorization ?? '';
      const token = header.startsWith('Bearer ') ? header.slice(7) : '';
      // Hash both sides so the comparison is constant-time whatever the lengths.
      if (!token || !timingSafeEqual(digest(token), expected)) {
        return reply.code(401).send({ error: 'unauthorized', code: 'CONTROL_API_UNAUTHORIZED' });
      }
    });

    api.get('/api/streams', { schema: {} }, async () => ({
      streams: options.streams.streams.map(summary),
    }));

    api.post<{ Params: KickParams }>(
      '/api/streams/:userId/:streamId/kick',
      {
        schema: {
          params: {
            type: 'object',
            required: ['userId', 'streamId'],
            properties: {
              userId: { type: 'string', pattern: USER_ID_PATTERN.source },
              streamId: { type: 'string', pattern: STREAM_ID_PATTERN.source },
            },
          },
        },
      },
      async (request, reply) => {
        const { userId, streamId } = request.params;
        const key = `${PUBLISH_APP}/${userId}/${streamId}`;
        if (!options.kick(key)) {
          return reply.code(404).send({ error: 'no live publish for this stream', code: 'STREAM_NOT_FOUND' });
        }
        return reply.send({ kicked: true, key });
      },
    );

    api.get('/api/relay', { schema: {} }, async () => options.relayInfo());
  });

  app.setNotFoundHandler((_request, reply) => reply.code(404).send({ error: 'not found' }));
  app.setErrorHandler(
    (error: { statusCode?: number; validation?: unknown; message?: string }, _request, reply) => {
      if (error.validation) {
        return reply.code(400).send({ error: 'bad request', code: 'CONTROL_API_BAD_REQUEST' });
      }
      const status = error.statusCode && error.statusCode >= 400 ? error.statusCode : 500;
      return reply.code(status).send({ error: status === 500 ? 'internal error' : 'bad request' });
    },
  );
  return app;
}
