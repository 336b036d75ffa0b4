/**
 * WHEP signalling over HTTP (draft-ietf-wish-whep): a fastify plugin the origin registers.
 * - `POST /whep/{userPath}/{streamId}` with an `application/sdp` offer → `201`, the answer (complete: the
 *   relay does not trickle), `Location: /whep/{userPath}/{streamId}/{sessionId}` (an unguessable id) and
 *   `ETag`.
 * - `DELETE` on the Location ends the session (`200`); an unknown one is a `404`.
 * - `PATCH` (trickle ICE, ICE restart) is not supported: `405`, as the draft allows.
 * - `OPTIONS` on both answers the CORS preflight (`204`) with the allowed methods; every answer, errors
 *   included, carries the CORS headers, with `Location` exposed so a cross-origin player can read it.
 * Refusals are clear 4xx with a text body naming the problem: a malformed offer `400`, no video m-line or no
 * H.264 `422`, not `application/sdp` `415`, no such stream `404`, a stream that cannot play yet or has
 * B-frames `409`, too many sessions `503`.
 */
import type { FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { isValidStreamId } from '../contracts/names.ts';
import { type ErrorCode, ErrorCodes, isRelayError } from '../shared/errors.ts';
import { MAX_SDP_BYTES } from './sdp.ts';
import type { WhepServer } from './whep-server.ts';

export interface WhepRoutesOptions {
  server: WhepServer;
  /** `*` or the allowed origins (CORS_ALLOW_ORIGINS). */
  corsOrigins: '*' | string[];
  /**
   * Checks a request's playback token (PLAYBACK_AUTH=token) before anything else; resolves false to refuse
   * with 401. Absent: no playback auth.
   */
  authorize?: (request: FastifyRequest, userPath: string, streamId: string) => boolean | Promise<boolean>;
}

/** userPath: a userId with `@` written as `-` (contracts/names.ts alphabet without `@`). */
const USER_PATH_PATTERN = /^(?!\.)(?!.*\.\.)[A-Za-z0-9._+-]{1,128}$/;
const SESSION_ID_PATTERN = /^[A-Za-z0-9_-]{24}$/;

const STATUS: Partial<Record<ErrorCode, number>> = {
  [ErrorCodes.WEBRTC_SDP_MALFORMED]: 400,
  [ErrorCodes.WEBRTC_SDP_NO_VIDEO]: 422,
  [ErrorCodes.WEBRTC_CODEC_UNSUPPORTED]: 422,
  [ErrorCodes.WEBRTC_CONTENT_TYPE]: 415,
  [ErrorCodes.WEBRTC_STREAM_NOT_FOUND]: 404,
  [ErrorCodes.WEBRTC_SESSION_NOT_FOUND]: 404,
  [ErrorCodes.WEBRTC_STREAM_NOT_READY]: 409,
  [ErrorCodes.WEBRTC_B_FRAMES]: 409,
  [ErrorCodes.WEBRTC_TOO_MANY_SESSIONS]: 503,
  [ErrorCodes.WEBRTC_CLOSED]: 503,
  [ErrorCodes.WEBRTC_NEGOTIATION_FAILED]: 400,
};

interface StreamParams {
  userPath: string;
  streamId: string;
}
interface SessionParams extends StreamParams {
  sessionId: string;
}

export function buildWhepRoutes(options: WhepRoutesOptions): FastifyPluginAsync {
  const { server } = options;
  const allowOrigin = (origin: string | undefined): string | null => {
    if (options.corsOrigins === '*') return '*';
    return origin && options.corsOrigins.includes(origin) ? origin : null;
  };
  const cors = (request: FastifyRequest, reply: FastifyReply): void => {
    const origin = allowOrigin(request.headers.origin);
    if (origin === null) return;
    reply.header('access-control-allow-origin', origin);
    if (origin !== '*') reply.header('vary', 'origin');
    reply.header('access-control-expose-headers', 'location, etag, link, accept-patch');
  };
  const refuse = (reply: FastifyReply, code: ErrorCode, message: string): FastifyReply =>
    reply
      .code(STATUS[code] ?? 400)
      .header('cache-control', 'no-store')
      .type('text/plain; charset=utf-8')
      .send(`${code}: ${message}\n`);
  const validPath = (p: StreamParams): boolean =>
    USER_PATH_PATTERN.test(p.userPath) && isValidStreamId(p.streamId);

  // These routes answer CORS themselves (methods, exposed Location): an @fastify/cors the host app registered
  // (the origin's, GET/HEAD only) is told to leave them alone.
  const own = { config: { cors: false } };

  return async (app: FastifyInstance) => {
    app.addContentTypeParser(
      ['application/sdp', 'application/trickle-ice-sdpfrag'],
      { parseAs: 'string', bodyLimit: MAX_SDP_BYTES },
      (_request, body, done) => done(null, body),
    );
    app.addHook('onRequest', async (request, reply) => {
      if (request.url.startsWith('/whep/')) cors(request, reply);
    });

    const preflight = (methods: string) => async (request: FastifyRequest, reply: FastifyReply) => {
      reply
        .code(204)
        .header('access-control-allow-methods', methods)
        .header('access-control-allow-headers', 'content-type, authorization, if-match')
        .header('access-control-max-age', '86400');
      if (request.headers['access-control-request-method'] === undefined) reply.header('allow', methods);
      return reply.send();
    };
    app.options('/whep/:userPath/:streamId', own, preflight('OPTIONS, POST'));
    app.options('/whep/:userPath/:streamId/:sessionId', own, preflight('OPTIONS, DELETE, PATCH'));

    app.post<{ Params: StreamParams }>('/whep/:userPath/:streamId', own, async (request, reply) => {
      const { userPath, streamId } = request.params;
      if (!validPath(request.params)) {
        return refuse(reply, ErrorCodes.WEBRTC_STREAM_NOT_FOUND, 'no such stream path');
      }
      if (options.authorize && !(await options.authorize(request, userPath, streamId))) {
        return reply.code(401).header('cache-control', 'no-store').send('unauthorized\n');
      }
      const type = (request.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
      if (type !== 'application/sdp' || typeof request.body !== 'string') {
        return refuse(reply, ErrorCodes.WEBRTC_CONTENT_TYPE, 'the offer must be application/sdp');
      }
      try {
        const { sessionId, answer } = await server.offer(userPath, streamId, request.body);
        return reply
          .code(201)
          .header('location', `/whep/${userPath}/${streamId}/${sessionId}`)
          .header('etag', `"${sessionId}"`)
          .header('cache-control', 'no-store')
          .type('application/sdp')
          .send(answer);
      } catch (err) {
        if (isRelayError(err) && STATUS[err.code]) return refuse(reply, err.code, err.message);
        throw err;
      }
    });

    app.delete<{ Params: SessionParams }>(
      '/whep/:userPath/:streamId/:sessionId',
      own,
      async (request, reply) => {
        const { userPath, streamId, sessionId } = request.params;
        if (!SESSION_ID_PATTERN.test(sessionId) || !server.has(sessionId, userPath, streamId)) {
          return refuse(reply, ErrorCodes.WEBRTC_SESSION_NOT_FOUND, 'no such WHEP session');
        }
        server.remove(sessionId);
        return reply.code(200).header('cache-control', 'no-store').send();
      },
    );

    app.patch('/whep/:userPath/:streamId/:sessionId', own, async (_request, reply) =>
      reply
        .code(405)
        .header('allow', 'OPTIONS, DELETE')
        .send('trickle ICE and ICE restarts are not supported\n'),
    );
  };
}
