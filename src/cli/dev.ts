/**
 * `rtmp-relay dev`: the system on one machine: the cloud (in-memory store) and one relay (RTMP ingest,
 * cleaning, HLS origin) with its agent, in one process, plus the operator dashboard on the cloud. Publish
 * auth is off by default here, loudly (PUBLISH_AUTH=token turns it on with a generated secret). The
 * dashboard's CONTROL_API_TOKEN is generated unless set; a generated one is printed in the dashboard URL's
 * fragment (which browsers never send to a server), so the printed link just opens. A configured one is
 * never printed.
 */
import { hlsUserPath } from '../contracts/names.ts';
import { loadConfig } from '../shared/config.ts';
import { createLogger, type Logger } from '../shared/logger.ts';
import { DEV_PUBLISH_TOKEN_TTL_SECONDS, startDevSystem } from './compose.ts';
import { writeDevLink } from './dev-link.ts';

export interface DevHandle {
  rtmpPort: number;
  hlsPort: number;
  cloudPort: number;
  /** The dashboard's URL (with the generated token in its fragment when dev generated one). */
  dashboardUrl: string;
  /** Closes everything (idempotent) and logs what it closed; `why` names the cause (a signal). */
  close(why?: string): Promise<void>;
}

export async function startDev(env: NodeJS.ProcessEnv = process.env, log?: Logger): Promise<DevHandle> {
  const config = loadConfig(env, { publishAuth: 'off' });
  const logger = log ?? createLogger({ level: config.logLevel });
  // One line when both are off (dev's default): the warning a clean start gives.
  const playbackOff = 'PLAYBACK AUTH IS OFF: anyone who knows a stream URL can watch it';
  if (config.publishAuth === 'off') {
    logger.warn(
      `PUBLISH AUTH IS OFF: anyone who can reach the RTMP port can publish (dev mode)${config.playback.auth === 'off' ? `; ${playbackOff}` : ''}`,
    );
  } else if (config.playback.auth === 'off') {
    logger.warn(`${playbackOff} (dev mode)`);
  }

  const system = await startDevSystem(config, logger);
  const relay = system.relay;
  relay.streams.on('ready', (stream) => {
    // With playback auth on and a secret generated here, a dev playback token (printing it is fine: the
    // secret dies with the process); with a configured secret, the cloud's URLs are the ones to use.
    const token = system.signDevPlaybackToken?.(stream.userId, stream.streamId);
    const path = `${hlsUserPath(stream.userId)}/${stream.streamId}`;
    const query = token ? `?token=${token}` : '';
    const origin = relay.hlsBase.replace(/\/hls$/, '');
    logger.info(
      { key: stream.key, profile: stream.pipelineProfile, decision: stream.decision },
      `watch: ${relay.hlsBase}/${path}/index.m3u8${query}`,
    );
    logger.info(`  or DASH: ${origin}/dash/${path}/index.mpd${query}`);
    logger.info(`  or WebRTC (WHEP: POST an SDP offer): ${origin}/whep/${path}${query}`);
  });

  // With publish auth on, a token for the README's example stream (only when the secret is ours to print).
  let query = '';
  if (config.publishAuth === 'token') {
    if (system.signDevPublishToken) {
      query = `?token=${await system.signDevPublishToken('test@user.com', 'stream123')}`;
      logger.warn(
        `PUBLISH AUTH IS ON: a dev token for live/test@user.com/stream123 (valid ${DEV_PUBLISH_TOKEN_TTL_SECONDS / 3600} h) is in the URL below`,
      );
    } else {
      logger.info('PUBLISH AUTH IS ON with your PUBLISH_TOKEN_SECRET: publish with a token the cloud signs');
    }
  }
  // With playback auth on and a secret generated here, the example URL carries a dev playback token.
  const playbackToken = system.signDevPlaybackToken?.('test@user.com', 'stream123');
  const exampleHls = `${relay.hlsBase}/test-user.com/stream123/index.m3u8${playbackToken ? `?token=${playbackToken}` : ''}`;
  logger.info(
    `publish with: ffmpeg -re -i test.mp4 -c copy -f flv rtmp://localhost:${relay.rtmpPort}/live/test@user.com/stream123${query}`,
  );
  // LL-HLS is served on the same URL (players without LL ignore its tags); DASH and WHEP beside it.
  logger.info(`then watch (HLS and LL-HLS): ${exampleHls}`);
  logger.info(
    `  or DASH: ${exampleHls.replace('/hls/', '/dash/').replace('/index.m3u8', '/index.mpd')}, or WebRTC (WHEP): ${exampleHls.replace('/hls/', '/whep/').replace('/index.m3u8', '')}`,
  );
  const dashboardUrl = system.controlApiTokenGenerated
    ? `${system.cloud.dashboardUrl}#token=${encodeURIComponent(system.controlApiToken)}`
    : system.cloud.dashboardUrl;
  logger.info(
    `dashboard: ${dashboardUrl}${system.controlApiTokenGenerated ? '' : ' (asks for your CONTROL_API_TOKEN)'}`,
  );
  // The demo (another process) prints the same link; a configured token is never written anywhere.
  let removeLink: (() => void) | null = null;
  if (system.controlApiTokenGenerated) {
    try {
      removeLink = writeDevLink(system.cloud.port, dashboardUrl, env);
    } catch (err) {
      // Only the demo's dashboard line needs it; dev itself works without.
      logger.debug({ err: (err as Error).message }, 'dashboard link not written for the demo');
    }
  }
  logger.info(
    `cloud API: ${system.cloud.url} (managed streams: POST /api/managed-streams; glasses: /glasses-ws?userId=…)`,
  );
  let closing: Promise<void> | undefined;
  const close = (why = 'close'): Promise<void> => {
    closing ??= (async () => {
      const live = relay.streams.streams.length;
      logger.info(`stopping (${why})`);
      removeLink?.();
      await system.close();
      logger.info(
        {
          streams: live,
          ports: {
            rtmp: relay.rtmpPort,
            hls: relay.hlsPort,
            api: relay.apiPort,
            metrics: relay.metricsPort,
            cloud: system.cloud.port,
          },
        },
        `stopped: RTMP :${relay.rtmpPort} closed, ${live} stream${live === 1 ? '' : 's'} ended` +
          ` (ENDLIST written, FFmpeg stopped), HLS :${relay.hlsPort}, control API :${relay.apiPort}` +
          ` and metrics :${relay.metricsPort} closed, cloud :${system.cloud.port} closed`,
      );
    })();
    return closing;
  };
  return {
    rtmpPort: relay.rtmpPort,
    hlsPort: relay.hlsPort,
    cloudPort: system.cloud.port,
    dashboardUrl,
    close,
  };
}
