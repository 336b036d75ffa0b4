/**
 * The composition root of one relay: RTMP, SRT and WHIP ingest → streams (repair, slate, copy or FFmpeg,
 * packager) → the origin (HLS, DASH, WHEP via ./webrtc.ts, recordings, thumbnails) with playback tokens,
 * the recorder, re-streams. Every part is created here and closed here, children before parents: the
 * ingests first (no new publishes), then the streams (ENDLIST, FFmpeg stopped), then WebRTC (sessions, Opus
 * encoders, the UDP port), the recorder, the origin, the control API and the metrics app, then the reaper.
 */
import { readFileSync } from 'node:fs';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { buildDashRoutes } from '../dash/routes.ts';
import { buildOrigin, heldRequests } from '../hls/origin.ts';
import { ffmpegAacEncoder } from '../pipeline/aac-encoder.ts';
import { ChildReaper } from '../pipeline/child-reaper.ts';
import {
  type EncoderProbeResult,
  GpuSessions,
  isGpuEncoder,
  probeEncoderOnce,
} from '../pipeline/encoders.ts';
import { createRecording, type Recording } from '../record/index.ts';
import { registerRecordingMetrics } from '../record/metrics.ts';
import { buildRecordingRoutes, type RecordingRoutesOptions } from '../record/routes.ts';
import type { Publish } from '../rtmp/publish.ts';
import { RtmpSource } from '../rtmp/rtmp-source.ts';
import { type AuthorizePublish, RtmpServer } from '../rtmp/server.ts';
import type { RelayConfig } from '../shared/config.ts';
import { ErrorCodes, RelayError } from '../shared/errors.ts';
import type { Logger } from '../shared/logger.ts';
import { createPlaybackTokenVerifier, type PlaybackGuard, playbackGuard } from '../shared/playback-token.ts';
import { passphraseFromConfig, SrtListener } from '../srt/listener.ts';
import { StreamRegistry } from '../stream/registry.ts';
import { StreamState } from '../stream/stream.ts';
import { buildControlApi } from './control-api.ts';
import { observeOrigin } from './hls-requests.ts';
import { buildMetricsApp, createRelayMetrics } from './metrics.ts';
import { Restreaming } from './restreaming.ts';
import { Thumbnails } from './thumbnails.ts';
import { ViewerTracker } from './viewers.ts';
import { type RelayWebrtc, startRelayWebrtc } from './webrtc.ts';

export interface RelayHandle {
  rtmpPort: number;
  /** RTMPS port when a certificate is configured, else null. */
  rtmpsPort: number | null;
  hlsPort: number;
  /** Control API (health, readiness, operator routes). */
  apiPort: number;
  /** Prometheus /metrics. */
  metricsPort: number;
  rtmp: RtmpServer;
  /** The SRT listener (UDP, one port for every stream). */
  srt: SrtListener;
  /** Its UDP port (SRT_PORT; 0 picks a free one). */
  srtPort: number;
  /** WebRTC: the shared ICE UDP port and WHEP playback (WHIP ingest joins it there). */
  webrtc: RelayWebrtc;
  /** The ICE UDP port of every WebRTC session (WEBRTC_UDP_PORT; 0 picks a free one). */
  webrtcPort: number;
  streams: StreamRegistry;
  origin: FastifyInstance;
  api: FastifyInstance;
  metrics: FastifyInstance;
  /** True while the relay takes new streams (live streams below MAX_STREAMS, and not draining). */
  ready(): boolean;
  /** Draining: new publishes are refused and the cloud is told. */
  readonly draining: boolean;
  /**
   * Graceful drain: refuse new publishes, let publishing streams run up to `timeoutMs` (a publisher that
   * leaves cannot come back here, so waiting for it ends), then close everything.
   */
  drain(timeoutMs: number): Promise<void>;
  reaper: ChildReaper;
  /** Viewers per stream, counted at the origin. */
  viewers: ViewerTracker;
  /** Re-streaming per stream: destinations set by the agent, outputs reported back. */
  restreaming: Restreaming;
  /** Recordings: the store, the recorder (its decider set by the agent), retention. */
  recording: Recording;
  /** `http://host:port/hls/{userPath}/{streamId}/index.m3u8` base, for logs. */
  hlsBase: string;
  /** The playback-token check of every playback route (PLAYBACK_AUTH): `{onRequest: playback}` on a route. */
  playback: PlaybackGuard;
  close(): Promise<void>;
}

export async function startRelay(
  config: RelayConfig,
  log: Logger,
  options: {
    authorize?: AuthorizePublish;
    publicHost?: string;
    /** The encoder probe's answer, when the caller has it (tests force a GPU encoder this machine lacks). */
    encoderProbe?: EncoderProbeResult;
    /** Playback authorization of the recording routes (playback tokens). */
    authorizeRecording?: RecordingRoutesOptions['authorize'];
    /** Playback tokens' secret when not configured (dev generates one); PLAYBACK_AUTH=token needs one. */
    playbackTokenSecret?: string;
  } = {},
): Promise<RelayHandle> {
  // Built first: a PLAYBACK_AUTH=token relay without a secret must not start at all.
  const playbackSecret = options.playbackTokenSecret ?? config.playback.tokenSecret;
  if (config.playback.auth === 'token' && !playbackSecret) {
    throw new RelayError(
      ErrorCodes.CONFIG_INVALID,
      'PLAYBACK_AUTH=token needs PLAYBACK_TOKEN_SECRET (or PUBLISH_TOKEN_SECRET)',
    );
  }
  const playback = playbackGuard({
    mode: config.playback.auth,
    verify:
      config.playback.auth === 'token' && playbackSecret
        ? createPlaybackTokenVerifier({
            secret: playbackSecret,
            // Only with the configured secret: a generated one (dev) has no previous.
            previousSecret: options.playbackTokenSecret ? undefined : config.playback.previousSecret,
          })
        : null,
  });
  const reaper = new ChildReaper();
  // The H.264 encoder for transcodes: a GPU one when the probe finds it working, libx264 otherwise.
  const probe =
    options.encoderProbe ??
    (await probeEncoderOnce(config.stream.videoEncoder, {
      ffmpegPath: config.stream.ffmpegPath,
      vaapiDevice: config.stream.vaapiDevice,
    }));
  const gpu = new GpuSessions(isGpuEncoder(probe.encoder) ? config.stream.gpuMaxSessions : 0);
  log.info(
    { encoder: probe.encoder, tried: probe.tried, gpuSessions: gpu.max },
    `transcodes encode with ${probe.encoder}`,
  );
  // FLV (FFmpeg's input, RTMP re-streams) carries no Opus: WHIP streams' audio reaches them as AAC.
  const aacEncoder = ffmpegAacEncoder({ ffmpegPath: config.stream.ffmpegPath, reaper, log });
  const streams = new StreamRegistry({
    hls: config.hls,
    stream: config.stream,
    log,
    reaper,
    encoder: { name: probe.encoder, gpu, vaapiDevice: config.stream.vaapiDevice },
    aacEncoder,
  });
  let draining = false;
  const authorize: AuthorizePublish = async (request) => {
    if (draining) return { allow: false, reason: 'relay is draining' };
    const refusal = streams.checkPublish(request);
    if (refusal) return { allow: false, reason: refusal, badName: true };
    return options.authorize ? options.authorize(request) : { allow: true };
  };
  const rtmp = new RtmpServer({
    log,
    authorize,
    maxConnections: config.rtmp.maxConnections,
    maxConnectionsPerIp: config.rtmp.maxConnectionsPerIp,
    authTimeoutMs: config.rtmp.authTimeoutMs,
    limits: {
      handshakeTimeoutMs: config.rtmp.handshakeTimeoutMs,
      idleTimeoutMs: config.rtmp.idleTimeoutMs,
      maxMessageSize: config.rtmp.maxMessageSize,
    },
  });
  // RTMP publishes reach the streams as media sources (access units), like every other ingest.
  const onRtmpPublish = (publish: Publish): void => streams.addSource(new RtmpSource(publish));
  rtmp.on('publish', onRtmpPublish);
  // SRT (MPEG-TS) publishes are media sources already; the same authorization as RTMP, before any media.
  const srt = new SrtListener({
    log,
    authorize,
    authTimeoutMs: config.srt.authTimeoutMs,
    latencyMs: config.srt.latencyMs,
    passphrase: passphraseFromConfig(config.srt),
    maxConnections: config.srt.maxConnections,
    maxConnectionsPerIp: config.srt.maxConnectionsPerIp,
    handshakesPerSecond: config.srt.handshakesPerSecond,
    handshakesPerIpPerSecond: config.srt.handshakesPerIpPerSecond,
    receiveBufferPackets: config.srt.receiveBufferPackets,
    peerIdleTimeoutMs: config.srt.peerIdleTimeoutMs,
  });
  const detachSrt = streams.attach(srt);
  const detach = (): void => {
    rtmp.off('publish', onRtmpPublish);
    detachSrt();
  };
  // Live = publishing or waiting for its publisher.
  const ready = (): boolean =>
    !draining &&
    streams.streams.filter((s) => s.state === StreamState.Publishing || s.state === StreamState.Reconnecting)
      .length < config.cloud.maxStreams;
  const origin = buildOrigin({
    lookup: (userPath, streamId) => streams.byHlsPath(userPath, streamId)?.packager,
    lookupAbr: (userPath, streamId) => streams.byHlsPath(userPath, streamId)?.abr ?? undefined,
    corsOrigins: config.hls.corsOrigins,
    playback,
    log,
    ready,
  });
  // Before the thumbnails: the recorder takes a stream's last thumbnail as the stream ends, before they close.
  const recording = createRecording(config, log, {
    thumbnail: (stream) => thumbnails.latest(stream),
    // The slate a stream shows while its publisher is gone is for live viewers, never for the recording.
    initIsSlate: (stream) => stream.slating,
  });
  recording.recorder.attach(streams);
  void origin.register(
    buildRecordingRoutes({
      store: recording.store,
      // Replays need a playback token for their stream, as its live URLs do (PLAYBACK_AUTH).
      authorize:
        options.authorizeRecording ??
        (async (request, target) => {
          const c = await playback.check(request, { userPath: target.userPath, streamId: target.streamId });
          if (!c.ok) return { ok: false, status: c.status };
          return c.query ? { ok: true, query: c.query } : { ok: true };
        }),
      ...(config.cloud.hlsPublicBaseUrl ? { publicBase: config.cloud.hlsPublicBaseUrl } : {}),
    }),
  );
  const thumbnails = new Thumbnails({
    streams,
    reaper,
    log,
    intervalMs: config.hls.thumbnailMs,
    width: config.hls.thumbnailWidth,
    ffmpegPath: config.stream.ffmpegPath,
  });
  thumbnails.route(origin, (userPath, streamId) => streams.byHlsPath(userPath, streamId), playback);
  // DASH over the same segments (src/dash/routes.ts): the MPD points at the HLS routes' media.
  void origin.register(
    buildDashRoutes({
      lookup: (userPath, streamId) => streams.byHlsPath(userPath, streamId)?.packager,
      lookupAbr: (userPath, streamId) => {
        const abr = streams.byHlsPath(userPath, streamId)?.abr;
        return abr?.renditions.map((r) => ({
          id: r.rung.name,
          packager: r.packager,
          bandwidth: r.rung.bandwidth,
          frameRate: abr.frameRate,
        }));
      },
      corsOrigins: config.hls.corsOrigins,
      // The MPD checks the playback token as every HLS request does (its media goes through the HLS guard).
      ...(playback.mode === 'token'
        ? {
            authorize: async (request: FastifyRequest, userPath: string, streamId: string) =>
              (await playback.check(request, { userPath, streamId })).ok,
          }
        : {}),
    }),
  );
  const restreaming = new Restreaming({ streams, log, aacEncoder });
  const viewers = new ViewerTracker({ windowMs: config.hls.viewerWindowMs });
  const relayMetrics = createRelayMetrics({
    rtmp,
    streams,
    viewers,
    heldRequests: () => heldRequests(origin),
  });
  observeOrigin(origin, {
    streamKey: (userPath, streamId) => streams.byHlsPath(userPath, streamId)?.key,
    viewers,
    observe: relayMetrics.observeHlsRequest,
  });
  streams.on('ended', (stream) => viewers.forget(stream.key));
  const startedAt = Date.now();
  let hlsPort = config.hls.port;
  let rtmpPort = config.rtmp.port;
  let srtPort = config.srt.port;
  let webrtc: RelayWebrtc | null = null;
  const api = buildControlApi({
    // `webrtc` is set once listening (below); a kick comes later, through the API.
    kick: (key) => rtmp.kick(key) || srt.kick(key) || (webrtc?.whip.kick(key) ?? false),
    streams,
    token: config.api.token,
    ready,
    viewers,
    relayInfo: () => ({
      relayId: config.relay.id,
      rtmpPort,
      srtPort,
      hlsPort,
      maxStreams: config.cloud.maxStreams,
      streams: streams.streams.length,
      ready: ready(),
      uptimeSeconds: Math.round((Date.now() - startedAt) / 1000),
      publishAuth: config.publishAuth,
      profile: config.stream.profile,
      encoder: probe.encoder,
      gpu: { sessions: gpu.max, used: gpu.used, fallbacks: gpu.fallbacks },
    }),
  });
  registerRecordingMetrics(relayMetrics.registry, recording.recorder);
  const metrics = buildMetricsApp({ registry: relayMetrics.registry, onClose: relayMetrics.close });
  let closed = false;
  const close = async (): Promise<void> => {
    if (closed) return;
    closed = true;
    detach();
    await rtmp.close();
    await srt.close();
    webrtc?.whip.close(); // WHIP publishers go with the other ingests, before their streams end
    await streams.close();
    webrtc?.close();
    await recording.close();
    thumbnails.close();
    restreaming.close();
    await origin.close();
    await api.close();
    await metrics.close();
    reaper.close();
  };
  const drain = async (timeoutMs: number): Promise<void> => {
    draining = true;
    const publishing = (): number => streams.streams.filter((s) => s.state === StreamState.Publishing).length;
    log.info({ timeoutMs, publishing: publishing() }, 'draining: new publishes refused');
    if (publishing() > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, timeoutMs);
        function check(): void {
          if (publishing() === 0) done();
        }
        function done(): void {
          clearTimeout(timer);
          for (const s of streams.streams) s.off('state', check);
          streams.off('created', watch);
          resolve();
        }
        function watch(stream: { on(e: 'state', l: () => void): unknown }): void {
          stream.on('state', check);
        }
        for (const s of streams.streams) s.on('state', check);
        streams.on('created', watch);
      });
    }
    log.info({ publishing: publishing() }, 'drain over: closing');
    await close();
  };
  try {
    rtmpPort = await rtmp.listen(config.rtmp.port, config.rtmp.host);
    srtPort = await srt.listen(config.srt.port, config.srt.host);
    webrtc = await startRelayWebrtc({
      config,
      streams,
      reaper,
      log,
      authorizePublish: authorize,
      // WHEP offers pass the same playback-token check (its routes answer every refusal 401).
      ...(playback.mode === 'token'
        ? {
            authorizePlayback: async (request: FastifyRequest, userPath: string, streamId: string) =>
              (await playback.check(request, { userPath, streamId })).ok,
          }
        : {}),
    });
    webrtc.route(origin);
    const tlsConfig = config.rtmp.tls;
    const rtmpsPort = tlsConfig
      ? await rtmp.listenTls(tlsConfig.port, config.rtmp.host, readTlsFiles(tlsConfig))
      : null;
    const listen = async (app: FastifyInstance, port: number, host: string): Promise<number> => {
      await app.listen({ port, host });
      const address = app.server.address();
      return typeof address === 'object' && address ? address.port : port;
    };
    hlsPort = await listen(origin, config.hls.port, config.hls.host);
    const apiPort = await listen(api, config.api.port, config.api.host);
    const metricsPort = await listen(metrics, config.metrics.port, config.metrics.host);
    const hlsBase = `http://${options.publicHost ?? 'localhost'}:${hlsPort}/hls`;
    log.info(
      { hlsPort, apiPort, metricsPort, srtPort, webrtcPort: webrtc.udpPort },
      'HLS origin, control API, metrics, SRT and WebRTC listening',
    );
    return {
      rtmpPort,
      rtmpsPort,
      srt,
      srtPort,
      webrtc,
      webrtcPort: webrtc.udpPort,
      hlsPort,
      apiPort,
      metricsPort,
      rtmp,
      streams,
      origin,
      api,
      metrics,
      ready,
      get draining() {
        return draining;
      },
      drain,
      reaper,
      viewers,
      restreaming,
      recording,
      hlsBase,
      playback,
      close,
    };
  } catch (err) {
    await close();
    throw err;
  }
}

/** The RTMPS certificate and key (PEM); a missing or unreadable file stops the start with a clear error. */
function readTlsFiles(tlsConfig: { certFile: string; keyFile: string }): { cert: Buffer; key: Buffer } {
  const read = (file: string, name: string): Buffer => {
    try {
      return readFileSync(file);
    } catch (err) {
      throw new RelayError(
        ErrorCodes.CONFIG_INVALID,
        `${name} ${file} cannot be read: ${(err as NodeJS.ErrnoException).code ?? String(err)}`,
      );
    }
  };
  return {
    cert: read(tlsConfig.certFile, 'RTMPS_CERT_FILE'),
    key: read(tlsConfig.keyFile, 'RTMPS_KEY_FILE'),
  };
}
