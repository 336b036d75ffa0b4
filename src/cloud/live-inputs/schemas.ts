/**
 * The wire shapes of the Cloudflare-compatible Live Input API (issue 22), as zod schemas: request bodies and
 * answers of `/accounts/{account_id}/stream/live_inputs[/{uid}[/outputs[/{output_uid}]]]`, with Cloudflare's
 * field names (uid, rtmps {url, streamKey}, srt {url, streamId, passphrase}, webRTC, webRTCPlayback, status,
 * meta, recording {mode, timeoutSeconds, requireSignedURLs, allowedOrigins, hideLiveViewerCount},
 * deleteRecordingAfterDays, enabled, created, modified) and its envelope `{result, success, errors, messages}`
 * with `errors: [{code, message, source?: {pointer}}]`. What we add is additive and optional: `hls` and
 * `dash` playback URLs, `connection` (the publish as the relay measures it), and an output's `status`.
 * Cloudflare ignores body fields it does not know; so do these schemas (zod strips them).
 */
import { z } from 'zod';
import { UserId } from '../../contracts/relay-api.ts';

/** A live input's uid and an output's: 32 lowercase hex, like Cloudflare's. */
export const UID_PATTERN = /^[0-9a-f]{32}$/;

/** `meta` is the caller's own key-value store: kept as sent, at most this much JSON. */
export const MAX_META_BYTES = 8192;

const Meta = z
  .record(z.string(), z.unknown())
  .refine((m) => Buffer.byteLength(JSON.stringify(m)) <= MAX_META_BYTES, {
    message: `meta is at most ${MAX_META_BYTES} bytes of JSON`,
  })
  .refine((m) => m.userId === undefined || UserId.safeParse(m.userId).success, {
    message: 'meta.userId: 1-128 of A-Z a-z 0-9 . _ + @ -, not starting with . and without ..',
    path: ['userId'],
  });

export const RecordingBody = z.object({
  mode: z.enum(['off', 'automatic']).optional(),
  timeoutSeconds: z.number().int().min(0).max(86_400).optional(),
  requireSignedURLs: z.boolean().optional(),
  allowedOrigins: z.array(z.string().min(1).max(253)).max(100).optional(),
  hideLiveViewerCount: z.boolean().optional(),
});

/** POST and PUT bodies (Cloudflare documents the same fields for both; PUT changes only what it names). */
export const LiveInputBody = z.preprocess(
  (body) => body ?? {},
  z.object({
    meta: Meta.optional(),
    recording: RecordingBody.optional(),
    /** Cloudflare's documented minimum is 30; null removes it. */
    deleteRecordingAfterDays: z.number().min(30).max(36_500).nullable().optional(),
    defaultCreator: z.string().max(128).optional(),
    enabled: z.boolean().optional(),
  }),
);
export type LiveInputBody = z.infer<typeof LiveInputBody>;

/** Re-stream destinations the relay's pushers can reach: RTMP and RTMPS. */
const OutputUrl = z
  .string()
  .max(1024)
  .url()
  .refine((u) => /^rtmps?:\/\//i.test(u), 'url: rtmp:// or rtmps:// (SRT outputs are not supported)');

export const OutputCreateBody = z.object({
  url: OutputUrl,
  streamKey: z.string().min(1).max(512),
  enabled: z.boolean().optional(),
});
export type OutputCreateBody = z.infer<typeof OutputCreateBody>;

export const OutputUpdateBody = z.object({ enabled: z.boolean() });
export type OutputUpdateBody = z.infer<typeof OutputUpdateBody>;

/** Path parameters: anything that is not ours is a 404 (not a 400), as it is for Cloudflare. */
export const AccountParams = z.object({ account_id: z.string().max(256) });
export const InputParams = AccountParams.extend({ uid: z.string().max(256) });
export const OutputParams = InputParams.extend({ output_uid: z.string().max(256) });

const Url = z.object({ url: z.string() });

export const Recording = z.object({
  mode: z.enum(['off', 'automatic']),
  timeoutSeconds: z.number(),
  requireSignedURLs: z.boolean(),
  allowedOrigins: z.array(z.string()),
  hideLiveViewerCount: z.boolean(),
});

/** Cloudflare's statuses we produce: live now, between publishes (our reconnect window), gone. */
export const LiveInputStatus = z.enum(['connected', 'reconnecting', 'client_disconnect']).nullable();

/** Additive: the publish as the relay's heartbeats describe it. */
export const Connection = z.object({
  state: z.enum(['connected', 'reconnecting', 'disconnected']),
  relayId: z.string().optional(),
  protocol: z.string().optional(),
  videoCodec: z.string().optional(),
  audioCodec: z.string().optional(),
  width: z.number().optional(),
  height: z.number().optional(),
  fps: z.number().optional(),
  bitrateKbps: z.number().optional(),
  /** When a relay last reported it (ISO 8601). */
  updated: z.string().optional(),
});
export type Connection = z.infer<typeof Connection>;

export const LiveInput = z.object({
  uid: z.string(),
  created: z.string(),
  modified: z.string(),
  meta: z.record(z.string(), z.unknown()),
  enabled: z.boolean(),
  defaultCreator: z.string().optional(),
  deleteRecordingAfterDays: z.number().optional(),
  recording: Recording,
  rtmps: z.object({ url: z.string(), streamKey: z.string() }).optional(),
  srt: z.object({ url: z.string(), streamId: z.string(), passphrase: z.string() }).optional(),
  webRTC: Url.optional(),
  webRTCPlayback: Url.optional(),
  status: LiveInputStatus,
  hls: Url.optional(),
  dash: Url.optional(),
  connection: Connection.optional(),
});
export type LiveInput = z.infer<typeof LiveInput>;

/** The list answer: Cloudflare lists the summary fields only (credentials need a GET of one input). */
export const LiveInputSummary = z.object({
  uid: z.string(),
  created: z.string(),
  modified: z.string(),
  meta: z.record(z.string(), z.unknown()),
  enabled: z.boolean(),
  deleteRecordingAfterDays: z.number().optional(),
});
export const LiveInputList = z.object({
  liveInputs: z.array(LiveInputSummary),
  range: z.number(),
  total: z.number(),
});

export const Output = z.object({
  uid: z.string(),
  url: z.string(),
  /** Masked: the destination's key is a secret (only its last characters are shown). */
  streamKey: z.string(),
  enabled: z.boolean(),
  /** Additive: what the relay's pusher reports while the input is live. */
  status: z
    .object({ state: z.enum(['active', 'error', 'stopped']), error: z.string().optional() })
    .nullable()
    .optional(),
});
export type Output = z.infer<typeof Output>;

/** Cloudflare's `PUT /stream/webhook` body: where notifications go (http or https). */
export const WebhookBody = z.object({
  notificationUrl: z
    .string()
    .max(1024)
    .url()
    .refine((u) => /^https?:\/\//i.test(u), 'notificationUrl: http:// or https:// only'),
});
export type WebhookBody = z.infer<typeof WebhookBody>;

export const Webhook = z.object({ notificationUrl: z.string(), modified: z.string(), secret: z.string() });

export const CfError = z.object({
  code: z.number().int(),
  message: z.string(),
  source: z.object({ pointer: z.string() }).optional(),
});
export type CfError = z.infer<typeof CfError>;

/** Cloudflare's envelope around a result. */
export const envelope = <T extends z.ZodTypeAny>(result: T) =>
  z.object({
    result,
    success: z.boolean(),
    errors: z.array(CfError),
    messages: z.array(CfError),
  });

export const ErrorAnswer = envelope(z.null());
export const ERROR_ANSWERS = { '4xx': ErrorAnswer, '5xx': ErrorAnswer } as const;
