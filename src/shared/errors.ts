/**
 * Errors with stable codes (fastify `lib/errors.js` style): every failure the relay reports carries a code
 * from this registry, so logs, metrics and tests can match on it instead of on message text. Each code
 * declares the HTTP status it answers with wherever it reaches an HTTP client (the cloud's error handler
 * answers `httpStatusOf(code)`, never a number of its own); protocol-only codes declare the status that
 * would describe them, so the registry has no holes. `test/unit/shared/errors.test.ts` checks that every
 * code is declared once, has a status and is used by its own name.
 */

/** The statuses an error may answer with: client errors and server errors, nothing else. */
export type ErrorStatus =
  | 400
  | 401
  | 403
  | 404
  | 408
  | 409
  | 413
  | 415
  | 422
  | 426
  | 429
  | 500
  | 502
  | 503
  | 504;

/** code → HTTP status; the one place either is declared. */
const REGISTRY = {
  // RTMP handshake
  RTMP_HANDSHAKE_VERSION: 400,
  RTMP_HANDSHAKE_ENCRYPTED: 400,
  RTMP_HANDSHAKE_TIMEOUT: 408,
  // RTMP chunk stream
  RTMP_CHUNK_NO_PREVIOUS: 400,
  RTMP_CHUNK_HEADER_MID_MESSAGE: 400,
  RTMP_CHUNK_STREAMS_EXCEEDED: 400,
  RTMP_CHUNK_SIZE_INVALID: 400,
  RTMP_MESSAGE_TOO_LARGE: 413,
  RTMP_BUFFERED_TOO_MUCH: 413,
  // RTMP messages and AMF
  RTMP_MESSAGE_MALFORMED: 400,
  AMF0_MALFORMED: 400,
  RTMP_COMMAND_UNEXPECTED: 400,
  // RTMP session
  RTMP_IDLE_TIMEOUT: 408,
  RTMP_TOO_MANY_CONNECTIONS: 503,
  RTMP_TOO_MANY_CONNECTIONS_PER_IP: 429,
  RTMP_SLOW_PEER: 408,
  RTMP_BAD_NAME: 400,
  RTMP_UNAUTHORIZED: 401,
  RTMP_AUTH_FAILED: 503,
  RTMP_UNSUPPORTED_CODEC: 415,
  RTMP_SOCKET_ERROR: 502,
  RTMPS_HANDSHAKE_FAILED: 400,
  FLV_MALFORMED: 400,
  // FFmpeg pipeline
  FFMPEG_SPAWN_FAILED: 500,
  FFMPEG_START_FAILED: 500,
  FFMPEG_DIED: 502,
  FFMPEG_STALLED: 504,
  FFMPEG_OUTPUT_INVALID: 502,
  FMP4_MALFORMED: 502,
  SLATE_ENCODE_FAILED: 502,
  // Media core (NAL units, codec configuration records, the CMAF writer)
  NAL_MALFORMED: 400,
  AVC_CONFIG_MALFORMED: 400,
  CMAF_CONFIG_INVALID: 400,
  CMAF_INPUT_INVALID: 400,
  // Configuration
  CONFIG_INVALID: 500,
  CLOUD_STORE_FAILED: 503,
  PUBLISH_TOKEN_SECRET_WEAK: 500,
  PUBLISH_TOKEN_GRANT_INVALID: 400,
  // Operator dashboard (cloud)
  DASHBOARD_DISABLED: 503,
  DASHBOARD_UNAUTHORIZED: 401,
  DASHBOARD_TOO_MANY_CLIENTS: 503,
  // RTMP publishing client (re-streaming)
  RTMP_CLIENT_URL_INVALID: 400,
  RTMP_CLIENT_CONNECT_FAILED: 502,
  RTMP_CLIENT_TLS_FAILED: 502,
  RTMP_CLIENT_TIMEOUT: 504,
  RTMP_CLIENT_REJECTED: 502,
  RTMP_CLIENT_BAD_NAME: 502,
  RTMP_CLIENT_UNAUTHORIZED: 502,
  RTMP_CLIENT_DISCONNECTED: 502,
  // SRT ingest
  SRT_PACKET_MALFORMED: 400,
  SRT_HANDSHAKE_INVALID: 400,
  SRT_BAD_STREAM_ID: 400,
  SRT_STREAM_ID_TOO_LONG: 400,
  SRT_UNAUTHORIZED: 401,
  SRT_FORBIDDEN: 403,
  SRT_AUTH_FAILED: 503,
  SRT_BAD_SECRET: 401,
  SRT_TOO_MANY_CONNECTIONS: 503,
  SRT_TOO_MANY_HANDSHAKES: 503,
  SRT_IDLE_TIMEOUT: 408,
  SRT_SOCKET_ERROR: 502,
  // Re-streaming
  RESTREAM_TOO_MANY_DESTINATIONS: 400,
  RESTREAM_DESTINATION_STALLED: 504,
  // WebRTC (WHEP out, WHIP in)
  WEBRTC_SDP_MALFORMED: 400,
  WEBRTC_SDP_NO_VIDEO: 422,
  WEBRTC_CODEC_UNSUPPORTED: 422,
  WEBRTC_CONTENT_TYPE: 415,
  WEBRTC_STREAM_NOT_FOUND: 404,
  WEBRTC_STREAM_NOT_READY: 409,
  WEBRTC_B_FRAMES: 409,
  WEBRTC_TOO_MANY_SESSIONS: 503,
  WEBRTC_SESSION_NOT_FOUND: 404,
  WEBRTC_NEGOTIATION_FAILED: 400,
  WEBRTC_UDP_PORT_FAILED: 500,
  WEBRTC_CLOSED: 503,
  WEBRTC_UNAUTHORIZED: 401,
  /** A WHIP publish whose name or parameters break the relay's rules (e.g. an unknown `?profile=`). */
  WEBRTC_PUBLISH_REFUSED: 400,
  OPUS_ENCODER_FAILED: 502,
  AAC_ENCODER_FAILED: 502,
  // Cloud HTTP API (relay routes, managed streams, /watch, WebSocket paths, the error envelope's codes)
  RELAY_UNAUTHORIZED: 401,
  RELAY_BAD_REQUEST: 400,
  RELAY_UNKNOWN: 404,
  RELAY_NOT_HOLDER: 403,
  RELAY_URL_REFUSED: 403,
  CLOUD_BAD_REQUEST: 400,
  CLOUD_UNAUTHORIZED: 401,
  CLOUD_NOT_FOUND: 404,
  CLOUD_BODY_TOO_LARGE: 413,
  CLOUD_UNSUPPORTED_MEDIA_TYPE: 415,
  CLOUD_UPGRADE_REQUIRED: 426,
  CLOUD_CLOSING: 503,
  CLOUD_INTERNAL: 500,
  CLOUD_RESPONSE_INVALID: 500,
  MANAGED_STREAM_NOT_FOUND: 404,
  MANAGED_STREAM_NOT_PLAYABLE: 404,
  NO_RELAY_AVAILABLE: 503,
  DASHBOARD_NOT_INSTALLED: 404,
  // Live Input API (Cloudflare-compatible, src/cloud/live-inputs/)
  LIVE_INPUT_UNAUTHORIZED: 401,
  LIVE_INPUT_ACCOUNT_NOT_FOUND: 404,
  LIVE_INPUT_NOT_FOUND: 404,
  LIVE_INPUT_OUTPUT_NOT_FOUND: 404,
  LIVE_INPUT_BAD_REQUEST: 400,
  LIVE_INPUT_LIMIT_REACHED: 409,
  LIVE_INPUT_WEBHOOK_NOT_FOUND: 404,
  LIVE_INPUT_NO_ROUTE: 404,
  // Playback tokens (HLS, DASH, WHEP, thumbnails, recordings)
  PLAYBACK_UNAUTHORIZED: 401,
  PLAYBACK_FORBIDDEN: 403,
  PLAYBACK_TOKEN_SECRET_WEAK: 500,
  PLAYBACK_TOKEN_GRANT_INVALID: 400,
} as const satisfies Record<string, ErrorStatus>;

export type ErrorCode = keyof typeof REGISTRY;

/** Every code, named by itself (`ErrorCodes.RTMP_BAD_NAME === 'RTMP_BAD_NAME'`). */
export const ErrorCodes = Object.freeze(
  Object.fromEntries(Object.keys(REGISTRY).map((code) => [code, code])),
) as { readonly [C in ErrorCode]: C };

/** The HTTP status a code answers with. */
export function httpStatusOf(code: ErrorCode): ErrorStatus {
  return REGISTRY[code];
}

/** Whether a string is a registered code (for answers built from codes that travel as strings). */
export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.hasOwn(REGISTRY, value);
}

/** An error that carries a stable code. Protocol layers return or throw these; nothing else. */
export class RelayError extends Error {
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'RelayError';
    this.code = code;
  }

  /**
   * The registry's status for this code. Not named `statusCode` on purpose: fastify's default handlers
   * (the relay's origin and control API) read that name, and their answers must not change with this.
   */
  get httpStatus(): ErrorStatus {
    return httpStatusOf(this.code);
  }
}

export function isRelayError(err: unknown): err is RelayError {
  return err instanceof RelayError;
}

/** Classifies anything thrown into a RelayError, keeping the original as `cause`. */
export function toRelayError(err: unknown, fallback: ErrorCode): RelayError {
  if (err instanceof RelayError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new RelayError(fallback, message, { cause: err });
}
