// `npm run demo`: with `npm start` running, a simulated pair of glasses joins the cloud, an app asks for the
// user's managed stream, and the watch URL is printed once HLS plays. Ctrl-C stops the stream.
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
console.log(
  `\nwatch: ${urls.hlsUrl}\nshare: ${cloudUrl}/watch/${urls.streamId}/index.m3u8\n(Ctrl-C to stop)`,
);
await new Promise<void>((resolve) => {
  process.once('SIGINT', () => resolve());
  process.once('SIGTERM', () => resolve());
});
await app.stopManagedStream();
await glasses.close();
process.exit(0);
