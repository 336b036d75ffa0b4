/**
 * The relay-facing API of the cloud (architecture §3), as a fastify plugin: register, heartbeat,
 * deregister, stream-started, stream-ended, hls-ready (the seed's path) and destinations. Every call is
 * schema-validated (zod contracts), idempotent, and authenticated with the shared secret, compared in
 * constant time; a refused call changes nothing. The plugin declares the small store interface it needs.
 * Stream events (stream-started, stream-ended, hls-ready) first pass `guard`: only the relay that holds the
 * stream may speak for it, and only with URLs under its own registered base; a refusal (403) comes before
 * any change, the store's included. Requests and answers have zod schemas (http-schemas.ts): a body that breaks
 * its contract is a 400 RELAY_BAD_REQUEST before the handler runs.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { storeKey } from '../contracts/keys.ts';
import {
  DeregisterRequest,
  DestinationsResponse,
  HeartbeatRequest,
  HeartbeatResponse,
  HlsReadyRequest,
  RecordingReadyRequest,
  RegisterRequest,
  RelayApiPaths,
  RestreamStatusRequest,
  StreamEventRequest,
  StreamId,
  type StreamRecordingOption,
  type StreamToEnd,
  UserId,
} from '../contracts/relay-api.ts';
import { ErrorCodes } from '../shared/errors.ts';
import type { Logger } from '../shared/logger.ts';
import { cloudErrorHandler, ERROR_RESPONSES, OkResponse, sendError, useZodSchemas } from './http-schemas.ts';

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
  /** A stream's recording option (sent with its destinations). */
  recording?(userId: string, streamId: string): Promise<StreamRecordingOption | null>;
  /** A relay uploaded (part of) a stream's recording. */
  recordingReady?(event: RecordingReadyRequest): void;
  /** The relay's re-streaming outputs for a stream changed. */
  restreamStatus?(event: RestreamStatusRequest): void;
  /** Streams a heartbeat reported that the cloud wants ended now (sent back in the heartbeat's reply). */
  streamsToEnd?(hb: HeartbeatRequest): Promise<StreamToEnd[]> | StreamToEnd[];
}

export type StreamEventKind = 'stream-started' | 'stream-ended' | 'hls-ready' | 'recording-ready';

/** Why a stream event was refused: a stable code and a short reason (safe to send and log). */
export interface GuardRefusal {
  code: typeof ErrorCodes.RELAY_NOT_HOLDER | typeof ErrorCodes.RELAY_URL_REFUSED;
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

const DestinationsParams = z.object({ userId: UserId, streamId: StreamId });

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
    await sendError(reply, refusal.code, refusal.reason);
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
      return sendError(reply, ErrorCodes.RELAY_UNAUTHORIZED, 'unauthorized');
    }
  });
  useZodSchemas(app);
  app.setErrorHandler(cloudErrorHandler(ErrorCodes.RELAY_BAD_REQUEST, options.log));

  /** A POST whose body is `body` and whose answer is `ok` (or `{ok: true}`). */
  const post = <B extends z.ZodTypeAny>(body: B, ok: z.ZodTypeAny = OkResponse) => ({
    schema: { body, response: { 200: ok, ...ERROR_RESPONSES } },
  });

  app.post<{ Body: RegisterRequest }>(RelayApiPaths.register, post(RegisterRequest), async (request) => {
    const r = request.body;
    events.contact?.(r.relayId);
    await options.store.upsertRelay(r, now());
    return { ok: true };
  });

  app.post<{ Body: HeartbeatRequest }>(
    RelayApiPaths.heartbeat,
    post(HeartbeatRequest, HeartbeatResponse),
    async (request, reply) => {
      const hb = request.body;
      events.contact?.(hb.relayId);
      const live = hb.streams
        .filter((s) => s.state !== 'ended')
        .map(({ userId, streamId }) => ({ userId, streamId }));
      const known = await options.store.heartbeat(
        hb.relayId,
        { streams: live, cpu: hb.cpu, draining: hb.draining },
        now(),
      );
      if (!known) return sendError(reply, ErrorCodes.RELAY_UNKNOWN, 'unknown relay: register first');
      events.heartbeat?.(hb);
      const end = (await events.streamsToEnd?.(hb)) ?? [];
      const answer: HeartbeatResponse = end.length > 0 ? { ok: true, end } : { ok: true };
      return answer;
    },
  );

  app.post<{ Body: DeregisterRequest }>(
    RelayApiPaths.deregister,
    post(DeregisterRequest),
    async (request) => {
      const r = request.body;
      await options.store.removeRelay(r.relayId);
      events.deregistered?.(r.relayId);
      return { ok: true };
    },
  );

  app.post<{ Body: StreamEventRequest }>(
    RelayApiPaths.streamStarted,
    post(StreamEventRequest),
    async (request, reply) => {
      const e = request.body;
      if (await refused(reply, 'stream-started', e)) return reply;
      events.streamStarted?.(e);
      return { ok: true };
    },
  );

  app.post<{ Body: StreamEventRequest }>(
    RelayApiPaths.streamEnded,
    post(StreamEventRequest),
    async (request, reply) => {
      const e = request.body;
      if (await refused(reply, 'stream-ended', e)) return reply;
      await options.store.release(storeKey(e.userId, e.streamId));
      events.streamEnded?.(e);
      return { ok: true };
    },
  );

  app.post<{ Body: RestreamStatusRequest }>(
    RelayApiPaths.restreamStatus,
    post(RestreamStatusRequest),
    async (request) => {
      const e = request.body;
      events.restreamStatus?.(e);
      return { ok: true };
    },
  );

  app.post<{ Body: RecordingReadyRequest }>(
    RelayApiPaths.recordingReady,
    post(RecordingReadyRequest),
    async (request, reply) => {
      const { recording } = request.body;
      const urls = [recording.hlsUrl, recording.mp4Url, recording.thumbnailUrl].filter(
        (u): u is string => typeof u === 'string',
      );
      if (await refused(reply, 'recording-ready', request.body, urls)) return reply;
      events.recordingReady?.(request.body);
      return { ok: true };
    },
  );

  app.post<{ Body: HlsReadyRequest }>(
    RelayApiPaths.hlsReady,
    post(HlsReadyRequest),
    async (request, reply) => {
      const e = request.body;
      const urls = [e.hlsUrl, e.dashUrl, e.webrtcUrl].filter((u): u is string => Boolean(u));
      if (await refused(reply, 'hls-ready', e, urls)) return reply;
      events.hlsReady?.(e);
      return { ok: true };
    },
  );

  app.get<{ Params: z.infer<typeof DestinationsParams> }>(
    `${RelayApiPaths.destinations}/:userId/:streamId`,
    { schema: { params: DestinationsParams, response: { 200: DestinationsResponse, ...ERROR_RESPONSES } } },
    async (request) => {
      const { userId, streamId } = request.params;
      const recording = (await events.recording?.(userId, streamId)) ?? null;
      return {
        destinations: (await events.destinations?.(userId, streamId)) ?? [],
        ...(recording ? { recording } : {}),
      };
    },
  );
}
