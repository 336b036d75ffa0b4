/**
 * WHIP signalling over HTTP (draft-ietf-wish-whip, architecture §3), a fastify plugin for the origin:
 * - `POST /whip/live/{userId}/{streamId}?token=…` (or `Authorization: Bearer …`; the glasses send no header)
 *   with an `application/sdp` offer → `201`, the complete answer, `Location: /whip/live/{userId}/{streamId}/
 *   {sessionId}`. The token is checked before any ICE: a refusal is `401` and no peer connection exists.
 *   Other query parameters are the publish's, as RTMP's (`&profile=transcode`).
 * - `DELETE` on the Location → `200`: the publisher is gone (the glasses DELETE before each retry), which
 *   opens the reconnect window (a `disconnect`); it does not end the stream.
 * - `OPTIONS` answers the CORS preflight; `PATCH` (trickle) is `405`.
 * Refusals as in ./whep-routes.ts: malformed offer `400`, no sending video or no H.264 `422`, bad path `404`;
 * a name or parameter the relay's rules refuse (an unknown `?profile=`) `400`, with the rule in the body.
 */
import type { FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { type ErrorCode, ErrorCodes, isRelayError } from '../shared/errors.ts';
import { MAX_SDP_BYTES } from './sdp.ts';
import type { WhipServer } from './whip-server.ts';

export interface WhipRoutesOptions {
  server: WhipServer;
  corsOrigins: '*' | string[];
}

const STATUS: Partial<Record<ErrorCode, number>> = {
  [ErrorCodes.WEBRTC_SDP_MALFORMED]: 400,
  [ErrorCodes.WEBRTC_SDP_NO_VIDEO]: 422,
  [ErrorCodes.WEBRTC_CODEC_UNSUPPORTED]: 422,
  [ErrorCodes.WEBRTC_CONTENT_TYPE]: 415,
  [ErrorCodes.WEBRTC_UNAUTHORIZED]: 401,
  [ErrorCodes.WEBRTC_PUBLISH_REFUSED]: 400,
  [ErrorCodes.WEBRTC_STREAM_NOT_FOUND]: 404,
  [ErrorCodes.WEBRTC_SESSION_NOT_FOUND]: 404,
  [ErrorCodes.WEBRTC_TOO_MANY_SESSIONS]: 503,
  [ErrorCodes.WEBRTC_CLOSED]: 503,
  [ErrorCodes.WEBRTC_NEGOTIATION_FAILED]: 400,
};
const SESSION_ID_PATTERN = /^[A-Za-z0-9_-]{24}$/;
/** Query parameters looked at besides the token. */
const MAX_PARAMS = 8;

interface Params {
  userId: string;
  streamId: string;
}

export function buildWhipRoutes(options: WhipRoutesOptions): FastifyPluginAsync {
  const { server } = options;
  const refuse = (reply: FastifyReply, code: ErrorCode, message: string): FastifyReply =>
    reply
      .code(STATUS[code] ?? 400)
      .header('cache-control', 'no-store')
      .type('text/plain; charset=utf-8')
      .send(`${code}: ${message}\n`);
  const tokenOf = (request: FastifyRequest): string | undefined => {
    const query = (request.query as Record<string, unknown>).token;
    if (typeof query === 'string' && query !== '') return query;
    const auth = request.headers.authorization;
    return auth?.startsWith('Bearer ') ? auth.slice(7).trim() : undefined;
  };
  /** The query's other parameters (e.g. `profile`, as RTMP's), token apart: strings only, bounded. */
  const paramsOf = (request: FastifyRequest): Record<string, string> => {
    const params: Record<string, string> = {};
    for (const [name, value] of Object.entries(request.query as Record<string, unknown>).slice(
      0,
      MAX_PARAMS,
    )) {
      if (name !== 'token' && typeof value === 'string' && name.length <= 64 && value.length <= 256)
        params[name] = value;
    }
    return params;
  };
  // These routes answer CORS themselves (methods, exposed Location): an @fastify/cors the host app registered
  // (the origin's, GET/HEAD only) is told to leave them alone.
  const own = { config: { cors: false } };

  return async (app: FastifyInstance) => {
    app.addContentTypeParser(
      'application/sdp',
      { parseAs: 'string', bodyLimit: MAX_SDP_BYTES },
      (_r, body, done) => done(null, body),
    );
    app.addHook('onRequest', async (request, reply) => {
      if (!request.url.startsWith('/whip/')) return;
      const origin = request.headers.origin;
      const allowed =
        options.corsOrigins === '*' ? '*' : origin && options.corsOrigins.includes(origin) ? origin : null;
      if (allowed === null) return;
      reply.header('access-control-allow-origin', allowed);
      if (allowed !== '*') reply.header('vary', 'origin');
      reply.header('access-control-expose-headers', 'location, etag, link');
    });
    const preflight = (methods: string) => async (_request: FastifyRequest, reply: FastifyReply) =>
      reply
        .code(204)
        .header('access-control-allow-methods', methods)
        .header('access-control-allow-headers', 'content-type, authorization')
        .header('allow', methods)
        .send();
    app.options('/whip/live/:userId/:streamId', own, preflight('OPTIONS, POST'));
    app.options('/whip/live/:userId/:streamId/:sessionId', own, preflight('OPTIONS, DELETE'));

    app.post<{ Params: Params }>('/whip/live/:userId/:streamId', own, async (request, reply) => {
      const { userId, streamId } = request.params;
      const type = (request.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
      if (type !== 'application/sdp' || typeof request.body !== 'string') {
        return refuse(reply, ErrorCodes.WEBRTC_CONTENT_TYPE, 'the offer must be application/sdp');
      }
      try {
        const { sessionId, answer } = await server.publish(
          userId,
          streamId,
          tokenOf(request),
          request.body,
          request.ip,
          paramsOf(request),
        );
        return reply
          .code(201)
          .header('location', `/whip/live/${encodeURIComponent(userId)}/${streamId}/${sessionId}`)
          .header('cache-control', 'no-store')
          .type('application/sdp')
          .send(answer);
      } catch (err) {
        if (isRelayError(err) && STATUS[err.code]) return refuse(reply, err.code, err.message);
        throw err;
      }
    });

    app.delete<{ Params: Params & { sessionId: string } }>(
      '/whip/live/:userId/:streamId/:sessionId',
      own,
      async (request, reply) => {
        const { userId, streamId, sessionId } = request.params;
        if (!SESSION_ID_PATTERN.test(sessionId) || !server.has(sessionId, `live/${userId}/${streamId}`)) {
          return refuse(reply, ErrorCodes.WEBRTC_SESSION_NOT_FOUND, 'no such WHIP session');
        }
        server.remove(sessionId);
        return reply.code(200).header('cache-control', 'no-store').send();
      },
    );

    app.patch('/whip/live/:userId/:streamId/:sessionId', own, async (_request, reply) =>
      reply.code(405).header('allow', 'OPTIONS, DELETE').send('trickle ICE is not supported\n'),
    );
  };
}
