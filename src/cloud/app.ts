/**
 * The cloud's HTTP app, `build(opts)` style (fastify): tests drive it with `inject()`, the `cloud` command
 * listens with it. Each concern is an encapsulated plugin with its own auth (relay routes: the shared
 * secret); managed-stream routes and the dashboard join it in cloud.ts. Every route declares zod schemas
 * (http-schemas.ts): requests are checked before a handler runs, responses carry only declared fields, and
 * every error (ours, fastify's, an unknown path, a malformed URL) answers the envelope with the registry's
 * status for its code. `cloudRoutes(app)` lists the routes with their schemas (the schema test walks it).
 */
import Fastify, { type FastifyInstance, type FastifySchema } from 'fastify';
import { z } from 'zod';
import { ErrorCodes } from '../shared/errors.ts';
import type { Logger } from '../shared/logger.ts';
import { cloudErrorHandler, ERROR_RESPONSES, sendError, useZodSchemas } from './http-schemas.ts';
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

/** A route as registered: what the schema test walks. */
export interface CloudRoute {
  method: string;
  url: string;
  schema: FastifySchema | undefined;
}

const routesOf = new WeakMap<FastifyInstance, CloudRoute[]>();

/** Every route of an app built by buildCloudApp (plugins included), HEAD routes left out. */
export function cloudRoutes(app: FastifyInstance): CloudRoute[] {
  return [...(routesOf.get(app) ?? [])];
}

export const HealthResponse = z.object({ status: z.literal('ok') });

export function buildCloudApp(options: CloudAppOptions): FastifyInstance {
  const log = options.log?.child({ component: 'cloud-http' });
  const app: FastifyInstance = Fastify({
    bodyLimit: 1024 * 1024,
    // A URL fastify cannot decode is a bad request in the envelope, like every other refusal.
    frameworkErrors: (_err, _request, reply) =>
      sendError(reply, ErrorCodes.CLOUD_BAD_REQUEST, 'malformed request URL'),
  });
  const routes: CloudRoute[] = [];
  routesOf.set(app, routes);
  app.addHook('onRoute', (route) => {
    for (const method of [route.method].flat())
      if (method !== 'HEAD') routes.push({ method, url: route.url, schema: route.schema });
  });
  useZodSchemas(app);
  app.setErrorHandler(cloudErrorHandler(ErrorCodes.CLOUD_BAD_REQUEST, log));
  app.setNotFoundHandler((_request, reply) => sendError(reply, ErrorCodes.CLOUD_NOT_FOUND, 'no such route'));
  app.get('/health', { schema: { response: { 200: HealthResponse, ...ERROR_RESPONSES } } }, async () => ({
    status: 'ok' as const,
  }));
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
