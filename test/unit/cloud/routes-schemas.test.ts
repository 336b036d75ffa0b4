/**
 * Every route of the cloud (relay API, managed streams, SSE, /watch, dashboard, WebSocket paths) walked from
 * the app's own route list: each declares zod schemas (params/body where it takes them, errors always), a
 * bad param, query or body answers 400 with the error envelope, cheap good requests answer their contract,
 * and every error answered in this file carries a registry code with the registry's status for it.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import Fastify from 'fastify';
import type { z } from 'zod';
import { type CloudRoute, cloudRoutes } from '../../../src/cloud/app.ts';
import { type CloudHandle, startCloud } from '../../../src/cloud/cloud.ts';
import {
  cloudErrorHandler,
  ErrorEnvelope,
  isZodSchema,
  OkResponse,
  useZodSchemas,
} from '../../../src/cloud/http-schemas.ts';
import { signUserToken } from '../../../src/cloud/user-tokens.ts';
import { ManagedStreamStatus } from '../../../src/contracts/mentra.ts';
import { loadConfig } from '../../../src/shared/config.ts';
import { ErrorCodes, httpStatusOf, isErrorCode } from '../../../src/shared/errors.ts';
import { silentLogger } from '../../../src/shared/logger.ts';

const SECRET = 'routes-schemas-user-and-publish-secret-0123456789';
const RELAY_SECRET = 'routes-schemas-relay-secret-0123456789';
const CONTROL = 'routes-schemas-control-token';

type Res = Awaited<ReturnType<CloudHandle['app']['inject']>>;

/** An error answer must be the envelope, with a registry code whose status is the one answered. */
function assertEnvelope(res: Res, what: string): z.infer<typeof ErrorEnvelope> {
  const parsed = ErrorEnvelope.strict().safeParse(res.json());
  assert.ok(parsed.success, `${what}: not the envelope: ${res.body.slice(0, 200)}`);
  assert.ok(isErrorCode(parsed.data.code), `${what}: ${parsed.data.code} is not in the registry`);
  assert.equal(res.statusCode, httpStatusOf(parsed.data.code), `${what}: status of ${parsed.data.code}`);
  return parsed.data;
}

describe('cloud route schemas', () => {
  let cloud: CloudHandle;
  let user: string;
  const relayAuth = { authorization: `Bearer ${RELAY_SECRET}` };
  const controlAuth = { authorization: `Bearer ${CONTROL}` };

  before(async () => {
    const config = loadConfig({
      CLOUD_HOST: '127.0.0.1',
      CLOUD_PORT: '0',
      HEARTBEAT_SECONDS: '1',
      CONTROL_API_TOKEN: CONTROL,
      PLAYBACK_AUTH: 'off', // /watch's open answers are checked here; with tokens: playback-watch.test.ts
    });
    cloud = await startCloud(config, silentLogger(), {
      relaySecret: RELAY_SECRET,
      publishTokenSecret: SECRET,
      userTokenSecret: SECRET,
      announceDashboard: false,
    });
    user = await signUserToken(SECRET, 'a@b.com');
  });

  after(async () => {
    await cloud?.close();
  });

  const routes = (): CloudRoute[] => cloudRoutes(cloud.app);
  /** Headers that get a request past a route's authentication, so its schema is what answers. */
  const authFor = (url: string): Record<string, string> =>
    url.startsWith('/api/relay') || url.startsWith('/api/rtmp-relay')
      ? relayAuth
      : url.startsWith('/api/dashboard')
        ? controlAuth
        : { authorization: `Bearer ${user}` };

  it('lists every route, each with zod schemas for what it takes and for its errors', () => {
    const list = routes();
    const names = list.map((r) => `${r.method} ${r.url}`);
    for (const expected of [
      'GET /health',
      'POST /api/relay/register',
      'POST /api/relay/heartbeat',
      'POST /api/relay/deregister',
      'POST /api/relay/stream-started',
      'POST /api/relay/stream-ended',
      'POST /api/relay/restream-status',
      'POST /api/rtmp-relay/hls-ready',
      'GET /api/relay/destinations/:userId/:streamId',
      'POST /api/managed-streams',
      'GET /api/managed-streams/:streamId',
      'DELETE /api/managed-streams/:streamId/viewers/:packageName',
      'GET /api/managed-streams/:streamId/events',
      'GET /watch/:streamId/index.m3u8',
      'GET /',
      'GET /dashboard',
      'GET /api/dashboard',
      'GET /api/dashboard/events',
      'GET /glasses-ws',
      'GET /app-ws',
    ])
      assert.ok(names.includes(expected), `${expected} missing from ${names.join(', ')}`);
    for (const r of list) {
      const what = `${r.method} ${r.url}`;
      const schema = r.schema as Record<string, unknown> | undefined;
      assert.ok(schema, `${what}: no schema`);
      for (const part of ['params', 'querystring', 'body', 'headers'])
        if (schema[part] !== undefined) assert.ok(isZodSchema(schema[part]), `${what}: ${part} not zod`);
      if (r.url.includes(':')) assert.ok(schema.params, `${what}: params without a schema`);
      if (r.method === 'POST') assert.ok(schema.body, `${what}: a body without a schema`);
      const response = schema.response as Record<string, unknown> | undefined;
      assert.ok(response?.['4xx'] && response['5xx'], `${what}: errors without a schema`);
      for (const [status, s] of Object.entries(response))
        assert.ok(isZodSchema(s), `${what}: ${status} not zod`);
    }
  });

  it('answers a bad param, query or body on every route that takes one with 400 and the envelope', async () => {
    let checked = 0;
    for (const r of routes()) {
      const schema = r.schema as Record<string, unknown>;
      const takes = schema.params || schema.body || schema.querystring;
      if (!takes) continue;
      // Every param malformed (a dot and a space fit no id), the query repeated (an array, never a string),
      // the body an object with none of the required fields.
      const url = `${r.url.replace(/:[A-Za-z]+/g, 'bad.id%20x')}${schema.querystring ? '?token=a&token=b' : ''}`;
      const res = await cloud.app.inject({
        method: r.method as 'GET',
        url,
        headers: authFor(r.url),
        ...(schema.body ? { payload: { unexpected: true } } : {}),
      });
      assert.equal(res.statusCode, 400, `${r.method} ${url}: ${res.body.slice(0, 200)}`);
      const body = assertEnvelope(res, `${r.method} ${url}`);
      assert.ok(body.issues && body.issues.length > 0, `${r.method} ${url}: no issues named`);
      checked++;
    }
    assert.ok(checked >= 12, `only ${checked} routes take input`);
  });

  it('refuses WebSocket upgrades on the raw socket with the registry status and the envelope', async () => {
    const upgrade = (url: string, headers: Record<string, string> = {}) =>
      new Promise<{ status: number; body: string }>((resolve, reject) => {
        const req = http.get(`http://127.0.0.1:${cloud.port}${url}`, {
          headers: { connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-version': '13', ...headers },
        });
        req.once('response', (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (d: string) => {
            body += d;
          });
          res.once('end', () => resolve({ status: res.statusCode ?? 0, body }));
        });
        req.once('upgrade', (_res, socket) => {
          socket.destroy();
          reject(new Error(`${url} upgraded`));
        });
        req.once('error', reject);
      });
    for (const [url, code] of [
      ['/glasses-ws?token=a&token=b', ErrorCodes.CLOUD_BAD_REQUEST],
      ['/app-ws', ErrorCodes.CLOUD_UNAUTHORIZED],
      ['/nowhere', ErrorCodes.CLOUD_NOT_FOUND],
    ] as const) {
      const res = await upgrade(url);
      assert.equal(res.status, httpStatusOf(code), url);
      assert.deepEqual(ErrorEnvelope.parse(JSON.parse(res.body)).code, code, url);
    }
  });

  it('answers good requests with their contract, and every refusal with its registry status', async () => {
    const post = (url: string, payload: object, headers = authFor(url)) =>
      cloud.app.inject({ method: 'POST', url, payload, headers });
    const register = {
      relayId: 'r1',
      rtmpUrl: 'rtmp://127.0.0.1:1935',
      hlsUrl: 'http://127.0.0.1:8888',
      maxStreams: 5,
    };
    const ok = await post('/api/relay/register', register);
    assert.equal(ok.statusCode, 200);
    assert.deepEqual(ok.json(), { ok: true });
    const hb = await post('/api/relay/heartbeat', { relayId: 'r1', streams: [], cpu: 0, draining: false });
    assert.deepEqual(hb.json(), { ok: true });
    const unknown = await post('/api/relay/heartbeat', {
      relayId: 'r9',
      streams: [],
      cpu: 0,
      draining: false,
    });
    assert.equal(assertEnvelope(unknown, 'unknown relay').code, ErrorCodes.RELAY_UNKNOWN);
    const noSecret = await post('/api/relay/register', register, {});
    assert.equal(assertEnvelope(noSecret, 'no secret').code, ErrorCodes.RELAY_UNAUTHORIZED);
    const dest = await cloud.app.inject({ url: '/api/relay/destinations/a@b.com/s1', headers: relayAuth });
    assert.deepEqual(dest.json(), { destinations: [] });

    // Managed streams: create, read (the contract's fields only), watch (not playable yet), stop.
    const created = await post('/api/managed-streams', { userId: 'a@b.com', packageName: 'com.example.app' });
    assert.equal(created.statusCode, 200, created.body);
    const status = ManagedStreamStatus.strict().parse(created.json());
    const id = status.streamId!;
    const read = await cloud.app.inject({ url: `/api/managed-streams/${id}`, headers: authFor('') });
    assert.equal(read.statusCode, 200);
    ManagedStreamStatus.strict().parse(read.json());
    const otherUser = await cloud.app.inject({
      url: `/api/managed-streams/${id}`,
      headers: { authorization: `Bearer ${await signUserToken(SECRET, 'c@d.com')}` },
    });
    assert.equal(assertEnvelope(otherUser, 'other user').code, ErrorCodes.MANAGED_STREAM_NOT_FOUND);
    const forged = await post('/api/managed-streams', { userId: 'a@b.com', packageName: 'p' }, {});
    assert.equal(assertEnvelope(forged, 'no token').code, ErrorCodes.CLOUD_UNAUTHORIZED);
    const watch = await cloud.app.inject({ url: `/watch/${id}/index.m3u8` });
    assert.equal(assertEnvelope(watch, 'watch').code, ErrorCodes.MANAGED_STREAM_NOT_PLAYABLE);
    assert.equal(watch.headers['access-control-allow-origin'], '*');
    const stop = await cloud.app.inject({
      method: 'DELETE',
      url: `/api/managed-streams/${id}/viewers/com.example.app`,
      headers: authFor(''),
    });
    assert.deepEqual(stop.json(), { ok: true });

    // Dashboard, health, WebSocket paths, unknown routes, fastify's own refusals.
    const snapshot = await cloud.app.inject({ url: '/api/dashboard', headers: controlAuth });
    assert.equal(snapshot.statusCode, 200);
    assert.deepEqual(Object.keys(snapshot.json()).sort(), ['generatedAt', 'relays', 'streams']);
    const noControl = await cloud.app.inject({ url: '/api/dashboard' });
    assert.equal(assertEnvelope(noControl, 'dashboard').code, ErrorCodes.DASHBOARD_UNAUTHORIZED);
    assert.deepEqual((await cloud.app.inject({ url: '/health' })).json(), { status: 'ok' });
    for (const path of ['/glasses-ws', '/app-ws']) {
      const plain = await cloud.app.inject({ url: path });
      assert.equal(assertEnvelope(plain, path).code, ErrorCodes.CLOUD_UPGRADE_REQUIRED);
    }
    const nowhere = await cloud.app.inject({ url: '/nowhere' });
    assert.equal(assertEnvelope(nowhere, 'unknown route').code, ErrorCodes.CLOUD_NOT_FOUND);
    const notJson = await cloud.app.inject({
      method: 'POST',
      url: '/api/managed-streams',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      payload: 'a=b',
    });
    assert.equal(assertEnvelope(notJson, 'form body').code, ErrorCodes.CLOUD_UNSUPPORTED_MEDIA_TYPE);
    const brokenJson = await cloud.app.inject({
      method: 'POST',
      url: '/api/relay/register',
      headers: { ...relayAuth, 'content-type': 'application/json' },
      payload: '{"relayId":',
    });
    assert.equal(assertEnvelope(brokenJson, 'broken JSON').code, ErrorCodes.RELAY_BAD_REQUEST);
    const badUrl = await cloud.app.inject({ url: '/api/managed-streams/%zz' });
    assertEnvelope(badUrl, 'malformed URL');
  });
});

describe('cloud statuses come from the registry', () => {
  it('no cloud source answers a status of its own (reply.code(N), a raw status line with a number)', () => {
    const dir = path.resolve('src/cloud');
    const found: string[] = [];
    for (const file of readdirSync(dir).filter((f) => f.endsWith('.ts'))) {
      const text = readFileSync(path.join(dir, file), 'utf8');
      for (const m of text.matchAll(/\.code\(\s*\d{3}|HTTP\/1\.1 \d{3}|statusCode:\s*\d{3}/g))
        found.push(`${file}: ${m[0]}`);
    }
    assert.deepEqual(found, []);
  });
});

describe('zod route schemas', () => {
  it('drop undeclared response fields, and answer a reply that breaks its schema with CLOUD_RESPONSE_INVALID', async () => {
    const app = Fastify();
    useZodSchemas(app);
    app.setErrorHandler(cloudErrorHandler(ErrorCodes.CLOUD_BAD_REQUEST));
    const schema = { response: { 200: OkResponse } };
    app.get('/leak', { schema }, async () => ({ ok: true, secret: 'never sent' }));
    app.get('/broken', { schema }, async () => ({ ok: 'yes' }));
    const leak = await app.inject({ url: '/leak' });
    assert.deepEqual(leak.json(), { ok: true });
    const broken = await app.inject({ url: '/broken' });
    assert.equal(assertEnvelope(broken, 'broken').code, ErrorCodes.CLOUD_RESPONSE_INVALID);
    assert.doesNotMatch(broken.body, /yes/, 'the broken value is not echoed');
    await app.close();
  });
});
