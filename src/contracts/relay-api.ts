/**
 * Relay ↔ cloud wire contract (architecture §3): JSON over HTTP with `Authorization: Bearer
 * <RELAY_SHARED_SECRET>`, every call idempotent. Schemas are zod; the types are inferred from them, and the
 * cloud, the relay agent and the tests import them from here and nowhere else.
 */
import { z } from 'zod';
import { STREAM_ID_PATTERN, USER_ID_PATTERN } from './names.ts';

export const RelayId = z.string().regex(/^[A-Za-z0-9._-]{1,64}$/);
export const UserId = z.string().regex(USER_ID_PATTERN);
export const StreamId = z.string().regex(STREAM_ID_PATTERN);
/** URLs relays announce: only these schemes, so nobody can push `javascript:` or `file:` to viewers. */
const urlWithScheme = (schemes: RegExp, max: number) =>
  z
    .string()
    .max(max)
    .url()
    .refine((u) => schemes.test(u), 'unsupported URL scheme');
const RtmpBaseUrl = urlWithScheme(/^rtmps?:\/\//i, 512);
const SrtBaseUrl = urlWithScheme(/^srt:\/\//i, 512);
const HttpUrl = (max: number) => urlWithScheme(/^https?:\/\//i, max);

/**
 * A relay announces its ingest bases (`rtmpUrl`; `srtUrl` and `whipUrl` once it serves them) and its
 * playback base (`hlsUrl`, which also serves DASH and WHEP when the relay does).
 */
export const RegisterRequest = z.object({
  relayId: RelayId,
  rtmpUrl: RtmpBaseUrl,
  hlsUrl: HttpUrl(512),
  maxStreams: z.number().int().min(0).max(100_000),
  region: z.string().max(64).optional(),
  srtUrl: SrtBaseUrl.optional(),
  whipUrl: HttpUrl(512).optional(),
});
export type RegisterRequest = z.infer<typeof RegisterRequest>;

/** Relay-side stream states (architecture §6). */
export const RelayStreamState = z.enum(['publishing', 'reconnecting', 'ended']);
export type RelayStreamState = z.infer<typeof RelayStreamState>;

/**
 * What a relay measures of one stream, sent with each heartbeat (for the dashboard) and listed by the
 * control API. Every field is optional so older relays and streams without media yet still validate.
 */
export const StreamStats = z.object({
  /** copy | transcode | auto (what was asked) and what runs now. */
  profile: z.string().max(32).optional(),
  pipelineProfile: z.string().max(32).optional(),
  videoCodec: z.string().max(32).optional(),
  audioCodec: z.string().max(32).optional(),
  width: z.number().int().min(0).max(16_384).optional(),
  height: z.number().int().min(0).max(16_384).optional(),
  /** Ingest video frames per second over the last few seconds. */
  fps: z.number().min(0).max(1000).optional(),
  /** Mean seconds between keyframes over the last few GOPs. */
  keyframeIntervalSeconds: z.number().min(0).max(3600).optional(),
  /** Ingest bitrate (audio + video payload), kbit/s over the last few seconds. */
  bitrateKbps: z.number().min(0).max(1_000_000).optional(),
  /** Distinct HLS clients seen in the last viewer window. */
  viewers: z.number().int().min(0).max(10_000_000).optional(),
  uptimeSeconds: z.number().min(0).optional(),
  segments: z.number().int().min(0).optional(),
  /** The live publish's ingest (rtmp, srt, whip); absent while no publisher is connected. */
  protocol: z.string().max(16).optional(),
});
export type StreamStats = z.infer<typeof StreamStats>;

export const HeartbeatStream = z.object({
  userId: UserId,
  streamId: StreamId,
  state: RelayStreamState,
  stats: StreamStats.optional(),
});
export type HeartbeatStream = z.infer<typeof HeartbeatStream>;

export const HeartbeatRequest = z.object({
  relayId: RelayId,
  streams: z.array(HeartbeatStream).max(100_000),
  /** Process CPU, 0–1 per core summed (load tie-breaker). */
  cpu: z.number().min(0).max(1024),
  draining: z.boolean(),
});
export type HeartbeatRequest = z.infer<typeof HeartbeatRequest>;

/** A stream the cloud wants ended on the relay now (its managed stream stopped). */
export const StreamToEnd = z.object({ userId: UserId, streamId: StreamId });
export type StreamToEnd = z.infer<typeof StreamToEnd>;

/**
 * The heartbeat's answer: `end` lists streams the relay reported that no longer exist for the cloud (their
 * managed stream stopped), to end at once (ENDLIST, load released) instead of after the reconnect window.
 */
export const HeartbeatResponse = z.object({
  ok: z.literal(true),
  end: z.array(StreamToEnd).max(100_000).optional(),
});
export type HeartbeatResponse = z.infer<typeof HeartbeatResponse>;

export const DeregisterRequest = z.object({ relayId: RelayId });
export type DeregisterRequest = z.infer<typeof DeregisterRequest>;

export const StreamEventRequest = z.object({
  relayId: RelayId,
  userId: UserId,
  streamId: StreamId,
  reason: z.string().max(200).optional(),
});
export type StreamEventRequest = z.infer<typeof StreamEventRequest>;

/**
 * The seed's path and body, kept: `POST /api/rtmp-relay/hls-ready`, plus the relay that sends it (required:
 * without it anyone with the relay secret could point any user's stream anywhere) and the other playback
 * URLs once the relay serves them. Every URL must sit under the sender's registered HLS base.
 */
export const HlsReadyRequest = z.object({
  userId: UserId,
  streamId: StreamId,
  hlsUrl: HttpUrl(1024),
  dashUrl: z.union([z.literal(''), HttpUrl(1024)]).default(''),
  webrtcUrl: HttpUrl(1024).optional(),
  relayId: RelayId,
});
export type HlsReadyRequest = z.infer<typeof HlsReadyRequest>;

export const RestreamDestination = z.object({
  url: z.string().max(1024),
  name: z.string().max(128).optional(),
});
export const DestinationsResponse = z.object({ destinations: z.array(RestreamDestination) });
export type DestinationsResponse = z.infer<typeof DestinationsResponse>;

/** A stream's re-streaming destinations as the relay sees them (URLs with the stream key redacted). */
export const RestreamOutput = z.object({
  url: z.string().max(1024),
  name: z.string().max(128).optional(),
  status: z.enum(['active', 'error', 'stopped']),
  error: z.string().max(500).optional(),
});
export const RestreamStatusRequest = z.object({
  relayId: RelayId,
  userId: UserId,
  streamId: StreamId,
  outputs: z.array(RestreamOutput).max(32),
});
export type RestreamStatusRequest = z.infer<typeof RestreamStatusRequest>;

export const RelayApiPaths = {
  register: '/api/relay/register',
  heartbeat: '/api/relay/heartbeat',
  deregister: '/api/relay/deregister',
  streamStarted: '/api/relay/stream-started',
  streamEnded: '/api/relay/stream-ended',
  hlsReady: '/api/rtmp-relay/hls-ready',
  destinations: '/api/relay/destinations',
  restreamStatus: '/api/relay/restream-status',
} as const;

/** Publish token claims (JWT HS256 signed by the cloud with PUBLISH_TOKEN_SECRET). */
export const PublishTokenClaims = z.object({
  sub: UserId,
  sid: StreamId,
  rly: RelayId,
  exp: z.number().int(),
});
export type PublishTokenClaims = z.infer<typeof PublishTokenClaims>;
