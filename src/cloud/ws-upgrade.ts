/**
 * The one way the cloud's WebSockets accept a connection: check the upgrade's query against its schema
 * (400), authenticate it (401), then hand the socket over. `wsPathRoutes` gives the same paths a route in the
 * app for plain requests (an upgrade never reaches fastify: Node hands it to the 'upgrade' listener), so
 * they answer 426 with the error envelope instead of a bare 404, and `inject()` reaches them.
 */
import { type IncomingMessage, STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import type { WebSocket, WebSocketServer } from 'ws';
import { z } from 'zod';
import { type ErrorCode, ErrorCodes, httpStatusOf } from '../shared/errors.ts';
import { cloudErrorHandler, ERROR_RESPONSES, sendError, useZodSchemas } from './http-schemas.ts';

/** What an upgrade's query may carry: a user token, or (dev mode) a plain userId; nothing else is read. */
export const UpgradeQuery = z.object({
  token: z.string().max(4096).optional(),
  userId: z.string().max(256).optional(),
});

/** Whether an upgrade's query fits UpgradeQuery (repeated or oversized values do not). */
export function upgradeQueryValid(url: string | undefined): boolean {
  const params = new URL(url ?? '/', 'http://x').searchParams;
  const query: Record<string, string | string[]> = {};
  for (const key of new Set(params.keys())) {
    const all = params.getAll(key);
    query[key] = all.length === 1 ? all[0]! : all;
  }
  return UpgradeQuery.safeParse(query).success;
}

/** Refuses an upgrade on the raw socket: the registry's status for `code`, and the envelope as the body. */
export function refuseUpgrade(socket: Duplex, code: ErrorCode, error: string): void {
  const status = httpStatusOf(code);
  const body = JSON.stringify({ error, code });
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nConnection: close\r\ncontent-type: application/json\r\n` +
      `content-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );
}

/** Plain (non-upgrade) requests to the WebSocket paths: 426 with the envelope. */
export async function wsPathRoutes(app: FastifyInstance, options: { paths: string[] }): Promise<void> {
  useZodSchemas(app);
  app.setErrorHandler(cloudErrorHandler(ErrorCodes.CLOUD_BAD_REQUEST));
  for (const path of options.paths)
    app.get(
      path,
      { schema: { querystring: UpgradeQuery, response: ERROR_RESPONSES } },
      async (_request, reply) =>
        sendError(
          reply.header('upgrade', 'websocket'),
          ErrorCodes.CLOUD_UPGRADE_REQUIRED,
          'a WebSocket upgrade is required',
        ),
    );
}

export function acceptAuthenticated(
  wss: WebSocketServer,
  authenticate: (request: IncomingMessage) => Promise<string | null>,
  upgrade: { request: IncomingMessage; socket: Duplex; head: Buffer },
  adopt: (userId: string, ws: WebSocket) => void,
): void {
  const { request, socket, head } = upgrade;
  void authenticate(request).then(
    (userId) => {
      if (!userId) {
        refuseUpgrade(socket, ErrorCodes.CLOUD_UNAUTHORIZED, 'unauthorized');
        return;
      }
      wss.handleUpgrade(request, socket, head, (ws) => adopt(userId, ws));
    },
    () => socket.destroy(),
  );
}
