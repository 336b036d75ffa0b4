/**
 * Hostile HTTP against the relay's origin and control API and the cloud's API (paths, queries, headers,
 * bodies; 10,000 cases by default, HTTP_FUZZ_CASES for more): no answer is a 5xx other than the documented
 * 503s, no file outside what the servers make is ever served, the HTTP parser survives byte-level garbage
 * on real sockets, and a normal request still works afterwards.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { type CloudHandle, startCloud } from '../../src/cloud/cloud.ts';
import { loadConfig } from '../../src/shared/config.ts';
import { GLASSES_854X480 } from '../fixtures/dirty.ts';
import { fixturePath } from '../fixtures/generate.ts';
import { publishFlv } from '../helpers/flv-publisher.ts';
import { fuzzRequest, rawRequest } from '../helpers/http-fuzz.ts';
import { captureLogs } from '../helpers/log-capture.ts';
import { LOOPBACK_CLOUD_ENV } from '../helpers/ports.ts';
import { type StreamRecord, startTestRelay } from '../helpers/relay-harness.ts';
import { prng } from '../helpers/rtmp-bytes.ts';

const CASES = Number(process.env.HTTP_FUZZ_CASES ?? 10_000);
const TOKEN = 'http-fuzz-control-token';

describe('HTTP fuzzing', () => {
  let relay: Awaited<ReturnType<typeof startTestRelay>>['relay'];
  let records: Map<string, StreamRecord>;
  let cloud: CloudHandle;
  const relayLogs = captureLogs('info');
  const cloudLogs = captureLogs('info');

  before(async () => {
    ({ relay, records } = await startTestRelay({ CONTROL_API_TOKEN: TOKEN }, relayLogs.log));
    // A real stream the fuzzer can reach: published whole, fast, then ended (its playlist has ENDLIST).
    const pub = publishFlv(await fixturePath('glasses-854x480.flv'), {
      port: relay.rtmpPort,
      user: 'fuzz@user.com',
      stream: 'fuzzstream',
      speed: Number.POSITIVE_INFINITY,
      toMs: 6000,
    });
    await pub.done;
    await records.get('fuzzstream')!.ended;
    assert.ok(GLASSES_854X480.width > 0);
    cloud = await startCloud(
      loadConfig({ ...LOOPBACK_CLOUD_ENV, CONTROL_API_TOKEN: TOKEN }, { publishAuth: 'token' }),
      cloudLogs.log,
      {
        relaySecret: 'http-fuzz-relay-secret-0123456789abcdef',
        publishTokenSecret: 'http-fuzz-publish-secret-0123456789abcdefghijk',
        userTokenSecret: 'http-fuzz-user-secret-0123456789abcdefghijklmn',
      },
    );
  });

  after(async () => {
    await cloud?.close();
    await relay?.close();
  });

  /** Runs `count` cases against one app; returns what answered 5xx (other than allowed 503s). */
  async function fuzz(
    app: FastifyInstance,
    seed: number,
    count: number,
    real: string[],
    allow503: RegExp,
  ): Promise<{ failures: string[]; statuses: Map<number, number> }> {
    const random = prng(seed);
    const failures: string[] = [];
    const statuses = new Map<number, number>();
    for (let i = 0; i < count; i++) {
      const r = fuzzRequest(random, real);
      const res = await app.inject({
        method: r.method as 'GET',
        url: r.url,
        headers: r.headers,
        ...(r.body !== undefined ? { payload: r.body } : {}),
      });
      statuses.set(res.statusCode, (statuses.get(res.statusCode) ?? 0) + 1);
      const bad = res.statusCode >= 500 && !(res.statusCode === 503 && allow503.test(r.url));
      if (bad && failures.length < 20)
        failures.push(`${r.method} ${r.url.slice(0, 200)} → ${res.statusCode}`);
      // Nothing from outside what the servers make: no file contents of this machine or the repository.
      assert.doesNotMatch(res.body, /root:x:0:0|"devDependencies"|BEGIN (RSA |EC )?PRIVATE KEY/, r.url);
    }
    return { failures, statuses };
  }

  it(`the origin, the control API and the cloud answer ${CASES} hostile requests without a 5xx`, async (t) => {
    const playlist = 'hls/fuzz-user.com/fuzzstream/index.m3u8';
    const text = relay.streams.streams[0]!.packager.playlist();
    const files = [...text.matchAll(/^([^#\s][^\s]*)$|URI="([^"]+)"/gm)].map((m) => m[1] ?? m[2]);
    const hlsReal = [
      playlist,
      'hls/fuzz-user.com/fuzzstream',
      'hls',
      ...files.map((f) => `hls/fuzz-user.com/fuzzstream/${f}`),
    ];
    const origin = await fuzz(relay.origin, 1, Math.round(CASES * 0.45), hlsReal, /^\/ready/);
    const api = await fuzz(
      relay.api,
      2,
      Math.round(CASES * 0.1),
      ['api/streams', 'api/relay', 'api/streams/fuzz@user.com/fuzzstream/kick', 'health', 'ready'],
      /^\/ready/,
    );
    const cloudReal = [
      'api/relay/register',
      'api/relay/heartbeat',
      'api/relay/deregister',
      'api/relay/stream-started',
      'api/relay/stream-ended',
      'api/relay/destinations/fuzz@user.com/fuzzstream',
      'api/rtmp-relay/hls-ready',
      'api/managed-streams',
      'api/managed-streams/abc',
      'api/managed-streams/abc/viewers/com.example.app',
      'api/dashboard',
      'api/dashboard/events',
      'watch/abc/index.m3u8',
      'dashboard',
      'dashboard/app.js',
      'health',
    ];
    const cloudRun = await fuzz(cloud.app, 3, Math.round(CASES * 0.45), cloudReal, /^\/api\/dashboard/);
    const summary = (m: Map<number, number>): string =>
      [...m]
        .sort((a, b) => a[0] - b[0])
        .map(([s, n]) => `${s}:${n}`)
        .join(' ');
    t.diagnostic(
      `origin ${summary(origin.statuses)} | control API ${summary(api.statuses)} | cloud ${summary(cloudRun.statuses)}`,
    );
    assert.deepEqual(origin.failures, [], `origin: ${summary(origin.statuses)}`);
    assert.deepEqual(api.failures, [], `control API: ${summary(api.statuses)}`);
    assert.deepEqual(cloudRun.failures, [], `cloud: ${summary(cloudRun.statuses)}`);
    // The fuzzer reached past the routers: real playlists and segments were served to some cases.
    assert.ok((origin.statuses.get(200) ?? 0) > 0, summary(origin.statuses));
    assert.ok((cloudRun.statuses.get(401) ?? 0) > 0, summary(cloudRun.statuses));
    assert.doesNotMatch(relayLogs.text(), /"level":50/, 'the relay logged no error');
    assert.doesNotMatch(cloudLogs.text(), /"level":50/, 'the cloud logged no error');
  });

  it('byte-level garbage on real sockets: every connection answered or closed, servers still serve', async () => {
    const random = prng(4);
    const ports = [relay.hlsPort, cloud.port];
    const hung: string[] = [];
    const count = Math.max(200, Math.round(CASES / 20));
    for (let i = 0; i < count; i += 20) {
      // 20 at a time: enough concurrency to matter, few enough for a small machine.
      await Promise.all(
        Array.from({ length: Math.min(20, count - i) }, async (_, j) => {
          const bytes = rawRequest(random);
          const port = ports[(i + j) % ports.length]!;
          const socket = net.connect(port, '127.0.0.1');
          socket.on('error', () => {});
          socket.on('data', () => {});
          const closed = new Promise<boolean>((resolve) => {
            const timer = setTimeout(() => resolve(false), 15_000);
            socket.once('close', () => {
              clearTimeout(timer);
              resolve(true);
            });
          });
          socket.end(bytes);
          if (!(await closed)) {
            hung.push(JSON.stringify(bytes.subarray(0, 60).toString('latin1')));
            socket.destroy();
          }
        }),
      );
    }
    assert.deepEqual(hung, [], 'every connection was answered and closed');
    const playlist = await fetch(`http://127.0.0.1:${relay.hlsPort}/hls/fuzz-user.com/fuzzstream/index.m3u8`);
    assert.equal(playlist.status, 200);
    assert.match(await playlist.text(), /#EXT-X-ENDLIST/);
    assert.equal((await fetch(`${cloud.url}/health`)).status, 200);
  });
});
