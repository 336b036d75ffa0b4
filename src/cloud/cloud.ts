/**
 * The composition root of the cloud (`rtmp-relay cloud`, and the cloud half of `dev`): the store and the
 * managed streams' state (Redis when REDIS_URL is set, with a pub/sub bus between replicas and a lease for
 * the once-only timers; else memory), the glasses gateway, managed streams, the fleet view the relays'
 * heartbeats feed, and the HTTP app (relay API behind the relay guard, managed-stream REST + SSE, /watch
 * redirects, the operator dashboard behind CONTROL_API_TOKEN, the Cloudflare-compatible Live Input API behind
 * CLOUD_API_TOKEN, on the same store and Redis). Closed children first: streams, lease, bus,
 * gateways, app, store, the Redis connection.
 */

import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { Redis } from 'ioredis';
import { UserId } from '../contracts/relay-api.ts';
import { srtStreamPassphrase } from '../contracts/srt.ts';
import type { RelayConfig } from '../shared/config.ts';
import { ErrorCodes } from '../shared/errors.ts';
import type { Logger } from '../shared/logger.ts';
import { buildCloudApp } from './app.ts';
import { APP_WS_PATH, AppGateway } from './app-gateway.ts';
import { type CloudBus, MemoryBus, RedisBus } from './bus.ts';
import { DASHBOARD_PATH, dashboardRoutes } from './dashboard-routes.ts';
import { FleetView } from './fleet-view.ts';
import { GLASSES_WS_PATH, GlassesGateway } from './glasses-gateway.ts';
import { ALWAYS_HELD, type Lease, RedisLease } from './lease.ts';
import { withLiveInputs } from './live-inputs/relay-hooks.ts';
import { liveInputRoutes } from './live-inputs/routes.ts';
import { LiveInputs } from './live-inputs/service.ts';
import { MemoryLiveInputStore } from './live-inputs/state.ts';
import { RedisLiveInputStore } from './live-inputs/state-redis.ts';
import { type LiveInputEvent, WebhookSender } from './live-inputs/webhooks.ts';
import { managedRoutes } from './managed-routes.ts';
import { ManagedStreams } from './managed-streams.ts';
import { relayEvents } from './relay-events.ts';
import { createRelayGuard } from './relay-guard.ts';
import { StaticRelays } from './static-relays.ts';
import type { CloudStore } from './store.ts';
import { MemoryCloudStore } from './store-memory.ts';
import { REDIS_CLIENT_OPTIONS, RedisCloudStore } from './store-redis.ts';
import { MemoryStreamState } from './stream-state.ts';
import { RedisStreamState } from './stream-state-redis.ts';
import { bearerOf, verifyUserToken } from './user-tokens.ts';
import { refuseUpgrade, upgradeQueryValid, wsPathRoutes } from './ws-upgrade.ts';

export interface CloudHandle {
  port: number;
  url: string;
  app: FastifyInstance;
  store: CloudStore;
  streams: ManagedStreams;
  /** The Live Input API's service; null when it is off (CLOUD_API_TOKEN / CLOUD_ACCOUNT_ID unset). */
  liveInputs: LiveInputs | null;
  glasses: GlassesGateway;
  fleet: FleetView;
  /** Where the operator dashboard is served (its API needs CONTROL_API_TOKEN). */
  dashboardUrl: string;
  close(): Promise<void>;
}

export interface StartCloudOptions {
  relaySecret: string;
  /** Signs publish tokens; null when publish auth is off (dev). */
  publishTokenSecret: string | null;
  /** Signs and checks user tokens; null accepts a plain `?userId=` / body userId (dev mode only). */
  userTokenSecret: string | null;
  /** How often the dashboard's event stream pushes a snapshot (default: the heartbeat period, at most 2 s). */
  dashboardRefreshMs?: number;
  /** How long a stream may publish without an HLS segment before the dashboard shows it failing. */
  dashboardOutputGraceMs?: number;
  /** False when the caller prints the dashboard link itself (dev prints the one that signs in). */
  announceDashboard?: boolean;
}

export async function startCloud(
  config: RelayConfig,
  log: Logger,
  options: StartCloudOptions,
): Promise<CloudHandle> {
  const c = config.cloud;
  const store: CloudStore = c.redisUrl
    ? new RedisCloudStore({ redis: c.redisUrl, relayExpiryMs: c.relayExpiryMs, log })
    : new MemoryCloudStore({ relayExpiryMs: c.relayExpiryMs });
  // Managed streams in Redis too, when there is one: replicas share them and a restart resumes them.
  const shared = c.redisUrl ? new Redis(c.redisUrl, REDIS_CLIENT_OPTIONS) : null;
  shared?.on('error', (err) => log.debug({ err: err.message }, 'cloud state connection error'));
  const bus: CloudBus = shared ? new RedisBus({ redis: shared, log }) : new MemoryBus();
  const lease: Lease = shared
    ? new RedisLease({
        redis: shared,
        name: 'timers',
        ttlMs: Math.max(2000, Math.min(10_000, 2 * c.heartbeatMs)),
        log,
      })
    : ALWAYS_HELD;
  if (bus instanceof RedisBus) await bus.ready;
  // The glasses gateway first: managed streams send through it, and it tells them what the glasses say.
  const glasses = new GlassesGateway({
    authenticate: (request) => userOf(request.headers, request.url),
    log,
  });
  const srtPassphrase = (key: string): string | null =>
    config.srt.passphraseSecret !== undefined
      ? srtStreamPassphrase(config.srt.passphraseSecret, key)
      : (config.srt.passphrase ?? null);
  const streams = new ManagedStreams({
    store,
    state: shared ? new RedisStreamState({ redis: shared }) : new MemoryStreamState(),
    bus,
    lease,
    glassesIngest: c.glassesIngest,
    srtPassphrase,
    glasses,
    log,
    tokenSecret: options.publishTokenSecret,
    keepAliveMs: c.keepAliveMs,
    ackTimeoutMs: c.ackTimeoutMs,
    maxMissedAcks: c.maxMissedAcks,
    relayCheckMs: c.heartbeatMs,
    relayExpiryMs: c.relayExpiryMs,
    hlsPublicBaseUrl: c.hlsPublicBaseUrl,
    staticRelays: c.staticRelays,
  });
  await streams.ready;
  /** Relay calls and glasses messages go on without their caller: a failure (store away) is logged. */
  const background = (what: string, work: Promise<unknown>): void => {
    work.catch((err: Error) => log.warn({ err: err.message, what }, 'managed stream update failed'));
  };
  const userOf = async (
    headers: { authorization?: string | undefined },
    url: string | undefined,
  ): Promise<string | null> => {
    if (options.userTokenSecret) return verifyUserToken(options.userTokenSecret, bearerOf(headers, url));
    const claimed = new URL(url ?? '/', 'http://x').searchParams.get('userId');
    return claimed && UserId.safeParse(claimed).success ? claimed : null;
  };
  glasses.on('message', (userId, message) =>
    background('glasses message', streams.glassesMessage(userId, message)),
  );
  glasses.on('connected', (userId) => background('glasses connected', streams.glassesConnected(userId)));
  const fleet = new FleetView({ expiryMs: c.relayExpiryMs });
  const guard = createRelayGuard({
    managedRelayOf: async (userId, streamId) => {
      // From the state store, not the cache: another replica may have moved the stream a moment ago.
      const m = await streams.load(streamId);
      return m && m.userId === userId ? m.state.relayId : undefined;
    },
    assignedRelayOf: (key) => store.relayOf(key),
    hlsBaseOf: async (relayId) =>
      streams.staticRelay(relayId)?.hlsUrl ??
      (await store.liveRelays(Date.now())).find((r) => r.relayId === relayId)?.hlsUrl ??
      null,
    publicBase: c.hlsPublicBaseUrl,
  });
  // The Cloudflare-compatible Live Input API, when its token and account are configured.
  const liveApi = c.liveInputApi;
  const liveStore = shared ? new RedisLiveInputStore({ redis: shared }) : new MemoryLiveInputStore();
  const webhooks = liveApi
    ? new WebhookSender({
        config: () => liveStore.webhook(),
        log: log.child({ component: 'live-input-webhooks' }),
      })
    : null;
  const liveInputs = liveApi
    ? new LiveInputs({
        store: liveStore,
        relays: store,
        placement: new StaticRelays(store, c.staticRelays),
        defaultUserId: liveApi.accountId,
        tokenSecret: options.publishTokenSecret,
        srtPassphrase,
        hlsPublicBaseUrl: c.hlsPublicBaseUrl,
        relayExpiryMs: c.relayExpiryMs,
        log,
        ...(webhooks ? { notify: (uid: string, event: LiveInputEvent) => webhooks.notify(uid, event) } : {}),
      })
    : null;
  const managedEvents = relayEvents(streams, fleet, log);
  const app = buildCloudApp({
    guard,
    log,
    store,
    relaySecret: options.relaySecret,
    relaySecretPrevious: c.relaySecretPrevious,
    events: liveInputs ? withLiveInputs(managedEvents, liveInputs, log) : managedEvents,
  });
  if (liveApi && liveInputs) {
    const routes = {
      inputs: liveInputs,
      token: liveApi.token,
      accountId: liveApi.accountId,
      log: log.child({ component: 'live-input-api' }),
    };
    // At Cloudflare's `/client/v4` base and at the root: clients change only the base URL.
    void app.register(liveInputRoutes, routes);
    void app.register(liveInputRoutes, { ...routes, prefix: '/client/v4' });
  }
  void app.register(dashboardRoutes, {
    relays: store,
    fleet,
    managed: (userId, streamId) => {
      const m = streams.get(streamId);
      if (!m || m.userId !== userId) return undefined;
      return { phase: m.state.phase, status: m.state.reported.status, viewers: m.viewers.size };
    },
    token: config.api.token,
    refreshMs: options.dashboardRefreshMs ?? Math.min(c.heartbeatMs, 2000),
    ...(options.dashboardOutputGraceMs ? { outputGraceMs: options.dashboardOutputGraceMs } : {}),
    lateAfterMs: c.heartbeatMs * 2.5,
    log,
  });
  const apps = new AppGateway({
    streams,
    authenticate: (request) => userOf(request.headers, request.url),
    log,
  });
  void app.register(managedRoutes, {
    streams,
    sseKeepAliveMs: c.sseKeepAliveMs,
    log: log.child({ component: 'managed-api' }),
    authenticate: async (request, claimed) =>
      options.userTokenSecret ? (await userOf(request.headers, request.url)) === claimed : true,
  });
  void app.register(wsPathRoutes, { paths: [GLASSES_WS_PATH, APP_WS_PATH] });
  // One upgrade router: each WebSocket path has its gateway, anything else is refused.
  const onUpgrade = (request: IncomingMessage, socket: Duplex, head: Buffer): void => {
    const path = (request.url ?? '').split('?')[0];
    const known = path === GLASSES_WS_PATH || path === APP_WS_PATH;
    if (known && !upgradeQueryValid(request.url))
      refuseUpgrade(socket, ErrorCodes.CLOUD_BAD_REQUEST, 'invalid querystring');
    else if (path === GLASSES_WS_PATH) glasses.handleUpgrade(request, socket, head);
    else if (path === APP_WS_PATH) apps.handleUpgrade(request, socket, head);
    else refuseUpgrade(socket, ErrorCodes.CLOUD_NOT_FOUND, 'no such route');
  };
  app.server.on('upgrade', onUpgrade);
  let closed = false;
  const close = async (): Promise<void> => {
    if (closed) return;
    closed = true;
    await streams.close();
    webhooks?.close();
    await liveStore.close();
    await lease.close();
    await bus.close();
    app.server.off('upgrade', onUpgrade);
    glasses.close();
    apps.close();
    await app.close();
    await store.close();
    if (shared) {
      if (shared.status === 'ready') await shared.quit().catch(() => shared.disconnect());
      else shared.disconnect();
    }
  };
  try {
    await app.listen({ port: c.port, host: c.host });
  } catch (err) {
    await close();
    throw err;
  }
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : c.port;
  log.info({ port, store: c.redisUrl ? 'redis' : 'memory' }, 'cloud listening');
  const url = `http://${c.host === '0.0.0.0' ? 'localhost' : c.host}:${port}`;
  const dashboardUrl = `${url}${DASHBOARD_PATH}`;
  if (options.announceDashboard === false) log.debug({ url: dashboardUrl }, 'dashboard');
  else if (config.api.token) log.info({ url: dashboardUrl }, 'dashboard (its API takes CONTROL_API_TOKEN)');
  else log.warn({ url: dashboardUrl }, 'dashboard API off: set CONTROL_API_TOKEN to use it');
  if (liveApi) log.info({ accounts: `${url}/accounts/{account_id}/stream/live_inputs` }, 'Live Input API on');
  return { port, url, app, store, streams, liveInputs, glasses, fleet, dashboardUrl, close };
}
