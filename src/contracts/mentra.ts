/**
 * MentraOS managed-streaming wire messages (shared/reference/mentra-protocol.md): names and fields kept
 * exactly, so this project can stand in for that cloud. JSON with a `type` field over the glasses and app
 * WebSockets; `managed_stream_status` also over SSE.
 */
import { z } from 'zod';

// ---------------------------------------------------------------------------------------- cloud → glasses
export const StartRtmpStream = z.object({
  type: z.literal('start_rtmp_stream'),
  sessionId: z.string(),
  rtmpUrl: z.string(),
  appId: z.literal('MANAGED_STREAM'),
  streamId: z.string(),
  video: z.record(z.string(), z.unknown()).optional(),
  audio: z.record(z.string(), z.unknown()).optional(),
  stream: z.record(z.string(), z.unknown()).optional(),
  timestamp: z.number(),
});
export const StopRtmpStream = z.object({
  type: z.literal('stop_rtmp_stream'),
  sessionId: z.string(),
  appId: z.literal('MANAGED_STREAM'),
  streamId: z.string(),
  timestamp: z.number(),
});
export const KeepRtmpStreamAlive = z.object({
  type: z.literal('keep_rtmp_stream_alive'),
  streamId: z.string(),
  ackId: z.string(),
});
export const CloudToGlasses = z.discriminatedUnion('type', [
  StartRtmpStream,
  StopRtmpStream,
  KeepRtmpStreamAlive,
]);
export type CloudToGlasses = z.infer<typeof CloudToGlasses>;

/**
 * Current firmware (2026, `StreamCommandHandler`): one start for every protocol, picked from the URL's
 * scheme (`rtmp(s)://`, `srt://`, `http(s)://` = WHIP); `v`/`a` are accepted for `video`/`audio`.
 */
export const StartStream = z.object({
  type: z.literal('start_stream'),
  streamUrl: z.string(),
  streamId: z.string(),
  video: z.record(z.string(), z.unknown()).optional(),
  audio: z.record(z.string(), z.unknown()).optional(),
  flash: z.boolean().optional(),
  sound: z.boolean().optional(),
});
export const StopStream = z.object({ type: z.literal('stop_stream'), streamId: z.string() });
export const KeepStreamAlive = z.object({
  type: z.literal('keep_stream_alive'),
  streamId: z.string(),
  ackId: z.string(),
});
export const GetStreamStatus = z.object({
  type: z.literal('get_stream_status'),
  streamId: z.string().optional(),
});
/** What current firmware takes. */
export const CloudToGlassesStream = z.discriminatedUnion('type', [
  StartStream,
  StopStream,
  KeepStreamAlive,
  GetStreamStatus,
]);
export type CloudToGlassesStream = z.infer<typeof CloudToGlassesStream>;

/** The dialects glasses speak: the seed's `*_rtmp_stream` commands, or current firmware's `*_stream`. */
export type GlassesDialect = 'rtmp' | 'stream';

/** A command in the seed's names, as current firmware names it. */
export function toStreamDialect(message: CloudToGlasses): CloudToGlassesStream {
  switch (message.type) {
    case 'start_rtmp_stream':
      return {
        type: 'start_stream',
        streamUrl: message.rtmpUrl,
        streamId: message.streamId,
        ...(message.video ? { video: message.video } : {}),
        ...(message.audio ? { audio: message.audio } : {}),
      };
    case 'stop_rtmp_stream':
      return { type: 'stop_stream', streamId: message.streamId };
    case 'keep_rtmp_stream_alive':
      return { type: 'keep_stream_alive', streamId: message.streamId, ackId: message.ackId };
  }
}

// ---------------------------------------------------------------------------------------- glasses → cloud
export const GlassesStreamStatus = z.enum([
  'initializing',
  'connecting',
  'streaming',
  'active',
  'reconnecting',
  'reconnected',
  'stopping',
  'stopped',
  'error',
  'timeout',
]);
export type GlassesStreamStatus = z.infer<typeof GlassesStreamStatus>;
export const RtmpStreamStatus = z.object({
  type: z.literal('rtmp_stream_status'),
  streamId: z.string().optional(),
  status: GlassesStreamStatus,
  errorDetails: z.string().max(1000).optional(),
  attempt: z.number().optional(),
  maxAttempts: z.number().optional(),
  reason: z.string().max(500).optional(),
  stats: z
    .object({ bitrate: z.number(), fps: z.number(), droppedFrames: z.number(), duration: z.number() })
    .partial()
    .optional(),
});
export const KeepAliveAck = z.object({
  type: z.literal('keep_alive_ack'),
  streamId: z.string(),
  ackId: z.string(),
  timestamp: z.number().optional(),
});
export const GlassesToCloud = z.discriminatedUnion('type', [RtmpStreamStatus, KeepAliveAck]);
export type GlassesToCloud = z.infer<typeof GlassesToCloud>;

// --------------------------------------------------------------------------------------------- app ↔ cloud
export const ManagedStreamRequest = z.object({
  type: z.literal('managed_stream_request'),
  packageName: z.string().min(1).max(256),
  quality: z.enum(['720p', '1080p']).optional(),
  enableWebRTC: z.boolean().optional(),
  video: z.record(z.string(), z.unknown()).optional(),
  audio: z.record(z.string(), z.unknown()).optional(),
  stream: z.object({ durationLimit: z.number().optional() }).optional(),
  restreamDestinations: z
    .array(z.object({ url: z.string().max(1024), name: z.string().max(128).optional() }))
    .max(10)
    .optional(),
  /** Record the stream (Cloudflare's `recording.mode` name); `off` (default) unless the relay records all. */
  recording: z.object({ mode: z.enum(['automatic', 'off']) }).optional(),
});
export const ManagedStreamStop = z.object({
  type: z.literal('managed_stream_stop'),
  packageName: z.string().min(1).max(256),
});
export const StreamStatusCheck = z.object({ type: z.literal('stream_status_check') });
export const AppToCloud = z.discriminatedUnion('type', [
  ManagedStreamRequest,
  ManagedStreamStop,
  StreamStatusCheck,
]);
export type AppToCloud = z.infer<typeof AppToCloud>;

/** What apps see (`reconnecting` is this project's addition). */
export const AppStreamStatus = z.enum([
  'initializing',
  'preparing',
  'active',
  'reconnecting',
  'stopping',
  'stopped',
  'error',
]);
export type AppStreamStatus = z.infer<typeof AppStreamStatus>;
export const ManagedStreamStatus = z.object({
  type: z.literal('managed_stream_status'),
  status: AppStreamStatus,
  streamId: z.string().optional(),
  hlsUrl: z.string().optional(),
  dashUrl: z.string().optional(),
  webrtcUrl: z.string().optional(),
  previewUrl: z.string().optional(),
  thumbnailUrl: z.string().optional(),
  message: z.string().optional(),
  outputs: z
    .array(
      z.object({
        url: z.string(),
        name: z.string().optional(),
        status: z.enum(['active', 'error', 'stopped']),
        error: z.string().optional(),
      }),
    )
    .optional(),
  /** The stream's recordings (this project's addition): URLs of replays once uploaded. */
  recordings: z
    .array(
      z.object({
        id: z.string(),
        state: z.enum(['uploading', 'ready']),
        hlsUrl: z.string(),
        mp4Url: z.string(),
        thumbnailUrl: z.string().nullable().optional(),
        durationSeconds: z.number().optional(),
      }),
    )
    .optional(),
});
export type ManagedStreamStatus = z.infer<typeof ManagedStreamStatus>;
