// `npm run demo`: with `npm start` running, a simulated pair of glasses joins the cloud, an app asks for the
// user's managed stream, and the URLs to watch it are printed once HLS plays, with the dashboard link that
// `npm start` wrote for it (its generated token included). Ctrl-C stops the stream and says what it closed.
import { readDevLink } from '../src/cli/dev-link.ts';
import { ManagedStreamClient } from '../src/sdk/client.ts';
import { createLogger } from '../src/shared/logger.ts';
import { GlassesSim } from '../src/sim/glasses-sim.ts';

const cloudUrl = process.env.CLOUD_API_URL ?? 'http://localhost:8080';
const userId = process.env.DEMO_USER_ID ?? 'demo@example.com';
const log = createLogger({ level: process.env.LOG_LEVEL ?? 'warn' });

const glasses = new GlassesSim({ cloudUrl: cloudUrl.replace(/^http/, 'ws'), userId, log });
try {
  await glasses.connect();
} catch (err) {
  console.error(
    `cannot reach the cloud at ${cloudUrl} (${(err as Error).message}): start it with "npm start" first`,
  );
  process.exit(1);
}
const app = new ManagedStreamClient({ cloudUrl, userId, packageName: 'com.example.demo' });
app.onManagedStreamStatus((s) => console.log(`status: ${s.status}${s.message ? ` (${s.message})` : ''}`));
const urls = await app.startManagedStream();
const cloudPort = Number(new URL(cloudUrl).port || 80);
const dashboard = readDevLink(cloudPort);
console.log(
  [
    '',
    `watch (HLS and LL-HLS): ${urls.hlsUrl}`,
    `share (follows the stream across relays): ${cloudUrl}/watch/${urls.streamId}/index.m3u8`,
    dashboard
      ? `dashboard: ${dashboard}`
      : 'dashboard: the "dashboard:" link that `npm start` printed (it carries the control token)',
    '(Ctrl-C to stop)',
  ].join('\n'),
);
const signal = await new Promise<NodeJS.Signals>((resolve) => {
  process.once('SIGINT', () => resolve('SIGINT'));
  process.once('SIGTERM', () => resolve('SIGTERM'));
});
await app.stopManagedStream();
await glasses.close();
console.log(`stopped (${signal}): managed stream ${urls.streamId} stopped, glasses disconnected`);
process.exit(0);
