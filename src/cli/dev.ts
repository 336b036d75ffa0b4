/**
 * `rtmp-relay dev`: the system on one machine. For now that is the RTMP ingest; later issues grow it into
 * cloud + relay + dashboard. Publish auth is off by default here, loudly.
 */
import { createWriteStream, mkdirSync } from 'node:fs';
import path from 'node:path';
import { hlsUserPath } from '../contracts/names.ts';
import { FlvSink } from '../media/flv-sink.ts';
import { RtmpServer } from '../rtmp/server.ts';
import { loadConfig } from '../shared/config.ts';
import { createLogger, type Logger } from '../shared/logger.ts';

export interface DevHandle {
  rtmpPort: number;
  close(): Promise<void>;
}

export async function startDev(env: NodeJS.ProcessEnv = process.env, log?: Logger): Promise<DevHandle> {
  const config = loadConfig(env, { publishAuth: 'off' });
  const logger = log ?? createLogger({ level: config.logLevel });
  if (config.publishAuth === 'token') {
    throw new Error('PUBLISH_AUTH=token needs the cloud control plane, which dev mode does not run yet');
  }
  logger.warn('PUBLISH AUTH IS OFF: anyone who can reach the RTMP port can publish (dev mode)');

  const server = new RtmpServer({
    log: logger,
    maxConnections: config.rtmp.maxConnections,
    maxConnectionsPerIp: config.rtmp.maxConnectionsPerIp,
    authTimeoutMs: config.rtmp.authTimeoutMs,
    limits: {
      handshakeTimeoutMs: config.rtmp.handshakeTimeoutMs,
      idleTimeoutMs: config.rtmp.idleTimeoutMs,
      maxMessageSize: config.rtmp.maxMessageSize,
    },
  });

  const recordDir = config.recordDir;
  if (recordDir) {
    mkdirSync(recordDir, { recursive: true });
    server.on('publish', (publish) => {
      const { userId, streamId } = publish.info;
      // Names are validated by the naming contract: no separators, no "..".
      const file = path.join(recordDir, `${hlsUserPath(userId)}_${streamId}_${publish.info.startedAt}.flv`);
      const sink = new FlvSink(createWriteStream(file), { log: logger.child({ key: publish.info.key }) });
      publish.on('start', (start) => sink.start(start));
      publish.on('tag', (tag) => sink.write(tag));
      publish.once('end', () => sink.end());
      logger.info({ file }, 'recording publish');
    });
  }

  const rtmpPort = await server.listen(config.rtmp.port, config.rtmp.host);
  logger.info(
    `publish with: ffmpeg -re -i test.mp4 -c copy -f flv rtmp://localhost:${rtmpPort}/live/test@user.com/stream123`,
  );
  return { rtmpPort, close: () => server.close() };
}
