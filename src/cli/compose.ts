/**
 * Process compositions for the `rtmp-relay` commands: a relay with its cloud agent (`relay`), the cloud
 * (`cloud`), and both in one process (`dev`). Secrets: required outside dev mode; dev generates them.
 */
import { randomBytes } from 'node:crypto';
import { type CloudHandle, startCloud } from '../cloud/cloud.ts';
import { createPublishTokenVerifier, signPublishToken } from '../cloud/tokens.ts';
import { publishKey } from '../contracts/keys.ts';
import { RelayAgent } from '../relay/agent.ts';
import { type RelayHandle, startRelay } from '../relay/relay.ts';
import type { RelayConfig } from '../shared/config.ts';
import { ErrorCodes, RelayError } from '../shared/errors.ts';
import type { Logger } from '../shared/logger.ts';
import { createPlaybackTokenSigner } from '../shared/playback-token.ts';

export function requireSecret(value: string | undefined, name: string): string {
  if (!value) throw new RelayError(ErrorCodes.CONFIG_INVALID, `${name} is required (dev mode generates one)`);
  return value;
}

/** A relay, its publish-token check when PUBLISH_AUTH=token, and its agent talking to the cloud. */
export async function startRelayNode(
  config: RelayConfig,
  log: Logger,
  secrets: { relaySecret: string; publishTokenSecret: string | null; playbackTokenSecret?: string | null },
): Promise<{ relay: RelayHandle; agent: RelayAgent; drain(): Promise<void>; close(): Promise<void> }> {
  const authorize =
    config.publishAuth === 'token'
      ? createPublishTokenVerifier({
          secret: requireSecret(secrets.publishTokenSecret ?? undefined, 'PUBLISH_TOKEN_SECRET'),
          previousSecret: config.publishTokenSecretPrevious,
          relayId: config.relay.id,
        })
      : undefined;
  const relay = await startRelay(config, log, {
    publicHost: config.cloud.relayPublicHost,
    ...(authorize ? { authorize } : {}),
    ...(secrets.playbackTokenSecret ? { playbackTokenSecret: secrets.playbackTokenSecret } : {}),
  });
  const host = config.cloud.relayPublicHost;
  const agent = new RelayAgent({
    cloudUrl: config.cloud.apiUrl,
    secret: secrets.relaySecret,
    relay: {
      relayId: config.relay.id,
      rtmpUrl: `rtmp://${host}:${relay.rtmpPort}`,
      srtUrl: `srt://${host}:${relay.srtPort}`,
      // WHIP is signalled on the origin's port (POST /whip/live/{userId}/{streamId}); ICE on WEBRTC_UDP_PORT.
      whipUrl: `http://${host}:${relay.hlsPort}`,
      hlsUrl: `http://${host}:${relay.hlsPort}`,
      maxStreams: config.cloud.maxStreams,
    },
    heartbeatMs: config.cloud.heartbeatMs,
    streams: relay.streams,
    viewers: relay.viewers,
    restreaming: relay.restreaming,
    draining: () => relay.draining,
    whep: true, // the relay serves WHEP on its origin (relay/webrtc.ts): hls-ready carries webrtcUrl
    // The cloud ended the managed stream: end it here too (ENDLIST now, load freed), publisher included.
    endStream: (userId, streamId) => {
      relay.rtmp.kick(publishKey(userId, streamId));
      relay.srt.kick(publishKey(userId, streamId));
      relay.webrtc.whip.kick(publishKey(userId, streamId));
      const stream = relay.streams.streams.find((s) => s.userId === userId && s.streamId === streamId);
      void stream?.close();
    },
    log,
  });
  // Recordings: the cloud says which managed streams record and names their recording; apps hear the URLs.
  const recorder = relay.recording.recorder;
  recorder.setDecider((stream) => agent.recordingDecision(stream, config.recording.on));
  const recordingsBase = `${config.cloud.hlsPublicBaseUrl?.replace(/\/+$/, '') ?? `http://${host}:${relay.hlsPort}`}/recordings`;
  recorder.on('uploaded', (m) => {
    const url = `${recordingsBase}/${m.userPath}/${m.streamId}/${m.recordingId}`;
    agent.recordingReady({
      userId: m.userId,
      streamId: m.streamId,
      recording: {
        id: m.recordingId,
        state: 'ready',
        hlsUrl: `${url}/index.m3u8`,
        mp4Url: `${url}/recording.mp4`,
        thumbnailUrl: m.thumbnail ? `${url}/thumbnail.jpg` : null,
        durationSeconds: Math.round(m.segments.reduce((sum, s) => sum + s.duration, 0) * 1000) / 1000,
      },
    });
  });
  await agent.start();
  return {
    relay,
    agent,
    /** SIGTERM: refuse new publishes, tell the cloud, let streams finish, send every event, deregister. */
    drain: async () => {
      const drained = relay.drain(config.cloud.drainTimeoutMs);
      await agent.heartbeatNow();
      await drained;
      await agent.flush(5000);
      await agent.close();
    },
    close: async () => {
      await agent.close();
      await relay.close();
    },
  };
}

/** How long a dev publish token printed at start lives (a working day). */
export const DEV_PUBLISH_TOKEN_TTL_SECONDS = 12 * 3600;

export interface DevSystem {
  cloud: CloudHandle;
  relay: RelayHandle;
  agent: RelayAgent;
  /** CONTROL_API_TOKEN (the dashboard and the relay's control API), generated unless configured. */
  controlApiToken: string;
  /** Whether `controlApiToken` was generated here (then printing it is fine: it lives as long as we do). */
  controlApiTokenGenerated: boolean;
  /**
   * With PUBLISH_AUTH=token and a secret generated here: signs a publish token for this relay (printing it
   * is fine, the secret dies with the process). Null otherwise.
   */
  signDevPublishToken: ((userId: string, streamId: string) => Promise<string>) | null;
  /** The same for playback tokens (PLAYBACK_AUTH=token with a secret generated here); null otherwise. */
  signDevPlaybackToken: ((userId: string, streamId: string) => string) | null;
  close(): Promise<void>;
}

/** Cloud + relay in one process; publish auth as configured (dev default: off). */
export async function startDevSystem(
  configured: RelayConfig,
  log: Logger,
  options: { dashboardRefreshMs?: number; dashboardOutputGraceMs?: number } = {},
): Promise<DevSystem> {
  const controlApiToken = configured.api.token ?? randomBytes(24).toString('base64url');
  const config: RelayConfig = { ...configured, api: { ...configured.api, token: controlApiToken } };
  const relaySecret = config.cloud.relaySecret ?? randomBytes(24).toString('base64url');
  const publishTokenSecret =
    config.publishAuth === 'token'
      ? (config.publishTokenSecret ?? randomBytes(32).toString('base64url'))
      : null;
  // PLAYBACK_AUTH=token in dev without a secret: one for this process, shared by its cloud and relay.
  const playbackTokenSecret =
    config.playback.auth === 'token'
      ? (config.playback.tokenSecret ?? randomBytes(32).toString('base64url'))
      : null;
  const cloud = await startCloud(config, log, {
    relaySecret,
    publishTokenSecret,
    playbackTokenSecret,
    userTokenSecret: null,
    announceDashboard: false, // dev prints the link that signs in (with the generated token)
    ...(options.dashboardRefreshMs ? { dashboardRefreshMs: options.dashboardRefreshMs } : {}),
    ...(options.dashboardOutputGraceMs ? { dashboardOutputGraceMs: options.dashboardOutputGraceMs } : {}),
  });
  const withCloud: RelayConfig = {
    ...config,
    cloud: { ...config.cloud, apiUrl: `http://127.0.0.1:${cloud.port}` },
  };
  const node = await startRelayNode(withCloud, log, { relaySecret, publishTokenSecret, playbackTokenSecret });
  return {
    cloud,
    relay: node.relay,
    agent: node.agent,
    controlApiToken,
    controlApiTokenGenerated: configured.api.token === undefined,
    signDevPublishToken:
      publishTokenSecret && config.publishTokenSecret === undefined
        ? (userId, streamId) =>
            signPublishToken(publishTokenSecret, {
              userId,
              streamId,
              relayId: config.relay.id,
              ttlSeconds: DEV_PUBLISH_TOKEN_TTL_SECONDS,
            })
        : null,
    signDevPlaybackToken:
      playbackTokenSecret && config.playback.tokenSecret === undefined
        ? (userId, streamId) =>
            createPlaybackTokenSigner({
              secret: playbackTokenSecret,
              ttlSeconds: Math.min(config.playback.ttlSeconds, DEV_PUBLISH_TOKEN_TTL_SECONDS),
            }).sign(userId, streamId)
        : null,
    close: async () => {
      await node.close();
      await cloud.close();
    },
  };
}
