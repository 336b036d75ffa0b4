/**
 * `relay`, `cloud` and `glasses-sim`: each parses its configuration once and returns something to close.
 */
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { startCloud } from '../cloud/cloud.ts';
import { loadConfig } from '../shared/config.ts';
import { createLogger } from '../shared/logger.ts';
import { GlassesSim } from '../sim/glasses-sim.ts';
import { requireSecret, startRelayNode } from './compose.ts';

export async function startCommand(
  command: 'relay' | 'cloud' | 'glasses-sim',
  args: string[],
): Promise<{ close(): Promise<void>; drain?(): Promise<void> }> {
  const config = loadConfig(process.env);
  const log = createLogger({ level: config.logLevel });
  if (command === 'relay') {
    const node = await startRelayNode(config, log, {
      relaySecret: requireSecret(config.cloud.relaySecret, 'RELAY_SHARED_SECRET'),
      publishTokenSecret: config.publishTokenSecret ?? null,
    });
    const { relay } = node;
    const closed = (how: string): void =>
      log.info(
        `stopped (${how}): RTMP :${relay.rtmpPort}, HLS :${relay.hlsPort}, control API :${relay.apiPort}` +
          ` and metrics :${relay.metricsPort} closed; deregistered from ${config.cloud.apiUrl}`,
      );
    return {
      drain: async () => {
        await node.drain();
        closed('drained');
      },
      close: async () => {
        const live = relay.streams.streams.length;
        await node.close();
        closed(`${live} stream${live === 1 ? '' : 's'} ended`);
      },
    };
  }
  if (command === 'cloud') {
    const secret = requireSecret(config.publishTokenSecret, 'PUBLISH_TOKEN_SECRET');
    const cloud = await startCloud(config, log, {
      relaySecret: requireSecret(config.cloud.relaySecret, 'RELAY_SHARED_SECRET'),
      publishTokenSecret: config.publishAuth === 'off' ? null : secret,
      userTokenSecret: secret,
    });
    return {
      close: async () => {
        await cloud.close();
        log.info(`stopped: cloud :${cloud.port} closed (glasses and app sockets, store)`);
      },
    };
  }
  if (args.some((a) => a === '--token' || a.startsWith('--token='))) {
    // A token in argv is readable by every user of the machine (ps, /proc): never accepted there.
    throw new Error('glasses-sim takes its token from GLASSES_TOKEN or --token-file FILE, never from argv');
  }
  const { values } = parseArgs({
    args,
    options: {
      user: { type: 'string' },
      cloud: { type: 'string' },
      'token-file': { type: 'string' },
    },
  });
  if (!values.user) throw new Error('glasses-sim needs --user USER_ID');
  const token = await simToken(values['token-file'], process.env.GLASSES_TOKEN);
  const sim = new GlassesSim({
    cloudUrl: values.cloud ?? config.cloud.apiUrl.replace(/^http/, 'ws'),
    userId: values.user,
    log,
    ...(token ? { token } : {}),
  });
  await sim.connect();
  log.info({ userId: values.user }, 'glasses connected to the cloud; waiting for start_rtmp_stream');
  return sim;
}

/** The glasses' user token: from a file (its first line) or GLASSES_TOKEN; none in dev mode. */
export async function simToken(
  file: string | undefined,
  env: string | undefined,
): Promise<string | undefined> {
  if (file) {
    const text = (await readFile(file, 'utf8')).split('\n')[0]!.trim();
    if (!text) throw new Error('--token-file: the file is empty');
    return text;
  }
  return env?.trim() || undefined;
}
