/**
 * The operator dashboard (architecture §2, §4 `web/`), as a fastify plugin on the cloud:
 * - `GET /dashboard` (and `/` redirects to it) serves `web/index.html`; `/dashboard/app.js`, `style.css` and
 *   `hls.min.js` (from the hls.js package) are the only other files. The names are fixed here: nothing from a
 *   request becomes a file path, so there is nothing to traverse. The page carries no secret and needs none.
 * - `GET /api/dashboard` answers one JSON snapshot: the live relays (load, cpu, draining, health, last
 *   heartbeat) and the streams they carry (relay-side state, stats, HLS URL, the managed stream's phase,
 *   and whether its output works: `outputOf`, so a stream that publishes but makes no HLS shows as failing
 *   with the reason instead of as live).
 *   `GET /api/dashboard/events` pushes such a snapshot every `refreshMs` as server-sent events.
 * - Both API routes need `Authorization: Bearer <CONTROL_API_TOKEN>` (compared in constant time): 503 with
 *   DASHBOARD_DISABLED when no token is configured, 401 when it is wrong. The browser keeps the token out of
 *   URLs sent to servers (it reads it from the fragment), so it reaches no access log.
 *
 * SSE ownership: one timer serves every client; it runs only while a client is connected, and `close()`
 * (preClose) ends every client and clears it. Clients are capped; one that does not read its stream (its
 * buffer grows past a bound) is dropped rather than buffered for.
 *
 * Schemas (http-schemas.ts): the snapshot is serialized through `DashboardSnapshotSchema`, so only the fields
 * declared below reach the page; errors are the envelope with the registry's status.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { RelayStreamState, StreamStats } from '../contracts/relay-api.ts';
import { ErrorCodes } from '../shared/errors.ts';
import type { Logger } from '../shared/logger.ts';
import type { FleetRelay, FleetStream } from './fleet-view.ts';
import { cloudErrorHandler, ERROR_RESPONSES, sendError, useZodSchemas } from './http-schemas.ts';
import type { RelayRecord } from './store.ts';

/** What the dashboard needs of the store: the live relays. */
export interface DashboardRelaySource {
  liveRelays(now: number): Promise<RelayRecord[]>;
}

/** What the dashboard needs of the fleet view. */
export interface DashboardFleet {
  relays(): FleetRelay[];
  streams(hlsBaseOf?: (relayId: string) => string | undefined): FleetStream[];
}

/** The cloud's managed stream behind a relay stream, when there is one. */
export interface DashboardManaged {
  /** The lifecycle phase (initializing, active, reconnecting, stopping…). */
  phase: string;
  /** What the apps were last told. */
  status: string;
  viewers: number;
}

export interface DashboardOptions {
  relays: DashboardRelaySource;
  fleet: DashboardFleet;
  /** Looks up the managed stream a relay stream belongs to. */
  managed?: (userId: string, streamId: string) => DashboardManaged | undefined;
  /** CONTROL_API_TOKEN; unset: the API answers 503 (the page is still served). */
  token: string | undefined;
  /** How often the event stream pushes a snapshot. */
  refreshMs: number;
  /** A relay not heard from for this long is shown as late (about two heartbeats). */
  lateAfterMs: number;
  /** A stream that made no HLS segment this long after it began is failing (default 15 s). */
  outputGraceMs?: number;
  /** Concurrent event-stream clients (default 32). */
  maxClients?: number;
  /** Told the number of event-stream clients whenever it changes (metrics, tests). */
  onClientCount?: (count: number) => void;
  now?: () => number;
  log?: Logger;
}

export type RelayHealth = 'ok' | 'late' | 'draining';

export interface DashboardRelay {
  relayId: string;
  rtmpUrl: string;
  hlsUrl: string;
  region: string | null;
  maxStreams: number;
  /** Live streams it reported, and reservations the cloud holds on it. */
  streams: number;
  reserved: number;
  /** (streams + reserved) / maxStreams, as placement counts it. */
  load: number;
  cpu: number;
  draining: boolean;
  lastSeenSecondsAgo: number;
  health: RelayHealth;
  healthy: boolean;
}

/**
 * Whether a stream's output works, as far as the cloud can tell: `starting` until its first HLS segment (for
 * up to the grace), `failing` (with the reason) when none came, or the managed stream is in error; `unknown`
 * when its relay sends no stats; `ended` once the relay ended it.
 */
export type OutputHealth = 'ok' | 'starting' | 'failing' | 'unknown' | 'ended';

export interface DashboardOutput {
  health: OutputHealth;
  reason: string | null;
}

export interface DashboardStream {
  userId: string;
  streamId: string;
  relayId: string;
  state: RelayStreamState;
  hlsUrl: string | null;
  /** WHEP playback on the relay (the page's WebRTC player), when it announced one. */
  webrtcUrl: string | null;
  stats: StreamStats | null;
  managed: DashboardManaged | null;
  output: DashboardOutput;
}

export interface DashboardSnapshot {
  generatedAt: string;
  relays: DashboardRelay[];
  streams: DashboardStream[];
}

/** The snapshot as the page receives it: these fields and no other (checked against the types above). */
export const DashboardSnapshotSchema = z.object({
  generatedAt: z.string(),
  relays: z.array(
    z.object({
      relayId: z.string(),
      rtmpUrl: z.string(),
      hlsUrl: z.string(),
      region: z.string().nullable(),
      maxStreams: z.number(),
      streams: z.number(),
      reserved: z.number(),
      load: z.number(),
      cpu: z.number(),
      draining: z.boolean(),
      lastSeenSecondsAgo: z.number(),
      health: z.enum(['ok', 'late', 'draining']),
      healthy: z.boolean(),
    }),
  ),
  streams: z.array(
    z.object({
      userId: z.string(),
      streamId: z.string(),
      relayId: z.string(),
      state: RelayStreamState,
      hlsUrl: z.string().nullable(),
      webrtcUrl: z.string().nullable(),
      stats: StreamStats.nullable(),
      managed: z.object({ phase: z.string(), status: z.string(), viewers: z.number() }).nullable(),
      output: z.object({
        health: z.enum(['ok', 'starting', 'failing', 'unknown', 'ended']),
        reason: z.string().nullable(),
      }),
    }),
  ),
}) satisfies z.ZodType<DashboardSnapshot>;

/** Routes that take no input: their errors have the envelope's schema. */
const NO_INPUT = { schema: { response: ERROR_RESPONSES } };

export const DASHBOARD_PATH = '/dashboard';
export const DEFAULT_OUTPUT_GRACE_MS = 15_000;
export const DEFAULT_MAX_SSE_CLIENTS = 32;
/** A client that let this much of its event stream pile up unread is dropped. */
const MAX_CLIENT_BUFFER_BYTES = 4 * 1024 * 1024;

const WEB_DIR = fileURLToPath(new URL('../../web/', import.meta.url));

/** The files the dashboard serves: URL → file and type. Nothing else is ever read. */
const ASSETS: { url: string; file: () => string; type: string }[] = [
  { url: '/dashboard/app.js', file: () => `${WEB_DIR}app.js`, type: 'text/javascript; charset=utf-8' },
  { url: '/dashboard/style.css', file: () => `${WEB_DIR}style.css`, type: 'text/css; charset=utf-8' },
  {
    url: '/dashboard/hls.min.js',
    file: () => createRequire(import.meta.url).resolve('hls.js/dist/hls.min.js'),
    type: 'text/javascript; charset=utf-8',
  },
];

/**
 * The page's policy: scripts and styles from here only; media and playlists from any http(s) origin (the
 * relays, a CDN), blob: for MediaSource and hls.js's worker.
 */
const PAGE_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self' http: https:",
  "media-src 'self' blob: http: https:",
  "worker-src 'self' blob:",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

const digest = (value: string): Buffer => createHash('sha256').update(value).digest();

/** Whether a stream's output works (see OutputHealth). Pure. */
export function outputOf(
  stream: { state: RelayStreamState; stats: StreamStats | null },
  managed: DashboardManaged | null,
  graceMs: number,
): DashboardOutput {
  if (stream.state === 'ended') return { health: 'ended', reason: null };
  if (managed?.status === 'error') return { health: 'failing', reason: 'the managed stream is in error' };
  const stats = stream.stats;
  if (!stats || stats.segments === undefined) return { health: 'unknown', reason: null };
  if (stats.segments > 0) return { health: 'ok', reason: null };
  const uptime = stats.uptimeSeconds ?? 0;
  if (uptime * 1000 < graceMs) return { health: 'starting', reason: 'waiting for the first HLS segment' };
  return { health: 'failing', reason: `no HLS segment after ${Math.round(uptime)} s` };
}

/** The snapshot, from the store's live relays and the fleet view's streams. */
export async function dashboardSnapshot(
  options: Pick<DashboardOptions, 'relays' | 'fleet' | 'managed' | 'lateAfterMs' | 'outputGraceMs'>,
  now: number,
): Promise<DashboardSnapshot> {
  const live = await options.relays.liveRelays(now);
  const byId = new Map(live.map((r) => [r.relayId, r]));
  const relays = live.map((r): DashboardRelay => {
    const ago = Math.max(0, now - r.lastSeen);
    const health: RelayHealth = r.draining ? 'draining' : ago > options.lateAfterMs ? 'late' : 'ok';
    return {
      relayId: r.relayId,
      rtmpUrl: r.rtmpUrl,
      hlsUrl: r.hlsUrl,
      region: r.region ?? null,
      maxStreams: r.maxStreams,
      streams: r.streams,
      reserved: r.reserved,
      load: r.maxStreams > 0 ? (r.streams + r.reserved) / r.maxStreams : 1,
      cpu: r.cpu,
      draining: r.draining,
      lastSeenSecondsAgo: Math.round(ago / 100) / 10,
      health,
      healthy: health === 'ok',
    };
  });
  const streams = options.fleet
    .streams((relayId) => byId.get(relayId)?.hlsUrl)
    // The store decides which relays are alive; a stream on one it no longer lists is not shown.
    .filter((s) => byId.has(s.relayId))
    .map((s): DashboardStream => {
      const managed = options.managed?.(s.userId, s.streamId) ?? null;
      return {
        userId: s.userId,
        streamId: s.streamId,
        relayId: s.relayId,
        state: s.state,
        hlsUrl: s.hlsUrl,
        webrtcUrl: s.webrtcUrl,
        stats: s.stats,
        managed,
        output: outputOf(s, managed, options.outputGraceMs ?? DEFAULT_OUTPUT_GRACE_MS),
      };
    });
  return { generatedAt: new Date(now).toISOString(), relays, streams };
}

export async function dashboardRoutes(app: FastifyInstance, options: DashboardOptions): Promise<void> {
  const now = options.now ?? Date.now;
  const log = options.log?.child({ component: 'dashboard' });
  const maxClients = options.maxClients ?? DEFAULT_MAX_SSE_CLIENTS;
  // Self-contained (its tests mount it on a bare fastify): its own schema compilers and error answers.
  useZodSchemas(app);
  app.setErrorHandler(cloudErrorHandler(ErrorCodes.CLOUD_BAD_REQUEST, log));

  const page = await loadAsset(`${WEB_DIR}index.html`, log);
  const assets = new Map<string, { type: string; body: Buffer }>();
  for (const asset of ASSETS) {
    const body = await loadAsset(asset.file, log);
    if (body) assets.set(asset.url, { type: asset.type, body });
  }

  const common = (reply: FastifyReply): FastifyReply =>
    reply
      .header('cache-control', 'no-cache')
      .header('x-content-type-options', 'nosniff')
      .header('referrer-policy', 'no-referrer');

  const sendPage = async (_request: FastifyRequest, reply: FastifyReply) => {
    if (!page) return sendError(reply, ErrorCodes.DASHBOARD_NOT_INSTALLED, 'dashboard not installed');
    return common(reply)
      .header('content-security-policy', PAGE_CSP)
      .header('x-frame-options', 'DENY')
      .type('text/html; charset=utf-8')
      .send(page);
  };
  app.get('/', NO_INPUT, async (_request, reply) => reply.redirect(DASHBOARD_PATH, 302));
  app.get(DASHBOARD_PATH, NO_INPUT, sendPage);
  app.get(`${DASHBOARD_PATH}/`, NO_INPUT, sendPage);
  for (const url of assets.keys()) {
    app.get(url, NO_INPUT, async (_request, reply) => {
      const asset = assets.get(url)!;
      return common(reply).type(asset.type).send(asset.body);
    });
  }

  // Event-stream clients and the one timer that feeds them.
  const clients = new Set<ServerResponse>();
  let timer: NodeJS.Timeout | null = null;
  let ticking = false;
  let closed = false;

  const drop = (res: ServerResponse): void => {
    if (!clients.delete(res)) return;
    res.end();
    if (clients.size === 0 && timer) {
      clearInterval(timer);
      timer = null;
    }
    options.onClientCount?.(clients.size);
  };
  const push = (res: ServerResponse, frame: string): void => {
    if (res.writableLength > MAX_CLIENT_BUFFER_BYTES) {
      log?.warn({ buffered: res.writableLength }, 'dashboard client too slow: dropped');
      drop(res);
      return;
    }
    res.write(frame);
  };
  const frameOf = async (): Promise<string> =>
    `event: snapshot\ndata: ${JSON.stringify(DashboardSnapshotSchema.parse(await dashboardSnapshot(options, now())))}\n\n`;
  const tick = async (): Promise<void> => {
    if (ticking || clients.size === 0) return;
    ticking = true;
    try {
      const frame = await frameOf();
      for (const res of clients) push(res, frame);
    } catch (err) {
      log?.warn({ err: (err as Error).message }, 'dashboard snapshot failed (store unreachable?)');
    } finally {
      ticking = false;
    }
  };
  const closeAll = async (): Promise<void> => {
    closed = true;
    for (const res of [...clients]) drop(res);
    if (timer) clearInterval(timer);
    timer = null;
  };
  app.addHook('preClose', closeAll);
  app.addHook('onClose', closeAll);

  void app.register(async (api) => {
    const expected = options.token === undefined ? null : digest(options.token);
    api.addHook('onRequest', async (request: FastifyRequest, reply: FastifyReply) => {
      reply.header('cache-control', 'no-store');
      if (!expected) {
        return sendError(
          reply,
          ErrorCodes.DASHBOARD_DISABLED,
          'dashboard API disabled: CONTROL_API_TOKEN is not configured',
        );
      }
      const header = request.headers.authorization ?? '';
      const token = header.startsWith('Bearer ') ? header.slice(7) : '';
      // Hash both sides so the comparison is constant-time whatever the lengths.
      if (!token || !timingSafeEqual(digest(token), expected)) {
        return sendError(reply, ErrorCodes.DASHBOARD_UNAUTHORIZED, 'unauthorized');
      }
    });

    api.get(
      '/api/dashboard',
      { schema: { response: { 200: DashboardSnapshotSchema, ...ERROR_RESPONSES } } },
      async () => dashboardSnapshot(options, now()),
    );

    // The 200 is an event stream written by hand (snapshots built by dashboardSnapshot above).
    api.get('/api/dashboard/events', NO_INPUT, async (request, reply) => {
      const refusal = (): FastifyReply | null => {
        if (closed) return sendError(reply, ErrorCodes.CLOUD_CLOSING, 'the cloud is closing');
        if (clients.size < maxClients) return null;
        return sendError(
          reply.header('retry-after', '5'),
          ErrorCodes.DASHBOARD_TOO_MANY_CLIENTS,
          'too many dashboard clients',
        );
      };
      const refused = refusal();
      if (refused) return refused;
      // The first frame is built before the response is taken over, so a failing store answers 500; the
      // cap is checked again after it, as other clients may have come meanwhile.
      const first = await frameOf();
      const late = refusal();
      if (late) return late;
      reply.hijack();
      const res = reply.raw;
      // The client may have gone while the first frame was built: then there is nothing to own.
      if (res.destroyed || request.raw.socket?.destroyed) {
        res.end();
        return;
      }
      res.writeHead(200, {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-store',
        'x-content-type-options': 'nosniff',
        'x-accel-buffering': 'no',
      });
      clients.add(res);
      options.onClientCount?.(clients.size);
      // Owned by the request: released when the client goes (or the app closes).
      res.once('close', () => drop(res));
      push(res, first);
      timer ??= setInterval(() => void tick(), options.refreshMs);
    });
  });
}

/** Reads one of the fixed files; a missing one is logged and then answered 404, the cloud still starts. */
async function loadAsset(file: string | (() => string), log: Logger | undefined): Promise<Buffer | null> {
  let path = '';
  try {
    path = typeof file === 'string' ? file : file();
    return await readFile(path);
  } catch (err) {
    log?.warn({ file: path, err: (err as Error).message }, 'dashboard file missing: not served');
    return null;
  }
}
