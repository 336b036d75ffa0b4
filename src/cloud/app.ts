/**
 * The cloud's HTTP app, `build(opts)` style (fastify): tests drive it with `inject()`, the `cloud` command
 * listens with it. Each concern is an encapsulated plugin with its own auth (relay routes: the shared
 * secret). Managed-stream routes, gateways and the dashboard join as their issues land.
 */
import Fastify, { type FastifyInstance } from 'fastify';
import { type RelayEvents, type RelayRoutesStore, relayRoutes } from './relay-routes.ts';

export interface CloudAppOptions {
  store: RelayRoutesStore;
  relaySecret: string;
  /** RELAY_SHARED_SECRET_PREVIOUS, during a rotation. */
  relaySecretPrevious?: string | undefined;
  events?: RelayEvents;
  now?: () => number;
}

export function buildCloudApp(options: CloudAppOptions): FastifyInstance {
  const app: FastifyInstance = Fastify({ bodyLimit: 1024 * 1024 });
  app.get('/health', async () => ({ status: 'ok' }));
  void app.register(relayRoutes, {
    store: options.store,
    secret: options.relaySecret,
    previousSecret: options.relaySecretPrevious,
    ...(options.events ? { events: options.events } : {}),
    ...(options.now ? { now: options.now } : {}),
  });
  return app;
}
