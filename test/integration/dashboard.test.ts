/**
 * The operator dashboard in Chromium against the dev system (cloud + relay in-process): a stream published
 * with real FFmpeg appears with its relay and plays in the page's hls.js player, the relay's row counts it,
 * and the card goes when the stream ends. A wrong token gets the sign-in form, the right one the dashboard.
 * The states told apart, on one page: a live stream, one whose publisher went (reconnecting), one whose
 * window closed (ended), and one that publishes but never makes HLS (red, with the reason), each with its
 * watch URL to copy. Screenshots are kept in test-artifacts/ (dashboard.png, dashboard-states.png).
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
import { AVC_CONFIG, AVC_FRAME, AVC_KEYFRAME, TestClient } from '../helpers/rtmp-test-client.ts';

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
  document: { querySelector(selector: string): { currentTime?: number } | null; body: unknown };
  location: { hash: string };
  sessionStorage: { getItem(key: string): string | null };
  navigator: { clipboard: { readText(): Promise<string> } };
  getComputedStyle(node: unknown): { borderTopColor: string; getPropertyValue(name: string): string };
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
    // The WebRTC player beside it (issue 17): started by a click, it plays the relay's WHEP URL.
    await page.click(`${card} [data-whep-toggle]`, WAIT);
    await page.waitForSelector(`${card} .whep[data-whep="playing"]`, WAIT);
    await page.waitForFunction(
      (selector) =>
        ((globalThis as unknown as InPage).document.querySelector(selector)?.currentTime ?? 0) > 0.5,
      `${card} .whep video`,
      WAIT,
    );
    assert.equal(system.relay.webrtc.whep.sessionCount, 1);

    const field = (name: string): Promise<string> =>
      page.locator(`${card} [data-field="${name}"]`).innerText();
    assert.equal(await field('relay'), RELAY);
    assert.equal(await field('state'), 'publishing');
    assert.match(
      String(await page.locator(`${card} [data-link="webrtc"] input`).inputValue()),
      /^http:\/\/127\.0\.0\.1:\d+\/whep\/dash-user\.com\/cam1$/,
    );
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

    // The publisher stops: the stream ends on the relay, and its card (and players) leave the page.
    publisher.kill();
    await page.waitForSelector(card, { ...WAIT, state: 'detached' });
    assert.equal(system.relay.webrtc.whep.sessionCount, 0, 'the WHEP session ended with the stream');
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

/** `#cf222e` → `rgb(207, 34, 46)`, as getComputedStyle writes colours. */
function hexToRgb(hex: string): string {
  const n = Number.parseInt(hex.replace('#', ''), 16);
  return `rgb(${(n >> 16) & 255}, ${(n >> 8) & 255}, ${n & 255})`;
}

describe('operator dashboard: the states of streams, in Chromium', () => {
  let system: DevSystem;
  let browser: Browser;
  const publishers: ToolRun[] = [];
  let broken: { client: TestClient; timer: NodeJS.Timeout } | undefined;

  before(async () => {
    const config = loadConfig(
      {
        ...LOOPBACK_RELAY_ENV,
        ...LOOPBACK_CLOUD_ENV,
        RELAY_PUBLIC_URL: '127.0.0.1',
        RELAY_ID: RELAY,
        HEARTBEAT_SECONDS: '0.5',
        RELAY_EXPIRY_SECONDS: '5',
        // Long enough to be seen on a loaded machine, short enough to reach "ended" within the test.
        RECONNECT_WINDOW_SECONDS: '8',
        HLS_END_GRACE_SECONDS: '120',
        FFMPEG_WATCHDOG_SECONDS: '3',
      },
      { publishAuth: 'off' },
    );
    system = await startDevSystem(config, silentLogger(), { dashboardOutputGraceMs: 4000 });
    browser = await chromium.launch({ executablePath: CHROMIUM_PATH, headless: true, args: CHROMIUM_ARGS });
  });

  after(async () => {
    for (const p of publishers) p.kill();
    if (broken) {
      clearInterval(broken.timer);
      broken.client.close();
    }
    await browser?.close();
    await system?.close();
  });

  const publish = (streamId: string): ToolRun => {
    const { command, args } = publisherArgv('ffmpeg', {
      url: `rtmp://127.0.0.1:${system.relay.rtmpPort}/live/${USER}/${streamId}`,
      seconds: 300,
      fps: 8,
      videoKbps: 300,
    });
    const run = startTool(command, args);
    publishers.push(run);
    return run;
  };

  /** A publisher whose video cannot be decoded: the transcode makes no HLS, ever. */
  const publishBroken = async (streamId: string): Promise<void> => {
    const client = await TestClient.open(system.relay.rtmpPort);
    await client.connectAndCreate(`live/${USER}`);
    const status = await client.publish(`${streamId}?profile=transcode`);
    assert.equal(status.code, 'NetStream.Publish.Start');
    client.video(0, AVC_CONFIG);
    let ts = 0;
    const timer = setInterval(() => {
      ts += 100;
      client.video(ts, ts % 2000 === 0 ? AVC_KEYFRAME : AVC_FRAME);
    }, 100);
    broken = { client, timer };
  };

  it('groups live, reconnecting and ended streams, shows a failing one red with its reason, with copyable links', async () => {
    const context = await browser.newContext({ permissions: ['clipboard-read', 'clipboard-write'] });
    const page = await context.newPage();
    const errors: string[] = [];
    page.on('pageerror', (err) => errors.push(err.message));
    await page.goto(`${system.cloud.dashboardUrl}#token=${encodeURIComponent(system.controlApiToken)}`, {
      waitUntil: 'load',
    });
    const card = (streamId: string): string => `[data-stream="${USER}/${streamId}"]`;

    publish('live1');
    const gone = publish('gone1');
    const leaving = publish('later1');
    await publishBroken('broken1');
    for (const id of ['live1', 'gone1', 'later1']) {
      await page.waitForSelector(
        `#streams-live ${card(id)}[data-state="publishing"][data-output="ok"]`,
        WAIT,
      );
    }
    // Publishes but makes no HLS: red, with the cloud's reason, not a green "publishing".
    await page.waitForSelector(`#streams-live ${card('broken1')}[data-output="failing"]`, WAIT);
    await page.waitForFunction(
      (selector) =>
        /^output failing: no HLS segment after \d+ s$/.test(
          String(
            (
              (globalThis as unknown as InPage).document.querySelector(selector) as unknown as {
                textContent: string;
              }
            )?.textContent,
          ),
        ),
      `${card('broken1')} [data-field="output"]`,
      WAIT,
    );

    // The first publisher goes: reconnecting, then (its window closed) ended, each in its own group.
    gone.kill();
    await page.waitForSelector(`#streams-reconnecting ${card('gone1')}[data-state="reconnecting"]`, WAIT);
    await page.waitForSelector(
      `#streams-ended ${card('gone1')}[data-state="ended"][data-output="ended"]`,
      WAIT,
    );
    leaving.kill();
    await page.waitForSelector(`#streams-reconnecting ${card('later1')}[data-state="reconnecting"]`, WAIT);
    assert.equal(await page.locator(`#streams-live ${card('live1')}[data-output="ok"]`).count(), 1);
    assert.equal(
      await page.locator('[data-group="reconnecting"] [data-count="reconnecting"]').innerText(),
      '(1)',
    );
    assert.equal(await page.locator('[data-group="ended"] [data-count="ended"]').innerText(), '(1)');
    assert.equal(await page.locator(`tr[data-relay="${RELAY}"] [data-field="health"]`).innerText(), 'ok');
    // What a person sees: the failing card framed red, the reconnecting one amber (the page's palette), and
    // one screenshot of each state kept beside the whole page's.
    const border = (id: string): Promise<string> =>
      page
        .locator(card(id))
        .evaluate((node) => (globalThis as unknown as InPage).getComputedStyle(node).borderTopColor);
    // Page code without inner named functions: tsx would wrap them in a helper the page does not have.
    const palette = await page.evaluate(() => {
      const g = globalThis as unknown as InPage;
      const style = g.getComputedStyle(g.document.body);
      return { bad: style.getPropertyValue('--bad').trim(), warn: style.getPropertyValue('--warn').trim() };
    });
    assert.equal(await border('broken1'), hexToRgb(palette.bad));
    assert.equal(await border('later1'), hexToRgb(palette.warn));
    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: path.join(ARTIFACTS, 'dashboard-states.png'), fullPage: true });
    for (const [state, id] of [
      ['live', 'live1'],
      ['failing', 'broken1'],
      ['reconnecting', 'later1'],
      ['ended', 'gone1'],
    ] as const) {
      const shot = await page
        .locator(card(id))
        .screenshot({ path: path.join(ARTIFACTS, `dashboard-${state}.png`) });
      assert.ok(shot.length > 1000, `${state}: a screenshot`);
    }

    // The watch URL is there to copy, and the copy button puts it on the clipboard.
    const watch = page.locator(`${card('live1')} [data-link="watch"]`);
    const url = await watch.locator('input').inputValue();
    assert.match(url, /^http:\/\/127\.0\.0\.1:\d+\/hls\/dash-user\.com\/live1\/index\.m3u8$/);
    assert.equal((await fetch(url)).status, 200, 'the link plays');
    await watch.locator('button[data-copy]').click();
    await page.waitForSelector(`${card('live1')} [data-link="watch"] button[data-copied="yes"]`, WAIT);
    assert.equal(
      await page.evaluate(() => (globalThis as unknown as InPage).navigator.clipboard.readText()),
      url,
    );
    // An ended stream offers no watch link to copy (its playlist is closed).
    assert.equal(await page.locator(`${card('gone1')} [data-link="watch"]`).count(), 0);
    assert.deepEqual(errors, []);
    await context.close();
  });
});
