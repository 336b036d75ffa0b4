/**
 * The composition root of one relay: RTMP ingest → streams (repair, FFmpeg, packager) → HLS origin.
 * Every part is created here and closed here, children before parents: the RTMP server first (no new
 * publishes), then the streams (ENDLIST, FFmpeg stopped), then the origin, then the child reaper.
 */
import type { FastifyInstance } from 'fastify';
import { buildOrigin } from '../hls/origin.ts';
import { ChildReaper } from '../pipeline/child-reaper.ts';
import { type AuthorizePublish, RtmpServer } from '../rtmp/server.ts';
import type { RelayConfig } from '../shared/config.ts';
import type { Logger } from '../shared/logger.ts';
import { StreamRegistry } from '../stream/registry.ts';

export interface RelayHandle {
  rtmpPort: number;
  hlsPort: number;
  rtmp: RtmpServer;
  streams: StreamRegistry;
  origin: FastifyInstance;
  reaper: ChildReaper;
  /** `http://host:port/hls/{userPath}/{streamId}/index.m3u8` base, for logs. */
  hlsBase: string;
  close(): Promise<void>;
}

export async function startRelay(
  config: RelayConfig,
  log: Logger,
  options: { authorize?: AuthorizePublish; publicHost?: string } = {},
): Promise<RelayHandle> {
  const reaper = new ChildReaper();
  const streams = new StreamRegistry({ hls: config.hls, stream: config.stream, log, reaper });
  const authorize: AuthorizePublish = async (request) => {
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
  const detach = streams.attach(rtmp);
  const origin = buildOrigin({
    lookup: (userPath, streamId) => streams.byHlsPath(userPath, streamId)?.packager,
    corsOrigins: config.hls.corsOrigins,
    log,
  });
  let closed = false;
  const close = async (): Promise<void> => {
    if (closed) return;
    closed = true;
    detach();
    await rtmp.close();
    await streams.close();
    await origin.close();
    reaper.close();
  };
  try {
    const rtmpPort = await rtmp.listen(config.rtmp.port, config.rtmp.host);
    await origin.listen({ port: config.hls.port, host: config.hls.host });
    const address = origin.server.address();
    const hlsPort = typeof address === 'object' && address ? address.port : config.hls.port;
    const hlsBase = `http://${options.publicHost ?? 'localhost'}:${hlsPort}/hls`;
    log.info({ hlsPort }, 'HLS origin listening');
    return { rtmpPort, hlsPort, rtmp, streams, origin, reaper, hlsBase, close };
  } catch (err) {
    await close();
    throw err;
  }
}
