/**
 * Watches the HLS origin from outside (a fastify `onResponse` hook added by the relay): each answered
 * request is timed by kind for the latency histogram, and each successful one marks its client as a viewer
 * of the stream. The origin itself stays unaware of metrics; the client key (address + user agent) is kept
 * in memory only.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ViewerTracker } from './viewers.ts';

export const HLS_REQUEST_KINDS = [
  'playlist',
  'playlist_blocking',
  'init',
  'segment',
  'part',
  'other',
] as const;
export type HlsRequestKind = (typeof HLS_REQUEST_KINDS)[number];

/** What an origin request asked for, from its file name and query (pure). */
export function hlsRequestKind(file: string | undefined, query: Record<string, unknown>): HlsRequestKind {
  if (!file) return 'other';
  if (file.endsWith('.m3u8')) return '_HLS_msn' in query ? 'playlist_blocking' : 'playlist';
  if (file.endsWith('.mp4')) return 'init';
  if (/-seg\d+\.m4s$/.test(file)) return 'segment';
  if (file.endsWith('.m4s')) return 'part';
  return 'other';
}

export interface ObserveOriginOptions {
  /** The stream key served at /hls/{userPath}/{streamId}/, if any. */
  streamKey(userPath: string, streamId: string): string | undefined;
  viewers: ViewerTracker;
  observe(kind: HlsRequestKind, seconds: number): void;
  now?: () => number;
}

interface HlsRouteParams {
  userPath?: string;
  streamId?: string;
  file?: string;
}

/** Adds the hook; call before the origin listens. */
export function observeOrigin(origin: FastifyInstance, options: ObserveOriginOptions): void {
  const now = options.now ?? Date.now;
  origin.addHook('onResponse', async (request: FastifyRequest, reply) => {
    const params = (request.params ?? {}) as HlsRouteParams;
    const query = (request.query ?? {}) as Record<string, unknown>;
    options.observe(hlsRequestKind(params.file, query), reply.elapsedTime / 1000);
    if (reply.statusCode >= 400 || !params.userPath || !params.streamId) return;
    const key = options.streamKey(params.userPath, params.streamId);
    if (key) options.viewers.seen(key, `${request.ip}|${request.headers['user-agent'] ?? ''}`, now());
  });
}
