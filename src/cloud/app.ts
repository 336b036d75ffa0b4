/**
 * The cloud's HTTP app, `build(opts)` style (fastify): tests drive it with `inject()`, the `cloud` command
 * listens with it. Each concern is an encapsulated plugin with its own auth (relay routes: the shared
 * secret). Managed-stream routes, gateways and the dashboard join as their issues land.
 */
import Fastify, { type FastifyInstance } from 'fastify';
import { ErrorCodes, isRelayError } from '../shared/errors.ts';
import type { Logger } from '../shared/logger.ts';
import {
  type RelayEvents,
  type RelayRoutesStore,
  relayRoutes,
  type StreamEventGuard,
} from './relay-routes.ts';

export interface CloudAppOptions {
  store: RelayRoutesStore;
  relaySecret: string;
  /** RELAY_SHARED_SECRET_PREVIOUS, during a rotation. */
  relaySecretPrevious?: string | undefined;
  events?: RelayEvents;
  /** Who may report stream events (relay-guard.ts); absent allows every authenticated relay. */
  guard?: StreamEventGuard;
  log?: Logger;
  now?: () => number;
}

export function buildCloudApp(options: CloudAppOptions): FastifyInstance {
  const app: FastifyInstance = Fastify({ bodyLimit: 1024 * 1024 });
  // The store being unreachable (Redis down) is a temporary condition, not a bug: 503, try again soon.
  // Everything else keeps fastify's answer (its status code, or 500).
  app.setErrorHandler(async (err, _request, reply) => {
    if (isRelayError(err) && err.code === ErrorCodes.CLOUD_STORE_FAILED)
      return reply
        .code(503)
        .header('retry-after', '1')
        .send({ error: 'the cloud store is unavailable; try again', code: err.code });
    throw err;
  });
  app.get('/health', async () => ({ status: 'ok' }));
  void app.register(relayRoutes, {
    store: options.store,
    secret: options.relaySecret,
    previousSecret: options.relaySecretPrevious,
    ...(options.events ? { events: options.events } : {}),
    ...(options.guard ? { guard: options.guard } : {}),
    ...(options.log ? { log: options.log.child({ component: 'relay-api' }) } : {}),
    ...(options.now ? { now: options.now } : {}),
  });
  return app;
}
