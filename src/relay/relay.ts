/**
 * The composition root of one relay: RTMP ingest → streams (repair, FFmpeg, packager) → HLS origin.
 * Every part is created here and closed here, children before parents: the RTMP server first (no new
 * publishes), then the streams (ENDLIST, FFmpeg stopped), then the origin, the control API and the metrics
 * app, then the child reaper.
 */
import { readFileSync } from 'node:fs';
import type { FastifyInstance } from 'fastify';
import { buildDashRoutes } from '../dash/routes.ts';
import { buildOrigin, heldRequests } from '../hls/origin.ts';
import { ChildReaper } from '../pipeline/child-reaper.ts';
import {
  type EncoderProbeResult,
  GpuSessions,
  isGpuEncoder,
  probeEncoderOnce,
} from '../pipeline/encoders.ts';
import type { Publish } from '../rtmp/publish.ts';
import { RtmpSource } from '../rtmp/rtmp-source.ts';
import { type AuthorizePublish, RtmpServer } from '../rtmp/server.ts';
import type { RelayConfig } from '../shared/config.ts';
import { ErrorCodes, RelayError } from '../shared/errors.ts';
import type { Logger } from '../shared/logger.ts';
import { passphraseFromConfig, SrtListener } from '../srt/listener.ts';
import { StreamRegistry } from '../stream/registry.ts';
import { StreamState } from '../stream/stream.ts';
import { buildControlApi } from './control-api.ts';
import { observeOrigin } from './hls-requests.ts';
import { buildMetricsApp, createRelayMetrics } from './metrics.ts';
import { Restreaming } from './restreaming.ts';
import { Thumbnails } from './thumbnails.ts';
import { ViewerTracker } from './viewers.ts';

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
  /** `http://host:port/hls/{userPath}/{streamId}/index.m3u8` base, for logs. */
  hlsBase: string;
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
  } = {},
): Promise<RelayHandle> {
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
  const streams = new StreamRegistry({
    hls: config.hls,
    stream: config.stream,
    log,
    reaper,
    encoder: { name: probe.encoder, gpu, vaapiDevice: config.stream.vaapiDevice },
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
    log,
    ready,
  });
  const thumbnails = new Thumbnails({
    streams,
    reaper,
    log,
    intervalMs: config.hls.thumbnailMs,
    width: config.hls.thumbnailWidth,
    ffmpegPath: config.stream.ffmpegPath,
  });
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
    }),
  );
  thumbnails.route(origin, (userPath, streamId) => streams.byHlsPath(userPath, streamId));
  const restreaming = new Restreaming({ streams, log });
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
  const api = buildControlApi({
    rtmp,
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
  const metrics = buildMetricsApp({ registry: relayMetrics.registry, onClose: relayMetrics.close });
  let closed = false;
  const close = async (): Promise<void> => {
    if (closed) return;
    closed = true;
    detach();
    await rtmp.close();
    await srt.close();
    await streams.close();
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
      { hlsPort, apiPort, metricsPort, srtPort },
      'HLS origin, control API, metrics and SRT listening',
    );
    return {
      rtmpPort,
      rtmpsPort,
      srt,
      srtPort,
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
      hlsBase,
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
