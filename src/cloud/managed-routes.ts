/**
 * The apps' REST surface for managed streams (architecture §3), as a fastify plugin:
 * `POST /api/managed-streams` {userId, packageName, …options} (join or create), `GET /api/managed-streams/:id`,
 * `DELETE /api/managed-streams/:id/viewers/:packageName`, `GET /api/managed-streams/:id/events` (server-sent
 * events, one `managed_stream_status` JSON per event, until the stream ends or the client goes), and the
 * shareable `GET /watch/:id/index.m3u8` (a 302 with CORS to wherever the stream is served now).
 * Everything but `/watch` (a link meant to be shared) needs the stream's user (a bearer token); an unknown
 * stream and another user's stream answer the same 404, so ids cannot be probed. The event stream sends a
 * comment every `sseKeepAliveMs` while idle (proxies cut silent connections at 60 s, Node's fetch at 300 s)
 * and is ended when its client stops reading (more than SSE_MAX_BUFFERED bytes waiting).
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { ManagedStreamRequest, type ManagedStreamStatus } from '../contracts/mentra.ts';
import { UserId } from '../contracts/relay-api.ts';
import { ManagedStreamError, type ManagedStreams } from './managed-streams.ts';

export interface ManagedRoutesOptions {
  streams: ManagedStreams;
  /** The userId the request may act for (a bearer token), or null; dev mode trusts the body. */
  authenticate(request: FastifyRequest, claimedUserId: string): Promise<boolean>;
  /** Comment keep-alives on idle event streams (SSE_KEEPALIVE_SECONDS; default 15 s). */
  sseKeepAliveMs?: number;
}

/** An event stream whose client lets this much pile up is ended (it reconnects and gets the status). */
export const SSE_MAX_BUFFERED = 256 * 1024;
export const DEFAULT_SSE_KEEPALIVE_MS = 15_000;

const CreateBody = ManagedStreamRequest.omit({ type: true }).extend({ userId: UserId });
const STREAM_ID = /^[A-Za-z0-9]{1,32}$/;
const PACKAGE = /^[A-Za-z0-9._-]{1,256}$/;

export async function managedRoutes(app: FastifyInstance, options: ManagedRoutesOptions): Promise<void> {
  const { streams } = options;

  app.post('/api/managed-streams', async (request, reply) => {
    const parsed = CreateBody.safeParse(request.body);
    if (!parsed.success) {
      return reply.code(400).send({
        error: 'invalid body',
        issues: parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`),
      });
    }
    if (!(await options.authenticate(request, parsed.data.userId)))
      return reply.code(401).send({ error: 'unauthorized' });
    try {
      return await streams.request(
        parsed.data.userId,
        parsed.data.packageName,
        parsed.data.restreamDestinations ?? [],
      );
    } catch (err) {
      if (err instanceof ManagedStreamError)
        return reply.code(503).send({ error: err.message, code: err.code });
      throw err;
    }
  });

  app.get<{ Params: { streamId: string } }>('/api/managed-streams/:streamId', async (request, reply) => {
    const stream = STREAM_ID.test(request.params.streamId)
      ? await streams.load(request.params.streamId)
      : undefined;
    if (!stream || !(await options.authenticate(request, stream.userId)))
      return reply.code(404).send({ error: 'no such stream' });
    return streams.statusOf(stream);
  });

  app.delete<{ Params: { streamId: string; packageName: string } }>(
    '/api/managed-streams/:streamId/viewers/:packageName',
    async (request, reply) => {
      const stream = STREAM_ID.test(request.params.streamId)
        ? await streams.load(request.params.streamId)
        : undefined;
      if (!stream || !PACKAGE.test(request.params.packageName))
        return reply.code(404).send({ error: 'no such stream' });
      if (!(await options.authenticate(request, stream.userId)))
        return reply.code(401).send({ error: 'unauthorized' });
      await streams.stop(stream.userId, request.params.packageName);
      return { ok: true };
    },
  );

  app.get<{ Params: { streamId: string } }>(
    '/api/managed-streams/:streamId/events',
    async (request, reply) => {
      const stream = STREAM_ID.test(request.params.streamId)
        ? await streams.load(request.params.streamId)
        : undefined;
      if (!stream || !(await options.authenticate(request, stream.userId)))
        return reply.code(404).send({ error: 'no such stream' });
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
        write(`data: ${JSON.stringify(status)}\n\n`);
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

  app.get<{ Params: { streamId: string } }>('/watch/:streamId/index.m3u8', async (request, reply) => {
    reply.header('access-control-allow-origin', '*');
    const stream = STREAM_ID.test(request.params.streamId)
      ? await streams.load(request.params.streamId)
      : undefined;
    const url = stream ? streams.statusOf(stream).hlsUrl : undefined;
    if (!url) return reply.code(404).send({ error: 'not playable now' });
    return reply.header('cache-control', 'no-store').redirect(url, 302);
  });
}
