/**
 * The operator dashboard in Chromium against the dev system (cloud + relay in-process): a stream published
 * with real FFmpeg appears with its relay and plays in the page's hls.js player, the relay's row counts it,
 * and the card goes when the stream ends. A wrong token gets the sign-in form, the right one the dashboard.
 * A screenshot is kept as test-artifacts/dashboard.png.
 */
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type Browser, chromium, type Page } from 'playwright-core';
import { type DevSystem, startDevSystem } from '../../src/cli/compose.ts';
import type { DashboardSnapshot } from '../../src/cloud/dashboard-routes.ts';
import { loadConfig } from '../../src/shared/config.ts';
import { silentLogger } from '../../src/shared/logger.ts';
import { CHROMIUM_ARGS, CHROMIUM_PATH } from '../helpers/browser.ts';
import { LOOPBACK_CLOUD_ENV, LOOPBACK_RELAY_ENV } from '../helpers/ports.ts';
import { startTool, type ToolRun } from '../helpers/process.ts';
import { publisherArgv } from '../helpers/publishers.ts';

const ARTIFACTS = path.resolve('test-artifacts');
const USER = 'dash@user.com';
const STREAM = 'cam1';
const RELAY = 'dash-relay';
const WAIT = { timeout: 60_000 };

/**
 * The few page globals these checks read (this project compiles for Node, without the DOM's types). Page
 * code goes in as functions: the dashboard's CSP forbids evaluating strings.
 */
interface InPage {
  document: { querySelector(selector: string): { currentTime?: number } | null };
  location: { hash: string };
  sessionStorage: { getItem(key: string): string | null };
}

describe('operator dashboard in Chromium', () => {
  let system: DevSystem;
  let browser: Browser;
  let publisher: ToolRun | undefined;

  before(async () => {
    const config = loadConfig(
      {
        ...LOOPBACK_RELAY_ENV,
        ...LOOPBACK_CLOUD_ENV,
        RELAY_PUBLIC_URL: '127.0.0.1',
        RELAY_ID: RELAY,
        HEARTBEAT_SECONDS: '0.5',
        RELAY_EXPIRY_SECONDS: '5',
        RECONNECT_WINDOW_SECONDS: '1',
        HLS_END_GRACE_SECONDS: '1',
      },
      { publishAuth: 'off' },
    );
    // CONTROL_API_TOKEN unset: the dev system generates it, as `rtmp-relay dev` does.
    system = await startDevSystem(config, silentLogger());
    browser = await chromium.launch({ executablePath: CHROMIUM_PATH, headless: true, args: CHROMIUM_ARGS });
  });

  after(async () => {
    publisher?.kill();
    await browser?.close();
    await system?.close();
  });

  const open = async (fragment: string): Promise<{ page: Page; errors: string[] }> => {
    const page = await (await browser.newContext()).newPage();
    const errors: string[] = [];
    page.on('pageerror', (err) => errors.push(err.message));
    await page.goto(`${system.cloud.dashboardUrl}${fragment}`, { waitUntil: 'load' });
    return { page, errors };
  };

  it('shows a published stream with its relay, plays it, counts it on the relay, and drops it when it ends', async () => {
    assert.ok(system.controlApiTokenGenerated);
    const { command, args } = publisherArgv('ffmpeg', {
      url: `rtmp://127.0.0.1:${system.relay.rtmpPort}/live/${USER}/${STREAM}`,
      seconds: 120,
      live: true,
    });
    publisher = startTool(command, args);

    const { page, errors } = await open(`#token=${encodeURIComponent(system.controlApiToken)}`);
    const card = `[data-stream="${USER}/${STREAM}"]`;
    await page.waitForSelector(`${card}[data-relay="${RELAY}"][data-state="publishing"]`, WAIT);
    // It plays: the card's own hls.js player gets past a second of media.
    await page.waitForFunction(
      (selector) =>
        ((globalThis as unknown as InPage).document.querySelector(selector)?.currentTime ?? 0) > 1,
      `${card} video`,
      WAIT,
    );
    await page.waitForSelector(`tr[data-relay="${RELAY}"][data-streams="1"][data-health="ok"]`, WAIT);

    const field = (name: string): Promise<string> =>
      page.locator(`${card} [data-field="${name}"]`).innerText();
    assert.equal(await field('relay'), RELAY);
    assert.equal(await field('state'), 'publishing');
    // MAX_STREAMS defaults to 20.
    assert.equal(await page.locator(`tr[data-relay="${RELAY}"] [data-field="load"]`).innerText(), '1 / 20');
    assert.equal(await page.locator('#connection').getAttribute('data-connection'), 'live');
    // The token left the address bar (and was never sent to a server in a URL); the session keeps it.
    assert.equal(await page.evaluate(() => (globalThis as unknown as InPage).location.hash), '');
    assert.equal(
      await page.evaluate(() =>
        (globalThis as unknown as InPage).sessionStorage.getItem('rtmp-relay.dashboard.token'),
      ),
      system.controlApiToken,
    );

    // What the card says agrees with the API (stats arrive once the relay measures them; until then "–").
    const api = await fetch(`${system.cloud.url}/api/dashboard`, {
      headers: { authorization: `Bearer ${system.controlApiToken}` },
    });
    const snapshot = (await api.json()) as DashboardSnapshot;
    const stream = snapshot.streams.find((s) => s.userId === USER && s.streamId === STREAM);
    assert.ok(stream, 'the API lists the stream');
    assert.match(
      String(stream.hlsUrl),
      /^http:\/\/127\.0\.0\.1:\d+\/hls\/dash-user\.com\/cam1\/index\.m3u8$/,
    );
    const stats = stream.stats;
    if (stats?.width && stats.height) {
      // testsrc2 at 540x960 (test/helpers/publishers.ts).
      assert.deepEqual([stats.width, stats.height], [540, 960]);
      assert.match(await field('video'), /540×960/);
    } else assert.equal(await field('video'), '–');
    if (stats?.fps !== undefined) assert.match(await field('fps'), /^\d+\.\d$/);
    else assert.equal(await field('fps'), '–');

    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: path.join(ARTIFACTS, 'dashboard.png'), fullPage: true });

    // The publisher stops: the stream ends on the relay, and its card (and player) leaves the page.
    publisher.kill();
    await page.waitForSelector(card, { ...WAIT, state: 'detached' });
    await page.waitForSelector(`tr[data-relay="${RELAY}"][data-streams="0"]`, WAIT);
    assert.equal(await page.locator('#no-streams').isVisible(), true);
    assert.deepEqual(errors, []);
    await page.context().close();
  });

  it('asks for the token when the one given is refused, and opens with the right one', async () => {
    const { page, errors } = await open('#token=wrong-token');
    await page.waitForSelector('#login:not([hidden])', WAIT);
    assert.match(await page.locator('#login-error').innerText(), /refused/);
    assert.equal(await page.locator('#main').isVisible(), false);
    await page.fill('#token-input', system.controlApiToken);
    await page.click('#login button[type="submit"]');
    await page.waitForSelector(`tr[data-relay="${RELAY}"]`, WAIT);
    assert.equal(await page.locator('#login').isVisible(), false);
    assert.deepEqual(errors, []);
    await page.context().close();
  });
});
