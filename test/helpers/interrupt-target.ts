/**
 * Not a test of its own: the run that test/integration/test-runner.test.ts interrupts. One test starts what
 * the suite starts (a cloud and a relay as processes in their own groups, the relay's FFmpeg for a live
 * publish, a publisher FFmpeg in its own group, a redis-server), writes every pid to INTERRUPT_PIDS_FILE
 * and waits to be interrupted. Named without `.test.ts` so the suite never runs it by itself.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { it } from 'node:test';
import { Redis } from 'ioredis';
import { startTool } from './process.ts';
import { publisherArgv } from './publishers.ts';
import { startRedisServer } from './redis-server.ts';
import { eventually, ffmpegChildren, spawnCloud, spawnRelay } from './relay-process.ts';

const SECRETS = {
  RELAY_SHARED_SECRET: 'interrupt-target-relay-secret-0123456789',
  PUBLISH_TOKEN_SECRET: 'interrupt-target-publish-secret-0123456789abcdef',
};

it('starts what a suite starts, then waits to be interrupted', async () => {
  const file = process.env.INTERRUPT_PIDS_FILE;
  if (!file) throw new Error('INTERRUPT_PIDS_FILE is not set');
  const redis = await startRedisServer();
  const cloud = await spawnCloud({ ...SECRETS, PUBLISH_AUTH: 'off' }, 60_000);
  const relay = spawnRelay('interrupt-relay', cloud.url, {
    ...SECRETS,
    PUBLISH_AUTH: 'off',
    // transcode: the relay runs one long-lived FFmpeg for the stream (copy runs none but the short
    // thumbnail decodes, which may exit before the test looks at them).
    CLEAN_PROFILE: 'transcode',
  });
  const listening = await relay.waitLine((l) => l.msg === 'RTMP listening', 60_000);
  const { command, args } = publisherArgv('ffmpeg', {
    url: `rtmp://127.0.0.1:${listening.port}/live/interrupt/s1`,
    seconds: 600,
    fps: 5,
    videoKbps: 200,
  });
  const publisher = startTool(command, args);
  const relayFfmpeg = await eventually(
    'the relay runs its transcoding FFmpeg',
    () => ffmpegChildren(relay.pid).find((pid) => !isThumbnailRun(pid)),
    60_000,
  );
  const pids = {
    testFile: process.pid,
    cloud: cloud.pid,
    relay: relay.pid,
    relayFfmpeg,
    publisher: publisher.pid,
    redis: await redisPid(redis.port),
  };
  writeFileSync(file, JSON.stringify(pids));
  await new Promise(() => {}); // until interrupted
});

/** A thumbnail decode (one frame, then it exits), not the stream's FFmpeg. */
function isThumbnailRun(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').includes('-frames:v');
  } catch {
    return true; // gone already: not the long-lived one
  }
}

/** redis-server's pid, from its INFO (the helper keeps its child private). */
async function redisPid(port: number): Promise<number> {
  const client = new Redis({ port, host: '127.0.0.1', lazyConnect: true });
  await client.connect();
  const info = await client.info('server');
  client.disconnect();
  return Number(/process_id:(\d+)/.exec(info)?.[1]);
}
