/**
 * The relay-facing API of the cloud (architecture §3), as a fastify plugin: register, heartbeat,
 * deregister, stream-started, stream-ended, hls-ready (the seed's path) and destinations. Every call is
 * schema-validated (zod contracts), idempotent, and authenticated with the shared secret, compared in
 * constant time; a refused call changes nothing. The plugin declares the small store interface it needs.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { z } from 'zod';
import {
  DeregisterRequest,
  HeartbeatRequest,
  HlsReadyRequest,
  RegisterRequest,
  RelayApiPaths,
  RestreamStatusRequest,
  StreamEventRequest,
  StreamId,
  UserId,
} from '../contracts/relay-api.ts';

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
  destinations?(userId: string, streamId: string): { url: string; name?: string }[];
  /** The relay's re-streaming outputs for a stream changed. */
  restreamStatus?(event: RestreamStatusRequest): void;
}

export interface RelayRoutesOptions {
  store: RelayRoutesStore;
  /** RELAY_SHARED_SECRET. */
  secret: string;
  /** RELAY_SHARED_SECRET_PREVIOUS: also accepted while relays move to the new secret. */
  previousSecret?: string | undefined;
  events?: RelayEvents;
  now?: () => number;
}

function digest(value: string): Buffer {
  return createHash('sha256').update(value).digest();
}

export function streamKey(userId: string, streamId: string): string {
  return `${userId}/${streamId}`;
}

export async function relayRoutes(app: FastifyInstance, options: RelayRoutesOptions): Promise<void> {
  const expected = [options.secret, options.previousSecret]
    .filter((s): s is string => s !== undefined)
    .map(digest);
  const now = options.now ?? Date.now;
  const events = options.events ?? {};

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
    return { ok: true };
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
    if (!e) return reply;
    events.streamStarted?.(e);
    return { ok: true };
  });

  app.post(RelayApiPaths.streamEnded, async (request, reply) => {
    const e = body(StreamEventRequest, request, reply);
    if (!e) return reply;
    await options.store.release(streamKey(e.userId, e.streamId));
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
      return { destinations: events.destinations?.(userId.data, streamId.data) ?? [] };
    },
  );
}
