/**
 * Errors with stable codes (fastify `lib/errors.js` style): every failure the relay reports carries a code
 * from this registry, so logs, metrics and tests can match on it instead of on message text.
 * `test/unit/shared/errors.test.ts` checks that every code is declared once and used by its own name.
 */

export const ErrorCodes = {
  // RTMP handshake
  RTMP_HANDSHAKE_VERSION: 'RTMP_HANDSHAKE_VERSION',
  RTMP_HANDSHAKE_ENCRYPTED: 'RTMP_HANDSHAKE_ENCRYPTED',
  RTMP_HANDSHAKE_TIMEOUT: 'RTMP_HANDSHAKE_TIMEOUT',
  // RTMP chunk stream
  RTMP_CHUNK_NO_PREVIOUS: 'RTMP_CHUNK_NO_PREVIOUS',
  RTMP_CHUNK_HEADER_MID_MESSAGE: 'RTMP_CHUNK_HEADER_MID_MESSAGE',
  RTMP_CHUNK_STREAMS_EXCEEDED: 'RTMP_CHUNK_STREAMS_EXCEEDED',
  RTMP_CHUNK_SIZE_INVALID: 'RTMP_CHUNK_SIZE_INVALID',
  RTMP_MESSAGE_TOO_LARGE: 'RTMP_MESSAGE_TOO_LARGE',
  RTMP_BUFFERED_TOO_MUCH: 'RTMP_BUFFERED_TOO_MUCH',
  // RTMP messages and AMF
  RTMP_MESSAGE_MALFORMED: 'RTMP_MESSAGE_MALFORMED',
  AMF0_MALFORMED: 'AMF0_MALFORMED',
  RTMP_COMMAND_UNEXPECTED: 'RTMP_COMMAND_UNEXPECTED',
  // RTMP session
  RTMP_IDLE_TIMEOUT: 'RTMP_IDLE_TIMEOUT',
  RTMP_TOO_MANY_CONNECTIONS: 'RTMP_TOO_MANY_CONNECTIONS',
  RTMP_TOO_MANY_CONNECTIONS_PER_IP: 'RTMP_TOO_MANY_CONNECTIONS_PER_IP',
  RTMP_SLOW_PEER: 'RTMP_SLOW_PEER',
  RTMP_BAD_NAME: 'RTMP_BAD_NAME',
  RTMP_UNAUTHORIZED: 'RTMP_UNAUTHORIZED',
  RTMP_AUTH_FAILED: 'RTMP_AUTH_FAILED',
  RTMP_UNSUPPORTED_CODEC: 'RTMP_UNSUPPORTED_CODEC',
  RTMP_SOCKET_ERROR: 'RTMP_SOCKET_ERROR',
  RTMPS_HANDSHAKE_FAILED: 'RTMPS_HANDSHAKE_FAILED',
  FLV_MALFORMED: 'FLV_MALFORMED',
  // FFmpeg pipeline
  FFMPEG_SPAWN_FAILED: 'FFMPEG_SPAWN_FAILED',
  FFMPEG_START_FAILED: 'FFMPEG_START_FAILED',
  FFMPEG_DIED: 'FFMPEG_DIED',
  FFMPEG_STALLED: 'FFMPEG_STALLED',
  FFMPEG_OUTPUT_INVALID: 'FFMPEG_OUTPUT_INVALID',
  FMP4_MALFORMED: 'FMP4_MALFORMED',
  // Configuration
  CONFIG_INVALID: 'CONFIG_INVALID',
  CLOUD_STORE_FAILED: 'CLOUD_STORE_FAILED',
  PUBLISH_TOKEN_SECRET_WEAK: 'PUBLISH_TOKEN_SECRET_WEAK',
  PUBLISH_TOKEN_GRANT_INVALID: 'PUBLISH_TOKEN_GRANT_INVALID',
  // Operator dashboard (cloud)
  DASHBOARD_DISABLED: 'DASHBOARD_DISABLED',
  DASHBOARD_UNAUTHORIZED: 'DASHBOARD_UNAUTHORIZED',
  DASHBOARD_TOO_MANY_CLIENTS: 'DASHBOARD_TOO_MANY_CLIENTS',
  // RTMP publishing client (re-streaming)
  RTMP_CLIENT_URL_INVALID: 'RTMP_CLIENT_URL_INVALID',
  RTMP_CLIENT_CONNECT_FAILED: 'RTMP_CLIENT_CONNECT_FAILED',
  RTMP_CLIENT_TLS_FAILED: 'RTMP_CLIENT_TLS_FAILED',
  RTMP_CLIENT_TIMEOUT: 'RTMP_CLIENT_TIMEOUT',
  RTMP_CLIENT_REJECTED: 'RTMP_CLIENT_REJECTED',
  RTMP_CLIENT_BAD_NAME: 'RTMP_CLIENT_BAD_NAME',
  RTMP_CLIENT_UNAUTHORIZED: 'RTMP_CLIENT_UNAUTHORIZED',
  RTMP_CLIENT_DISCONNECTED: 'RTMP_CLIENT_DISCONNECTED',
  // SRT ingest
  SRT_PACKET_MALFORMED: 'SRT_PACKET_MALFORMED',
  SRT_BAD_STREAM_ID: 'SRT_BAD_STREAM_ID',
  SRT_STREAM_ID_TOO_LONG: 'SRT_STREAM_ID_TOO_LONG',
  // Re-streaming
  RESTREAM_TOO_MANY_DESTINATIONS: 'RESTREAM_TOO_MANY_DESTINATIONS',
  RESTREAM_DESTINATION_STALLED: 'RESTREAM_DESTINATION_STALLED',
} as const;

export type ErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes];

/** An error that carries a stable code. Protocol layers return or throw these; nothing else. */
export class RelayError extends Error {
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'RelayError';
    this.code = code;
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
