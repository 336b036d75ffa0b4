/**
 * The relay-facing API of the cloud (architecture §3), as a fastify plugin: register, heartbeat,
 * deregister, stream-started, stream-ended, hls-ready (the seed's path) and destinations. Every call is
 * schema-validated (zod contracts), idempotent, and authenticated with the shared secret, compared in
 * constant time; a refused call changes nothing. The plugin declares the small store interface it needs.
 * Stream events (stream-started, stream-ended, hls-ready) first pass `guard`: only the relay that holds the
 * stream may speak for it, and only with URLs under its own registered base; a refusal (403) comes before
 * any change, the store's included.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { z } from 'zod';
import { storeKey } from '../contracts/keys.ts';
import {
  DeregisterRequest,
  HeartbeatRequest,
  type HeartbeatResponse,
  HlsReadyRequest,
  RegisterRequest,
  RelayApiPaths,
  RestreamStatusRequest,
  StreamEventRequest,
  StreamId,
  type StreamToEnd,
  UserId,
} from '../contracts/relay-api.ts';
import type { Logger } from '../shared/logger.ts';

/** What these routes need from the store. */
export interface RelayRoutesStore {
  upsertRelay(
    relay: {
      relayId: string;
      rtmpUrl: string;
      hlsUrl: string;
      maxStreams: number;
      region?: string | undefined;
    },
    now: number,
  ): Promise<void>;
  heartbeat(
    relayId: string,
    report: { streams: { userId: string; streamId: string }[]; cpu: number; draining: boolean },
    now: number,
  ): Promise<boolean>;
  removeRelay(relayId: string): Promise<void>;
  release(streamKey: string): Promise<void>;
}

/** What the rest of the cloud hears from relays (the managed-stream lifecycle and the dashboard listen). */
export interface RelayEvents {
  /**
   * An authenticated register or heartbeat from this relay arrived, before the store is asked: the relay
   * is alive even when the store does not know it (Redis came back empty) or cannot answer.
   */
  contact?(relayId: string): void;
  /** A heartbeat the store accepted (the relay is known), with every stream and its stats as sent. */
  heartbeat?(hb: HeartbeatRequest): void;
  /** The relay deregistered (after the store forgot it). */
  deregistered?(relayId: string): void;
  streamStarted?(event: z.infer<typeof StreamEventRequest>): void;
  streamEnded?(event: z.infer<typeof StreamEventRequest>): void;
  hlsReady?(event: z.infer<typeof HlsReadyRequest>): void;
  destinations?(
    userId: string,
    streamId: string,
  ): { url: string; name?: string | undefined }[] | Promise<{ url: string; name?: string | undefined }[]>;
  /** The relay's re-streaming outputs for a stream changed. */
  restreamStatus?(event: RestreamStatusRequest): void;
  /** Streams a heartbeat reported that the cloud wants ended now (sent back in the heartbeat's reply). */
  streamsToEnd?(hb: HeartbeatRequest): Promise<StreamToEnd[]> | StreamToEnd[];
}

export type StreamEventKind = 'stream-started' | 'stream-ended' | 'hls-ready';

/** Why a stream event was refused: a stable code and a short reason (safe to send and log). */
export interface GuardRefusal {
  code: 'RELAY_NOT_HOLDER' | 'RELAY_URL_REFUSED';
  reason: string;
}

/**
 * Whether `relayId` may report this about the stream now; null allows. `urls` are the playback URLs an
 * hls-ready announces (empty for the other events).
 */
export type StreamEventGuard = (event: {
  kind: StreamEventKind;
  relayId: string;
  userId: string;
  streamId: string;
  urls: string[];
}) => Promise<GuardRefusal | null>;

export interface RelayRoutesOptions {
  store: RelayRoutesStore;
  /** RELAY_SHARED_SECRET. */
  secret: string;
  /** RELAY_SHARED_SECRET_PREVIOUS: also accepted while relays move to the new secret. */
  previousSecret?: string | undefined;
  events?: RelayEvents;
  /** Asked before every stream event; absent allows all (unit tests of the other routes). */
  guard?: StreamEventGuard;
  /** Where refusals are told (relay id, stream, code; never a URL the relay sent). */
  log?: Logger;
  now?: () => number;
}

function digest(value: string): Buffer {
  return createHash('sha256').update(value).digest();
}

export async function relayRoutes(app: FastifyInstance, options: RelayRoutesOptions): Promise<void> {
  const expected = [options.secret, options.previousSecret]
    .filter((s): s is string => s !== undefined)
    .map(digest);
  const now = options.now ?? Date.now;
  const events = options.events ?? {};
  /** Sends the guard's refusal and answers true, or false when the event may go on. */
  const refused = async (
    reply: FastifyReply,
    kind: StreamEventKind,
    e: { relayId: string; userId: string; streamId: string },
    urls: string[] = [],
  ): Promise<boolean> => {
    const refusal = await options.guard?.({
      kind,
      relayId: e.relayId,
      userId: e.userId,
      streamId: e.streamId,
      urls,
    });
    if (!refusal) return false;
    options.log?.warn({ kind, relayId: e.relayId, streamId: e.streamId, code: refusal.code }, refusal.reason);
    await reply.code(403).send({ error: refusal.reason, code: refusal.code });
    return true;
  };

  app.addHook('onRequest', async (request: FastifyRequest, reply: FastifyReply) => {
    const header = request.headers.authorization ?? '';
    const token = header.startsWith('Bearer ') ? header.slice(7) : '';
    // Hash both sides so the comparison is constant-time whatever the lengths.
    const presented = token ? digest(token) : null;
    // Compare with every accepted secret (no early exit), so timing says nothing about which matched.
    const matches = expected.map((e) => presented !== null && timingSafeEqual(presented, e));
    if (!matches.includes(true)) {
      return reply.code(401).send({ error: 'unauthorized', code: 'RELAY_UNAUTHORIZED' });
    }
  });

  const body = <S extends z.ZodTypeAny>(
    schema: S,
    request: FastifyRequest,
    reply: FastifyReply,
  ): z.infer<S> | undefined => {
    const parsed = schema.safeParse(request.body);
    if (parsed.success) return parsed.data;
    void reply.code(400).send({
      error: 'invalid body',
      code: 'RELAY_BAD_REQUEST',
      issues: parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).slice(0, 10),
    });
    return undefined;
  };

  app.post(RelayApiPaths.register, async (request, reply) => {
    const r = body(RegisterRequest, request, reply);
    if (!r) return reply;
    events.contact?.(r.relayId);
    await options.store.upsertRelay(r, now());
    return { ok: true };
  });

  app.post(RelayApiPaths.heartbeat, async (request, reply) => {
    const hb = body(HeartbeatRequest, request, reply);
    if (!hb) return reply;
    events.contact?.(hb.relayId);
    const live = hb.streams
      .filter((s) => s.state !== 'ended')
      .map(({ userId, streamId }) => ({ userId, streamId }));
    const known = await options.store.heartbeat(
      hb.relayId,
      { streams: live, cpu: hb.cpu, draining: hb.draining },
      now(),
    );
    if (!known)
      return reply.code(404).send({ error: 'unknown relay: register first', code: 'RELAY_UNKNOWN' });
    events.heartbeat?.(hb);
    const end = (await events.streamsToEnd?.(hb)) ?? [];
    const answer: HeartbeatResponse = end.length > 0 ? { ok: true, end } : { ok: true };
    return answer;
  });

  app.post(RelayApiPaths.deregister, async (request, reply) => {
    const r = body(DeregisterRequest, request, reply);
    if (!r) return reply;
    await options.store.removeRelay(r.relayId);
    events.deregistered?.(r.relayId);
    return { ok: true };
  });

  app.post(RelayApiPaths.streamStarted, async (request, reply) => {
    const e = body(StreamEventRequest, request, reply);
    if (!e || (await refused(reply, 'stream-started', e))) return reply;
    events.streamStarted?.(e);
    return { ok: true };
  });

  app.post(RelayApiPaths.streamEnded, async (request, reply) => {
    const e = body(StreamEventRequest, request, reply);
    if (!e || (await refused(reply, 'stream-ended', e))) return reply;
    await options.store.release(storeKey(e.userId, e.streamId));
    events.streamEnded?.(e);
    return { ok: true };
  });

  app.post(RelayApiPaths.restreamStatus, async (request, reply) => {
    const e = body(RestreamStatusRequest, request, reply);
    if (!e) return reply;
    events.restreamStatus?.(e);
    return { ok: true };
  });

  app.post(RelayApiPaths.hlsReady, async (request, reply) => {
    const e = body(HlsReadyRequest, request, reply);
    if (!e) return reply;
    const urls = [e.hlsUrl, e.dashUrl, e.webrtcUrl].filter((u): u is string => Boolean(u));
    if (await refused(reply, 'hls-ready', e, urls)) return reply;
    events.hlsReady?.(e);
    return { ok: true };
  });

  app.get<{ Params: { userId: string; streamId: string } }>(
    `${RelayApiPaths.destinations}/:userId/:streamId`,
    async (request, reply) => {
      const userId = UserId.safeParse(request.params.userId);
      const streamId = StreamId.safeParse(request.params.streamId);
      if (!userId.success || !streamId.success)
        return reply.code(400).send({ error: 'invalid stream', code: 'RELAY_BAD_REQUEST' });
      return { destinations: (await events.destinations?.(userId.data, streamId.data)) ?? [] };
    },
  );
}
