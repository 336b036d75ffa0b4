/**
 * Configuration, parsed once from the environment at the composition root and passed down. Every timer is
 * an env value (tests set them short); defaults serve production. Names follow architecture §3; the README's
 * configuration reference lists each one.
 */
import os from 'node:os';
import { z } from 'zod';
import { RelayId } from '../contracts/relay-api.ts';
import { ErrorCodes, RelayError } from './errors.ts';

const port = (fallback: number) => z.coerce.number().int().min(0).max(65535).default(fallback);
const seconds = (fallback: number) => z.coerce.number().positive().max(86_400).default(fallback);
const count = (fallback: number) => z.coerce.number().int().positive().default(fallback);

const EnvSchema = z.object({
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  RTMP_HOST: z.string().min(1).default('0.0.0.0'),
  RTMP_PORT: port(1935),
  /** RTMPS (TLS in front of the same RTMP code): on when both files are set. */
  RTMPS_PORT: port(1936),
  RTMPS_CERT_FILE: z.string().min(1).optional(),
  RTMPS_KEY_FILE: z.string().min(1).optional(),
  RTMP_MAX_CONNECTIONS: count(1000),
  RTMP_MAX_CONNECTIONS_PER_IP: count(20),
  RTMP_HANDSHAKE_TIMEOUT_SECONDS: seconds(10),
  RTMP_IDLE_TIMEOUT_SECONDS: seconds(30),
  RTMP_AUTH_TIMEOUT_SECONDS: seconds(10),
  RTMP_MAX_MESSAGE_BYTES: count(8 * 1024 * 1024).pipe(z.number().max(0xffffff)),
  /** SRT ingest (UDP), one port for every stream. */
  SRT_HOST: z.string().min(1).default('0.0.0.0'),
  SRT_PORT: port(8890),
  /** TSBPD latency the relay asks for; the larger of this and the caller's wins. */
  SRT_LATENCY_MS: z.coerce.number().int().min(20).max(8000).default(120),
  /** Per-stream passphrases: HMAC of the stream key under this secret (contracts/srt.ts). */
  SRT_PASSPHRASE_SECRET: z.string().min(16).optional(),
  /** One passphrase for every stream (libsrt takes 10 to 79 characters). */
  SRT_PASSPHRASE: z.string().min(10).max(79).optional(),
  SRT_MAX_CONNECTIONS: count(1000),
  SRT_MAX_CONNECTIONS_PER_IP: count(20),
  SRT_HANDSHAKES_PER_SECOND: count(500),
  SRT_HANDSHAKES_PER_IP_PER_SECOND: count(20),
  SRT_RECEIVE_BUFFER_PACKETS: count(8192).pipe(z.number().max(65536)),
  SRT_PEER_IDLE_TIMEOUT_SECONDS: seconds(5),
  PUBLISH_AUTH: z.enum(['token', 'off']).optional(),
  HLS_HOST: z.string().min(1).default('0.0.0.0'),
  HLS_PORT: port(8888),
  API_HOST: z.string().min(1).default('0.0.0.0'),
  API_PORT: port(9997),
  METRICS_HOST: z.string().min(1).default('0.0.0.0'),
  METRICS_PORT: port(9998),
  CONTROL_API_TOKEN: z.string().min(1).optional(),
  HLS_SEGMENT_SECONDS: seconds(2),
  HLS_LIST_SIZE: count(5),
  /** Low-latency HLS (parts, blocking reload, delta updates) on the same URL; players without LL ignore it. */
  HLS_LOW_LATENCY: z
    .enum(['on', 'off', 'true', 'false', '1', '0'])
    .default('on')
    .transform((v) => v === 'on' || v === 'true' || v === '1'),
  /** LL-HLS PART-TARGET, seconds: every part is at most this long. */
  HLS_PART_SECONDS: z.coerce.number().min(0.2).max(2).default(0.334),
  COPY_MAX_SEGMENT_SECONDS: count(6),
  CLEAN_PROFILE: z.enum(['auto', 'copy', 'transcode', 'abr']).default('auto'),
  RECONNECT_WINDOW_SECONDS: seconds(120),
  /**
   * After a clean unpublish (RTMP FCUnpublish/deleteStream, SRT shutdown) the stream ends after this grace
   * instead of the whole reconnect window: a quick republish still continues it. Never longer than the window.
   */
  UNPUBLISH_GRACE_SECONDS: seconds(5),
  /** A "reconnecting" slate for HLS, DASH and re-streams while a publisher is gone. */
  SLATE: z.enum(['on', 'off']).default('on'),
  /** No media for this long (publisher still connected) starts the slate; under a second must not flap. */
  SLATE_AFTER_SECONDS: z.coerce.number().min(1).max(3600).default(3),
  /** A picture file (PNG, JPEG) shown instead of the built-in "Reconnecting…" frame. */
  SLATE_IMAGE: z.string().min(1).optional(),
  HLS_END_GRACE_SECONDS: seconds(60),
  /** A viewer counts while it fetched something of the stream within this window. */
  HLS_VIEWER_WINDOW_SECONDS: seconds(15),
  /** A JPEG of the latest keyframe at most this often, per stream (served as thumbnail.jpg). */
  THUMBNAIL_SECONDS: seconds(5),
  THUMBNAIL_WIDTH: count(320).pipe(z.number().max(1920)),
  FFMPEG_WATCHDOG_SECONDS: seconds(5),
  FFMPEG_RESTART_BACKOFF_SECONDS: z
    .string()
    .regex(/^\d+(\.\d+)?(,\d+(\.\d+)?)*$/, 'comma-separated seconds')
    .default('0.25,1,2,5'),
  FFMPEG_PATH: z.string().min(1).default('ffmpeg'),
  /** H.264 encoder for transcodes: `auto` probes the GPU encoders at start, else libx264. */
  VIDEO_ENCODER: z.enum(['auto', 'libx264', 'h264_nvenc', 'h264_vaapi', 'h264_qsv']).default('auto'),
  /** Concurrent GPU encode sessions (consumer NVIDIA cards cap NVENC sessions); past it, libx264. */
  GPU_MAX_SESSIONS: z.coerce.number().int().min(0).max(1000).default(3),
  VAAPI_DEVICE: z.string().min(1).default('/dev/dri/renderD128'),
  CORS_ALLOW_ORIGINS: z.string().min(1).default('*'),
  /** Recordings (src/record/): every stream when on; a managed stream may ask for it when off. */
  RECORDING: z
    .enum(['on', 'off', 'true', 'false', '1', '0'])
    .default('off')
    .transform((v) => v === 'on' || v === 'true' || v === '1'),
  /** A directory (relative to the working directory) or s3://BUCKET/PREFIX. */
  RECORDING_URL: z.string().min(1).default('./recordings'),
  /** Where recorded media waits for the store (kept across restarts: uploaded at the next start). */
  RECORDING_SPOOL_DIR: z.string().min(1).default('./recordings-spool'),
  /** The spool's bound: past it, segments are dropped (counted and logged), never waited for. */
  RECORDING_SPOOL_MAX_MB: z.coerce.number().positive().max(10_000_000).default(2048),
  /** Recordings that ended longer ago are deleted, every object; 0 keeps them. */
  RECORDING_RETENTION_DAYS: z.coerce.number().min(0).max(36_500).default(0),
  S3_ENDPOINT: z.string().url().optional(),
  S3_REGION: z.string().min(1).default('us-east-1'),
  S3_FORCE_PATH_STYLE: z
    .enum(['on', 'off', 'true', 'false', '1', '0'])
    .default('off')
    .transform((v) => v === 'on' || v === 'true' || v === '1'),
  /** Relay identity (publish tokens name it in `rly`); the host name when unset. */
  RELAY_ID: RelayId.default(() => hostRelayId(os.hostname())),
  PUBLISH_TOKEN_SECRET: z.string().min(1).optional(),
  /** During a rotation: tokens signed with the previous secret still verify until they expire. */
  PUBLISH_TOKEN_SECRET_PREVIOUS: z.string().min(1).optional(),
  CLOUD_HOST: z.string().min(1).default('0.0.0.0'),
  CLOUD_PORT: port(8080),
  CLOUD_API_URL: z.string().url().default('http://localhost:8080'),
  RELAY_SHARED_SECRET: z.string().min(1).optional(),
  /** During a rotation: the cloud accepts relays still using the previous shared secret. */
  RELAY_SHARED_SECRET_PREVIOUS: z.string().min(1).optional(),
  RELAY_PUBLIC_URL: z.string().min(1).optional(),
  PORTER_SERVICE_URL: z.string().min(1).optional(),
  HLS_PUBLIC_BASE_URL: z.string().url().optional(),
  MAX_STREAMS: count(20),
  HEARTBEAT_SECONDS: seconds(10),
  RELAY_EXPIRY_SECONDS: seconds(30),
  KEEPALIVE_SECONDS: seconds(15),
  ACK_TIMEOUT_SECONDS: seconds(10),
  MAX_MISSED_ACKS: count(3),
  REDIS_URL: z.string().url().optional(),
  SSE_KEEPALIVE_SECONDS: seconds(15),
  GLASSES_INGEST: z.enum(['rtmp', 'srt', 'whip']).default('rtmp'),
  DRAIN_TIMEOUT_SECONDS: seconds(300),
  RTMP_RELAY_URLS: z.string().min(1).optional(),
  RTMP_RELAY_HLS_URLS: z.string().min(1).optional(),
  /** One UDP port for every WebRTC session (WHEP out, WHIP in); 0 picks a free one. */
  WEBRTC_UDP_PORT: port(8189),
  /** Where that port is bound. */
  WEBRTC_UDP_HOST: z.string().min(1).default('0.0.0.0'),
  /** Announced ICE host candidates, comma-separated `host` or `host:port`; unset: the host's interfaces. */
  WEBRTC_HOSTS: z.string().min(1).optional(),
  WEBRTC_MAX_SESSIONS: count(500),
  /** A WHIP publisher that sends nothing (RTP or RTCP) for this long is gone: the reconnect window opens. */
  WEBRTC_PEER_TIMEOUT_SECONDS: seconds(5),
  /** The Cloudflare-compatible Live Input API: on only with both (bearer token, the one account id). */
  CLOUD_API_TOKEN: z.string().min(16).optional(),
  CLOUD_ACCOUNT_ID: z
    .string()
    .regex(/^[A-Za-z0-9]{1,32}$/, '1-32 letters and digits (Cloudflare account ids are 32 hex)')
    .optional(),
  /** Playback tokens (architecture §3): checked on every playback request; `off` by default in dev only. */
  PLAYBACK_AUTH: z.enum(['token', 'off']).optional(),
  /** HS256 secret of playback tokens; PUBLISH_TOKEN_SECRET when unset. */
  PLAYBACK_TOKEN_SECRET: z.string().min(1).optional(),
  /** The longest a playback token lives (a stream's end plus HLS_END_GRACE_SECONDS comes first). */
  PLAYBACK_TOKEN_TTL_SECONDS: z.coerce
    .number()
    .int()
    .positive()
    .max(30 * 86_400)
    .default(86_400),
});

export type Env = z.infer<typeof EnvSchema>;

/** The host name as a valid RelayId (other characters as `-`, at most 64), so an odd host name still starts. */
export function hostRelayId(hostname: string): string {
  const id = hostname.replace(/[^A-Za-z0-9._-]/g, '-').slice(0, 64);
  return id === '' ? 'relay' : id;
}

/** A WEBRTC_HOSTS entry: the host (name or IP) to announce, and its port when not WEBRTC_UDP_PORT. */
export interface WebrtcHostEntry {
  host: string;
  port?: number;
}

export interface RelayConfig {
  logLevel: Env['LOG_LEVEL'];
  rtmp: {
    host: string;
    port: number;
    maxConnections: number;
    maxConnectionsPerIp: number;
    handshakeTimeoutMs: number;
    idleTimeoutMs: number;
    authTimeoutMs: number;
    maxMessageSize: number;
    /** RTMPS listener: set when RTMPS_CERT_FILE and RTMPS_KEY_FILE are (PEM files, read at start). */
    tls: { port: number; certFile: string; keyFile: string } | null;
  };
  srt: {
    host: string;
    port: number;
    latencyMs: number;
    /** At most one of the two is set (both is a configuration error). */
    passphraseSecret: string | undefined;
    passphrase: string | undefined;
    maxConnections: number;
    maxConnectionsPerIp: number;
    handshakesPerSecond: number;
    handshakesPerIpPerSecond: number;
    receiveBufferPackets: number;
    peerIdleTimeoutMs: number;
    /** The hook's time budget (RTMP_AUTH_TIMEOUT_SECONDS, capped below libsrt's 3 s connect timeout). */
    authTimeoutMs: number;
  };
  hls: {
    host: string;
    port: number;
    segmentSeconds: number;
    listSize: number;
    /** HLS_LOW_LATENCY: LL-HLS tags and blocking reloads on the stream's playlist. */
    lowLatency: boolean;
    /** HLS_PART_SECONDS: LL-HLS PART-TARGET. */
    partSeconds: number;
    copyMaxSegmentSeconds: number;
    endGraceMs: number;
    viewerWindowMs: number;
    thumbnailMs: number;
    thumbnailWidth: number;
    /** `*` or a list of allowed origins. */
    corsOrigins: '*' | string[];
  };
  stream: {
    profile: 'auto' | 'copy' | 'transcode' | 'abr';
    reconnectWindowMs: number;
    /** After a clean unpublish: at most the reconnect window. */
    unpublishGraceMs: number;
    watchdogMs: number;
    backoffMs: number[];
    ffmpegPath: string;
    videoEncoder: 'auto' | 'libx264' | 'h264_nvenc' | 'h264_vaapi' | 'h264_qsv';
    gpuMaxSessions: number;
    vaapiDevice: string;
    /** SLATE, SLATE_AFTER_SECONDS, SLATE_IMAGE: null when SLATE=off. */
    slate: { afterMs: number; image: string | undefined } | null;
  };
  /** `off` only where the caller allows it (dev mode); `token` otherwise. */
  publishAuth: 'token' | 'off';
  /** Recordings (RECORDING, RECORDING_URL, RECORDING_SPOOL_*, RECORDING_RETENTION_DAYS, S3_*). */
  recording: {
    on: boolean;
    url: string;
    spoolDir: string;
    spoolMaxBytes: number;
    retentionDays: number;
    s3: { endpoint: string | undefined; region: string; forcePathStyle: boolean };
  };
  relay: {
    /** RELAY_ID: the `rly` claim publish tokens must carry. */
    id: string;
  };
  /** Control API (API_PORT, 9997): health, readiness, operator routes behind CONTROL_API_TOKEN. */
  api: {
    host: string;
    port: number;
    /** CONTROL_API_TOKEN; unset: the operator routes answer 503 (the composition may generate one). */
    token: string | undefined;
  };
  /** Prometheus /metrics (METRICS_PORT, 9998). */
  metrics: {
    host: string;
    port: number;
  };
  /** WebRTC (WHEP out, WHIP in): ICE on one UDP port. */
  webrtc: {
    udpPort: number;
    udpHost: string;
    /** WEBRTC_HOSTS; null announces the candidates gathered on the host's interfaces. */
    hosts: WebrtcHostEntry[] | null;
    maxSessions: number;
    /** WEBRTC_PEER_TIMEOUT_SECONDS: a silent WHIP publisher ends as a disconnect after this. */
    peerTimeoutMs: number;
  };
  /** PUBLISH_TOKEN_SECRET (HS256, ≥ 32 bytes; the verifier checks). Unset: the composition decides. */
  publishTokenSecret: string | undefined;
  /** Playback tokens on every playback URL (shared/playback-token.ts). */
  playback: {
    /** PLAYBACK_AUTH; `off` only where the caller's defaults say so (dev mode) or the env does. */
    auth: 'token' | 'off';
    /** PLAYBACK_TOKEN_SECRET, else PUBLISH_TOKEN_SECRET; unset: the composition decides (dev generates). */
    tokenSecret: string | undefined;
    /**
     * Still accepted by relays: PUBLISH_TOKEN_SECRET_PREVIOUS while playback tokens use the publish secret, so
     * rotating it does not cut every viewer off at once.
     */
    previousSecret: string | undefined;
    /** PLAYBACK_TOKEN_TTL_SECONDS. */
    ttlSeconds: number;
  };
  /** PUBLISH_TOKEN_SECRET_PREVIOUS: still accepted by relays during a rotation. */
  publishTokenSecretPrevious: string | undefined;
  cloud: {
    host: string;
    port: number;
    /** Where a relay finds the cloud (CLOUD_API_URL). */
    apiUrl: string;
    /** RELAY_SHARED_SECRET; unset: the composition decides (dev generates one). */
    relaySecret: string | undefined;
    /** RELAY_SHARED_SECRET_PREVIOUS: the cloud still accepts it during a rotation. */
    relaySecretPrevious: string | undefined;
    /** Host a relay announces for RTMP and HLS (RELAY_PUBLIC_URL, else PORTER_SERVICE_URL, else localhost). */
    relayPublicHost: string;
    hlsPublicBaseUrl: string | undefined;
    maxStreams: number;
    heartbeatMs: number;
    relayExpiryMs: number;
    keepAliveMs: number;
    ackTimeoutMs: number;
    maxMissedAcks: number;
    redisUrl: string | undefined;
    /** SSE_KEEPALIVE_SECONDS: comment keep-alives on idle managed-stream event streams. */
    sseKeepAliveMs: number;
    /** GLASSES_INGEST: the ingest the cloud hands the glasses (rtmp until the SRT and WHIP ingests land). */
    glassesIngest: 'rtmp' | 'srt' | 'whip';
    /** DRAIN_TIMEOUT_SECONDS: how long live streams may run on after SIGTERM. */
    drainTimeoutMs: number;
    /** RTMP_RELAY_URLS / RTMP_RELAY_HLS_URLS: used when no relay is registered (the seed's static list). */
    staticRelays: { rtmpUrl: string; hlsUrl: string }[];
    /** CLOUD_API_TOKEN + CLOUD_ACCOUNT_ID: the Live Input API; null (off, its paths 404) unless both are set. */
    liveInputApi: { token: string; accountId: string } | null;
  };
}

/** Pairs the seed's static relay lists: `host:port` RTMP entries with their HLS bases, same order. */
function staticRelays(
  rtmp: string | undefined,
  hls: string | undefined,
): { rtmpUrl: string; hlsUrl: string }[] {
  const split = (v: string | undefined): string[] =>
    (v ?? '')
      .split(',')
      .map((x) => x.trim())
      .filter(Boolean);
  const r = split(rtmp);
  const h = split(hls);
  if (r.length !== h.length) {
    throw new RelayError(
      ErrorCodes.CONFIG_INVALID,
      'RTMP_RELAY_URLS and RTMP_RELAY_HLS_URLS must list as many entries',
    );
  }
  return r.map((entry, i) => ({
    rtmpUrl: /^rtmps?:\/\//.test(entry) ? entry : `rtmp://${entry}`,
    hlsUrl: /^https?:\/\//.test(h[i]!) ? h[i]! : `http://${h[i]!}`,
  }));
}

const HOST_NAME =
  /^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;
const IPV6 = /^[0-9A-Fa-f:.]{2,45}$/;

/** WEBRTC_HOSTS: `host`, `host:port`, `[v6]` or `[v6]:port`, comma-separated; throws CONFIG_INVALID. */
export function parseWebrtcHosts(value: string | undefined): WebrtcHostEntry[] | null {
  if (value === undefined) return null;
  const bad = (entry: string): RelayError =>
    new RelayError(
      ErrorCodes.CONFIG_INVALID,
      `WEBRTC_HOSTS: ${JSON.stringify(entry)} is not host or host:port`,
    );
  const entries = value
    .split(',')
    .map((e) => e.trim())
    .filter(Boolean);
  if (entries.length === 0) return null;
  return entries.map((entry) => {
    const m = /^\[([^\]]+)\](?::(\d{1,5}))?$/.exec(entry) ?? /^([^:]+)(?::(\d{1,5}))?$/.exec(entry);
    const host = m?.[1];
    if (!m || !host) {
      if (IPV6.test(entry) && entry.includes(':')) return { host: entry };
      throw bad(entry);
    }
    if (!HOST_NAME.test(host) && !(entry.startsWith('[') && IPV6.test(host))) throw bad(entry);
    if (m[2] === undefined) return { host };
    const port = Number(m[2]);
    if (port < 1 || port > 65535) throw bad(entry);
    return { host, port };
  });
}

function rtmpsConfig(
  port: number,
  certFile: string | undefined,
  keyFile: string | undefined,
): RelayConfig['rtmp']['tls'] {
  if (!certFile && !keyFile) return null;
  if (!certFile || !keyFile) {
    throw new RelayError(ErrorCodes.CONFIG_INVALID, 'RTMPS needs both RTMPS_CERT_FILE and RTMPS_KEY_FILE');
  }
  return { port, certFile, keyFile };
}

/** Parses the environment; throws CONFIG_INVALID naming every bad variable. */
export function loadConfig(
  env: NodeJS.ProcessEnv = process.env,
  defaults: { publishAuth: 'token' | 'off'; playbackAuth?: 'token' | 'off' } = { publishAuth: 'token' },
): RelayConfig {
  const parsed = EnvSchema.safeParse(emptyToUndefined(env));
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ');
    throw new RelayError(ErrorCodes.CONFIG_INVALID, `invalid configuration: ${problems}`);
  }
  const e = parsed.data;
  if ((e.CLOUD_API_TOKEN === undefined) !== (e.CLOUD_ACCOUNT_ID === undefined)) {
    throw new RelayError(
      ErrorCodes.CONFIG_INVALID,
      'invalid configuration: CLOUD_API_TOKEN and CLOUD_ACCOUNT_ID: the Live Input API needs both',
    );
  }
  if (e.SRT_PASSPHRASE !== undefined && e.SRT_PASSPHRASE_SECRET !== undefined) {
    throw new RelayError(
      ErrorCodes.CONFIG_INVALID,
      'invalid configuration: SRT_PASSPHRASE and SRT_PASSPHRASE_SECRET: set one, not both',
    );
  }
  return {
    logLevel: e.LOG_LEVEL,
    rtmp: {
      host: e.RTMP_HOST,
      port: e.RTMP_PORT,
      maxConnections: e.RTMP_MAX_CONNECTIONS,
      maxConnectionsPerIp: e.RTMP_MAX_CONNECTIONS_PER_IP,
      handshakeTimeoutMs: e.RTMP_HANDSHAKE_TIMEOUT_SECONDS * 1000,
      idleTimeoutMs: e.RTMP_IDLE_TIMEOUT_SECONDS * 1000,
      authTimeoutMs: e.RTMP_AUTH_TIMEOUT_SECONDS * 1000,
      maxMessageSize: e.RTMP_MAX_MESSAGE_BYTES,
      tls: rtmpsConfig(e.RTMPS_PORT, e.RTMPS_CERT_FILE, e.RTMPS_KEY_FILE),
    },
    srt: {
      host: e.SRT_HOST,
      port: e.SRT_PORT,
      latencyMs: e.SRT_LATENCY_MS,
      passphraseSecret: e.SRT_PASSPHRASE_SECRET,
      passphrase: e.SRT_PASSPHRASE,
      maxConnections: e.SRT_MAX_CONNECTIONS,
      maxConnectionsPerIp: e.SRT_MAX_CONNECTIONS_PER_IP,
      handshakesPerSecond: e.SRT_HANDSHAKES_PER_SECOND,
      handshakesPerIpPerSecond: e.SRT_HANDSHAKES_PER_IP_PER_SECOND,
      receiveBufferPackets: e.SRT_RECEIVE_BUFFER_PACKETS,
      peerIdleTimeoutMs: e.SRT_PEER_IDLE_TIMEOUT_SECONDS * 1000,
      authTimeoutMs: Math.min(e.RTMP_AUTH_TIMEOUT_SECONDS * 1000, 2500),
    },
    hls: {
      host: e.HLS_HOST,
      port: e.HLS_PORT,
      segmentSeconds: e.HLS_SEGMENT_SECONDS,
      listSize: e.HLS_LIST_SIZE,
      lowLatency: e.HLS_LOW_LATENCY,
      partSeconds: e.HLS_PART_SECONDS,
      copyMaxSegmentSeconds: e.COPY_MAX_SEGMENT_SECONDS,
      endGraceMs: e.HLS_END_GRACE_SECONDS * 1000,
      viewerWindowMs: e.HLS_VIEWER_WINDOW_SECONDS * 1000,
      thumbnailMs: e.THUMBNAIL_SECONDS * 1000,
      thumbnailWidth: e.THUMBNAIL_WIDTH,
      corsOrigins:
        e.CORS_ALLOW_ORIGINS.trim() === '*'
          ? '*'
          : e.CORS_ALLOW_ORIGINS.split(',')
              .map((o) => o.trim())
              .filter(Boolean),
    },
    stream: {
      profile: e.CLEAN_PROFILE,
      reconnectWindowMs: e.RECONNECT_WINDOW_SECONDS * 1000,
      unpublishGraceMs: Math.min(e.UNPUBLISH_GRACE_SECONDS, e.RECONNECT_WINDOW_SECONDS) * 1000,
      watchdogMs: e.FFMPEG_WATCHDOG_SECONDS * 1000,
      backoffMs: e.FFMPEG_RESTART_BACKOFF_SECONDS.split(',').map((v) => Number(v) * 1000),
      ffmpegPath: e.FFMPEG_PATH,
      videoEncoder: e.VIDEO_ENCODER,
      gpuMaxSessions: e.GPU_MAX_SESSIONS,
      vaapiDevice: e.VAAPI_DEVICE,
      slate: e.SLATE === 'on' ? { afterMs: e.SLATE_AFTER_SECONDS * 1000, image: e.SLATE_IMAGE } : null,
    },
    publishAuth: e.PUBLISH_AUTH ?? defaults.publishAuth,
    recording: {
      on: e.RECORDING,
      url: e.RECORDING_URL,
      spoolDir: e.RECORDING_SPOOL_DIR,
      spoolMaxBytes: Math.floor(e.RECORDING_SPOOL_MAX_MB * 1024 * 1024),
      retentionDays: e.RECORDING_RETENTION_DAYS,
      s3: { endpoint: e.S3_ENDPOINT, region: e.S3_REGION, forcePathStyle: e.S3_FORCE_PATH_STYLE },
    },
    relay: { id: e.RELAY_ID },
    api: { host: e.API_HOST, port: e.API_PORT, token: e.CONTROL_API_TOKEN },
    metrics: { host: e.METRICS_HOST, port: e.METRICS_PORT },
    webrtc: {
      udpPort: e.WEBRTC_UDP_PORT,
      udpHost: e.WEBRTC_UDP_HOST,
      hosts: parseWebrtcHosts(e.WEBRTC_HOSTS),
      maxSessions: e.WEBRTC_MAX_SESSIONS,
      peerTimeoutMs: e.WEBRTC_PEER_TIMEOUT_SECONDS * 1000,
    },
    publishTokenSecret: e.PUBLISH_TOKEN_SECRET,
    playback: {
      // Off where publish auth is off by default (dev), on everywhere else, whatever PUBLISH_AUTH says.
      auth: e.PLAYBACK_AUTH ?? defaults.playbackAuth ?? defaults.publishAuth,
      tokenSecret: e.PLAYBACK_TOKEN_SECRET ?? e.PUBLISH_TOKEN_SECRET,
      previousSecret: e.PLAYBACK_TOKEN_SECRET === undefined ? e.PUBLISH_TOKEN_SECRET_PREVIOUS : undefined,
      ttlSeconds: e.PLAYBACK_TOKEN_TTL_SECONDS,
    },
    publishTokenSecretPrevious: e.PUBLISH_TOKEN_SECRET_PREVIOUS,
    cloud: {
      host: e.CLOUD_HOST,
      port: e.CLOUD_PORT,
      apiUrl: e.CLOUD_API_URL,
      relaySecret: e.RELAY_SHARED_SECRET,
      relaySecretPrevious: e.RELAY_SHARED_SECRET_PREVIOUS,
      relayPublicHost: e.RELAY_PUBLIC_URL ?? e.PORTER_SERVICE_URL ?? 'localhost',
      hlsPublicBaseUrl: e.HLS_PUBLIC_BASE_URL,
      maxStreams: e.MAX_STREAMS,
      heartbeatMs: e.HEARTBEAT_SECONDS * 1000,
      relayExpiryMs: e.RELAY_EXPIRY_SECONDS * 1000,
      keepAliveMs: e.KEEPALIVE_SECONDS * 1000,
      ackTimeoutMs: e.ACK_TIMEOUT_SECONDS * 1000,
      maxMissedAcks: e.MAX_MISSED_ACKS,
      redisUrl: e.REDIS_URL,
      sseKeepAliveMs: e.SSE_KEEPALIVE_SECONDS * 1000,
      glassesIngest: e.GLASSES_INGEST,
      drainTimeoutMs: e.DRAIN_TIMEOUT_SECONDS * 1000,
      staticRelays: staticRelays(e.RTMP_RELAY_URLS, e.RTMP_RELAY_HLS_URLS),
      liveInputApi:
        e.CLOUD_API_TOKEN !== undefined && e.CLOUD_ACCOUNT_ID !== undefined
          ? { token: e.CLOUD_API_TOKEN, accountId: e.CLOUD_ACCOUNT_ID }
          : null,
    },
  };
}

function emptyToUndefined(env: NodeJS.ProcessEnv): Record<string, string | undefined> {
  const out: Record<string, string | undefined> = {};
  for (const key of Object.keys(EnvSchema.shape)) {
    const v = env[key];
    out[key] = v === undefined || v.trim() === '' ? undefined : v;
  }
  return out;
}
