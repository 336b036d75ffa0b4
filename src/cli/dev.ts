/**
 * `rtmp-relay dev`: the system on one machine. For now that is one relay (RTMP ingest, cleaning, HLS
 * origin); later issues add the cloud and the dashboard. Publish auth is off by default here, loudly.
 */
import { createWriteStream, mkdirSync } from 'node:fs';
import path from 'node:path';
import { hlsUserPath } from '../contracts/names.ts';
import { FlvSink } from '../media/flv-sink.ts';
import { startRelay } from '../relay/relay.ts';
import { loadConfig } from '../shared/config.ts';
import { createLogger, type Logger } from '../shared/logger.ts';

export interface DevHandle {
  rtmpPort: number;
  hlsPort: number;
  close(): Promise<void>;
}

export async function startDev(env: NodeJS.ProcessEnv = process.env, log?: Logger): Promise<DevHandle> {
  const config = loadConfig(env, { publishAuth: 'off' });
  const logger = log ?? createLogger({ level: config.logLevel });
  if (config.publishAuth === 'token') {
    throw new Error('PUBLISH_AUTH=token needs the cloud control plane, which dev mode does not run yet');
  }
  logger.warn('PUBLISH AUTH IS OFF: anyone who can reach the RTMP port can publish (dev mode)');

  const relay = await startRelay(config, logger);
  relay.streams.on('ready', (stream) => {
    logger.info(
      { key: stream.key, profile: stream.pipelineProfile, decision: stream.decision },
      `watch: ${relay.hlsBase}/${hlsUserPath(stream.userId)}/${stream.streamId}/index.m3u8`,
    );
  });

  const recordDir = config.recordDir;
  if (recordDir) {
    mkdirSync(recordDir, { recursive: true });
    relay.rtmp.on('publish', (publish) => {
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

  logger.info(
    `publish with: ffmpeg -re -i test.mp4 -c copy -f flv rtmp://localhost:${relay.rtmpPort}/live/test@user.com/stream123` +
      ` — then watch ${relay.hlsBase}/test-user.com/stream123/index.m3u8`,
  );
  return { rtmpPort: relay.rtmpPort, hlsPort: relay.hlsPort, close: () => relay.close() };
}
