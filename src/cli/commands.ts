/**
 * `relay`, `cloud` and `glasses-sim`: each parses its configuration once and returns something to close.
 */
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
    return startRelayNode(config, log, {
      relaySecret: requireSecret(config.cloud.relaySecret, 'RELAY_SHARED_SECRET'),
      publishTokenSecret: config.publishTokenSecret ?? null,
    });
  }
  if (command === 'cloud') {
    const secret = requireSecret(config.publishTokenSecret, 'PUBLISH_TOKEN_SECRET');
    return startCloud(config, log, {
      relaySecret: requireSecret(config.cloud.relaySecret, 'RELAY_SHARED_SECRET'),
      publishTokenSecret: config.publishAuth === 'off' ? null : secret,
      userTokenSecret: secret,
    });
  }
  const { values } = parseArgs({
    args,
    options: { user: { type: 'string' }, cloud: { type: 'string' }, token: { type: 'string' } },
  });
  if (!values.user) throw new Error('glasses-sim needs --user USER_ID');
  const sim = new GlassesSim({
    cloudUrl: values.cloud ?? config.cloud.apiUrl.replace(/^http/, 'ws'),
    userId: values.user,
    log,
    ...(values.token ? { token: values.token } : {}),
  });
  await sim.connect();
  log.info({ userId: values.user }, 'glasses connected to the cloud; waiting for start_rtmp_stream');
  return sim;
}
