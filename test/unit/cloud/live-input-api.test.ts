/**
 * The Live Input API through inject() on a real cloud (memory store) with one registered relay: Cloudflare's
 * documented request examples, sent unchanged but for the base URL, account id and token, get answers of
 * the documented shapes; auth (401), another account (404), malformed bodies (400) answer Cloudflare's
 * envelope; the ingest URLs are the relay's (publish URL split into url + streamKey, SRT with stream id and
 * passphrase), the same at every GET, and another relay's once the first is gone or drains; heartbeats give
 * status and stats; outputs become the relay's destinations (masked keys), their reports come back; a
 * deleted input's stream is ended at its relay's next heartbeat. The API is off (404) without its env.
 */
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import http from 'node:http';
import { after, before, describe, it } from 'node:test';
import { cloudRoutes } from '../../../src/cloud/app.ts';
import { type CloudHandle, startCloud } from '../../../src/cloud/cloud.ts';
import { isZodSchema } from '../../../src/cloud/http-schemas.ts';
import { LiveInput, LiveInputList, Output } from '../../../src/cloud/live-inputs/schemas.ts';
import { createPublishTokenVerifier } from '../../../src/cloud/tokens.ts';
import { loadConfig } from '../../../src/shared/config.ts';
import { silentLogger } from '../../../src/shared/logger.ts';
import { fuzzRequest } from '../../helpers/http-fuzz.ts';
import { prng } from '../../helpers/rtmp-bytes.ts';

const SECRET = 'live-input-api-publish-secret-0123456789abcdef';
const RELAY_SECRET = 'live-input-api-relay-secret-0123456789';
const TOKEN = 'cf-api-token-0123456789abcdef';
const ACCOUNT = '023e105f4ecef8ad9ca31a8372d0c353';
const SRT_SECRET = 'live-input-srt-passphrase-secret';

type Res = Awaited<ReturnType<CloudHandle['app']['inject']>>;

/** Cloudflare's envelope, exactly its four keys. */
function envelopeOf(res: Res): { result: unknown; success: boolean; errors: unknown[]; messages: unknown[] } {
  const body = res.json();
  assert.deepEqual(Object.keys(body).sort(), ['errors', 'messages', 'result', 'success'], res.body);
  return body;
}

function failure(res: Res, status: number, code: number): void {
  assert.equal(res.statusCode, status, res.body);
  const body = envelopeOf(res);
  assert.equal(body.success, false);
  assert.equal(body.result, null);
  const first = body.errors[0] as { code: number; message: string };
  assert.equal(first.code, code, res.body);
  assert.equal(typeof first.message, 'string');
}

describe('Live Input API (Cloudflare-compatible)', () => {
  let cloud: CloudHandle;
  const auth = { authorization: `Bearer ${TOKEN}` };
  const base = `/client/v4/accounts/${ACCOUNT}/stream/live_inputs`;
  const relay = (id: string) => ({
    relayId: id,
    rtmpUrl: `rtmp://${id}.example:1935`,
    srtUrl: `srt://${id}.example:8890`,
    hlsUrl: `http://${id}.example:8888`,
    maxStreams: 10,
  });
  const relayCall = (path: string, payload: unknown) =>
    cloud.app.inject({
      method: 'POST',
      url: path,
      headers: { authorization: `Bearer ${RELAY_SECRET}` },
      payload: payload as Record<string, unknown>,
    });

  before(async () => {
    const config = loadConfig({
      CLOUD_HOST: '127.0.0.1',
      CLOUD_PORT: '0',
      HEARTBEAT_SECONDS: '1',
      RELAY_EXPIRY_SECONDS: '30',
      CLOUD_API_TOKEN: TOKEN,
      CLOUD_ACCOUNT_ID: ACCOUNT,
      SRT_PASSPHRASE_SECRET: SRT_SECRET,
    });
    cloud = await startCloud(config, silentLogger(), {
      relaySecret: RELAY_SECRET,
      publishTokenSecret: SECRET,
      userTokenSecret: SECRET,
      announceDashboard: false,
    });
    assert.equal((await relayCall('/api/relay/register', relay('relay-a'))).statusCode, 200);
  });

  after(async () => {
    await cloud?.close();
  });

  it('registers every route with zod schemas, at the root and under /client/v4', () => {
    const names = cloudRoutes(cloud.app).map((r) => `${r.method} ${r.url}`);
    for (const prefix of ['', '/client/v4'])
      for (const route of [
        'POST /accounts/:account_id/stream/live_inputs',
        'GET /accounts/:account_id/stream/live_inputs',
        'GET /accounts/:account_id/stream/live_inputs/:uid',
        'PUT /accounts/:account_id/stream/live_inputs/:uid',
        'DELETE /accounts/:account_id/stream/live_inputs/:uid',
        'POST /accounts/:account_id/stream/live_inputs/:uid/outputs',
        'GET /accounts/:account_id/stream/live_inputs/:uid/outputs',
        'PUT /accounts/:account_id/stream/live_inputs/:uid/outputs/:output_uid',
        'DELETE /accounts/:account_id/stream/live_inputs/:uid/outputs/:output_uid',
      ]) {
        const [method, path] = route.split(' ');
        const name = `${method} ${prefix}${path}`;
        assert.ok(names.includes(name), `${name} missing`);
      }
    for (const r of cloudRoutes(cloud.app).filter((x) => x.url.includes('/live_inputs'))) {
      const schema = r.schema as Record<string, unknown>;
      assert.ok(isZodSchema(schema.params), `${r.method} ${r.url}: params`);
      const response = schema.response as Record<string, unknown>;
      assert.ok(isZodSchema(response['200']) && isZodSchema(response['4xx']), `${r.method} ${r.url}`);
    }
  });

  it("answers Cloudflare's documented examples with the documented shapes", async () => {
    // "Create a live input" (API reference), body as documented.
    const created = await cloud.app.inject({
      method: 'POST',
      url: base,
      headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${TOKEN}` },
      payload: `{
          "defaultCreator": "defaultCreator",
          "deleteRecordingAfterDays": 45,
          "enabled": true,
          "meta": {
            "name": "test stream 1"
          },
          "recording": {
            "allowedOrigins": [
              "example.com"
            ],
            "hideLiveViewerCount": false,
            "mode": "off",
            "requireSignedURLs": false,
            "timeoutSeconds": 0
          }
        }`,
    });
    assert.equal(created.statusCode, 200, created.body);
    const env = envelopeOf(created);
    assert.equal(env.success, true);
    assert.deepEqual(env.errors, []);
    assert.deepEqual(env.messages, []);
    const input = LiveInput.parse(env.result);
    assert.match(input.uid, /^[0-9a-f]{32}$/);
    assert.deepEqual(input.meta, { name: 'test stream 1' });
    assert.equal(input.deleteRecordingAfterDays, 45);
    assert.equal(input.defaultCreator, 'defaultCreator');
    assert.equal(input.enabled, true);
    assert.deepEqual(input.recording, {
      allowedOrigins: ['example.com'],
      hideLiveViewerCount: false,
      mode: 'off',
      requireSignedURLs: false,
      timeoutSeconds: 0,
    });
    assert.equal(input.status, null);
    assert.ok(!Number.isNaN(Date.parse(input.created)) && !Number.isNaN(Date.parse(input.modified)));
    // The relay's URLs: url + streamKey is the publish URL (the default user is the account id).
    assert.equal(input.rtmps?.url, `rtmp://relay-a.example:1935/live/${ACCOUNT}/`);
    assert.match(input.rtmps?.streamKey ?? '', new RegExp(`^${input.uid}\\?token=[\\w.-]+$`));
    const token = (input.rtmps?.streamKey ?? '').split('?token=')[1] ?? '';
    const verify = createPublishTokenVerifier({ secret: SECRET, relayId: 'relay-a' });
    const decision = await verify({
      userId: ACCOUNT,
      streamId: input.uid,
      token,
    });
    assert.equal(decision.allow, true, JSON.stringify(decision));
    assert.equal(input.srt?.url, 'srt://relay-a.example:8890');
    assert.match(input.srt?.streamId ?? '', new RegExp(`^publish:live/${ACCOUNT}/${input.uid}\\?token=`));
    assert.equal(input.srt?.passphrase.length, 32);
    assert.equal(input.hls?.url, `http://relay-a.example:8888/hls/${ACCOUNT}/${input.uid}/index.m3u8`);
    assert.equal(input.webRTC, undefined, 'no WHIP base announced: no webRTC');

    // "Start a live stream" guide: `curl -X POST --data '…'` (a form content type, a JSON body).
    const guide = await cloud.app.inject({
      method: 'POST',
      url: base,
      headers: { Authorization: `Bearer ${TOKEN}`, 'content-type': 'application/x-www-form-urlencoded' },
      payload:
        '{"meta": {"name":"test stream 1"},"recording": { "mode": "automatic", "timeoutSeconds": 10 }}',
    });
    assert.equal(guide.statusCode, 200, guide.body);
    const second = LiveInput.parse(envelopeOf(guide).result);
    assert.equal(second.recording.mode, 'automatic');
    assert.equal(second.recording.timeoutSeconds, 10);

    // "List live inputs".
    const listed = await cloud.app.inject({ method: 'GET', url: base, headers: auth });
    const list = LiveInputList.parse(envelopeOf(listed).result);
    assert.deepEqual(
      list.liveInputs.map((x) => x.uid),
      [input.uid, second.uid],
    );
    assert.equal(list.total, 2);

    // "Retrieve a live input": the same credentials at every GET.
    const got = await cloud.app.inject({ method: 'GET', url: `${base}/${input.uid}`, headers: auth });
    const again = LiveInput.parse(envelopeOf(got).result);
    assert.deepEqual(again.rtmps, input.rtmps);
    assert.deepEqual(again.srt, input.srt);

    // "Update a live input", body as documented.
    const updated = await cloud.app.inject({
      method: 'PUT',
      url: `${base}/${input.uid}`,
      headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${TOKEN}` },
      payload:
        '{"deleteRecordingAfterDays":45,"enabled":true,"meta":{"name":"test stream 1"},"recording":{"hideLiveViewerCount":false,"mode":"off","requireSignedURLs":false,"timeoutSeconds":0}}',
    });
    assert.equal(updated.statusCode, 200, updated.body);
    assert.equal(LiveInput.parse(envelopeOf(updated).result).uid, input.uid);

    // "Create an output", "List outputs", "Update an output", "Delete an output".
    const out = await cloud.app.inject({
      method: 'POST',
      url: `${base}/${input.uid}/outputs`,
      headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${TOKEN}` },
      payload:
        '{"enabled":true,"streamKey":"uzya-f19y-g2g9-a2ee-51j2","url":"rtmp://a.rtmp.youtube.com/live2"}',
    });
    assert.equal(out.statusCode, 200, out.body);
    const output = Output.parse(envelopeOf(out).result);
    assert.match(output.uid, /^[0-9a-f]{32}$/);
    assert.equal(output.url, 'rtmp://a.rtmp.youtube.com/live2');
    assert.equal(output.enabled, true);
    assert.equal(output.streamKey, '****51j2', 'the key is masked');
    assert.ok(!out.body.includes('uzya-f19y'));
    const outs = await cloud.app.inject({
      method: 'GET',
      url: `${base}/${input.uid}/outputs`,
      headers: auth,
    });
    assert.deepEqual(
      (envelopeOf(outs).result as unknown[]).map((o) => Output.parse(o).uid),
      [output.uid],
    );
    const disabled = await cloud.app.inject({
      method: 'PUT',
      url: `${base}/${input.uid}/outputs/${output.uid}`,
      headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${TOKEN}` },
      payload: '{"enabled": false}',
    });
    assert.equal(Output.parse(envelopeOf(disabled).result).enabled, false);
    const delOut = await cloud.app.inject({
      method: 'DELETE',
      url: `${base}/${input.uid}/outputs/${output.uid}`,
      headers: auth,
    });
    assert.equal(delOut.statusCode, 200, delOut.body);
    assert.equal(envelopeOf(delOut).success, true);

    // "Delete a live input" (the root base works as well as /client/v4).
    for (const uid of [input.uid, second.uid]) {
      const del = await cloud.app.inject({
        method: 'DELETE',
        url: `/accounts/${ACCOUNT}/stream/live_inputs/${uid}`,
        headers: { Authorization: `Bearer ${TOKEN}` },
      });
      assert.equal(del.statusCode, 200, del.body);
      assert.equal(envelopeOf(del).success, true);
    }
    const gone = await cloud.app.inject({ method: 'GET', url: `${base}/${input.uid}`, headers: auth });
    failure(gone, 404, 10003);
  });

  it('refuses a wrong token (401), another account (404) and malformed bodies (400) in the envelope', async () => {
    failure(await cloud.app.inject({ method: 'GET', url: base }), 401, 10000);
    failure(
      await cloud.app.inject({ method: 'GET', url: base, headers: { authorization: 'Bearer nope' } }),
      401,
      10000,
    );
    failure(
      await cloud.app.inject({
        method: 'GET',
        url: '/client/v4/accounts/ffffffffffffffffffffffffffffffff/stream/live_inputs',
        headers: auth,
      }),
      404,
      7003,
    );
    const post = (payload: string) =>
      cloud.app.inject({
        method: 'POST',
        url: base,
        headers: { ...auth, 'content-type': 'application/json' },
        payload,
      });
    failure(await post('{"meta": '), 400, 10005);
    const bad = await post('{"recording":{"mode":"sometimes"},"deleteRecordingAfterDays":3}');
    failure(bad, 400, 10005);
    const pointers = (envelopeOf(bad).errors as { source?: { pointer: string } }[]).map(
      (e) => e.source?.pointer,
    );
    assert.ok(
      pointers.includes('/recording/mode') && pointers.includes('/deleteRecordingAfterDays'),
      bad.body,
    );
    failure(await post('{"meta":{"userId":"../etc"}}'), 400, 10005);
    failure(await post('[1,2]'), 400, 10005);
    failure(await cloud.app.inject({ method: 'GET', url: `${base}/not-a-uid`, headers: auth }), 404, 10003);
    const created = LiveInput.parse(envelopeOf(await post('{}')).result);
    const outputs = `${base}/${created.uid}/outputs`;
    const addOut = (payload: string) =>
      cloud.app.inject({ method: 'POST', url: outputs, headers: auth, payload });
    failure(await addOut('{"url":"http://example.com/x","streamKey":"k"}'), 400, 10005);
    failure(await addOut('{"url":"rtmp://example.com/x"}'), 400, 10005);
    failure(
      await cloud.app.inject({
        method: 'PUT',
        url: `${outputs}/0123456789abcdef0123456789abcdef`,
        headers: auth,
        payload: '{"enabled":true}',
      }),
      404,
      10003,
    );
    await cloud.app.inject({ method: 'DELETE', url: `${base}/${created.uid}`, headers: auth });
  });

  it('follows the relay: status and stats from heartbeats, outputs as destinations, a new relay when it drains', async () => {
    const created = await cloud.app.inject({
      method: 'POST',
      url: base,
      headers: auth,
      payload: { meta: { userId: 'wearer@example.com', name: 'glasses' } },
    });
    const input = LiveInput.parse(envelopeOf(created).result);
    assert.equal(input.rtmps?.url, 'rtmp://relay-a.example:1935/live/wearer@example.com/');
    const get = async () =>
      LiveInput.parse(
        envelopeOf(await cloud.app.inject({ method: 'GET', url: `${base}/${input.uid}`, headers: auth }))
          .result,
      );
    const beat = (relayId: string, state: string, draining = false) =>
      relayCall('/api/relay/heartbeat', {
        relayId,
        cpu: 0.1,
        draining,
        streams: [
          {
            userId: 'wearer@example.com',
            streamId: input.uid,
            state,
            stats: {
              videoCodec: 'avc1.64001f',
              audioCodec: 'mp4a.40.2',
              width: 540,
              height: 960,
              fps: 15,
              protocol: 'rtmp',
            },
          },
        ],
      });
    assert.equal((await beat('relay-a', 'publishing')).statusCode, 200);
    await waitFor(async () => (await get()).status === 'connected');
    const live = await get();
    assert.equal(live.connection?.state, 'connected');
    assert.equal(live.connection?.videoCodec, 'avc1.64001f');
    assert.equal(live.connection?.width, 540);
    assert.equal(live.connection?.fps, 15);
    assert.equal(live.connection?.protocol, 'rtmp');
    // DASH and WHEP once the relay announces them with hls-ready (relays send dashUrl '' until DASH lands).
    const path = `wearer-example.com/${input.uid}`;
    const ready = await relayCall('/api/rtmp-relay/hls-ready', {
      relayId: 'relay-a',
      userId: 'wearer@example.com',
      streamId: input.uid,
      hlsUrl: `http://relay-a.example:8888/hls/${path}/index.m3u8`,
      dashUrl: `http://relay-a.example:8888/dash/${path}/index.mpd`,
      webrtcUrl: `http://relay-a.example:8888/whep/${path}`,
    });
    assert.equal(ready.statusCode, 200, ready.body);
    await waitFor(async () => (await get()).dash !== undefined);
    const played = await get();
    assert.equal(played.dash?.url, `http://relay-a.example:8888/dash/${path}/index.mpd`);
    assert.equal(played.webRTCPlayback?.url, `http://relay-a.example:8888/whep/${path}`);

    // An output is a destination of that stream, its key joined to its URL, named by its uid.
    const out = Output.parse(
      envelopeOf(
        await cloud.app.inject({
          method: 'POST',
          url: `${base}/${input.uid}/outputs`,
          headers: auth,
          payload: { url: 'rtmp://dest.example/app', streamKey: 'secret-key-123456' },
        }),
      ).result,
    );
    const dest = await cloud.app.inject({
      method: 'GET',
      url: `/api/relay/destinations/${encodeURIComponent('wearer@example.com')}/${input.uid}`,
      headers: { authorization: `Bearer ${RELAY_SECRET}` },
    });
    assert.deepEqual(dest.json(), {
      destinations: [{ url: 'rtmp://dest.example/app/secret-key-123456', name: out.uid }],
    });
    await relayCall('/api/relay/restream-status', {
      relayId: 'relay-a',
      userId: 'wearer@example.com',
      streamId: input.uid,
      outputs: [{ url: 'rtmp://dest.example/app/***', name: out.uid, status: 'active' }],
    });
    await waitFor(async () => {
      const res = await cloud.app.inject({
        method: 'GET',
        url: `${base}/${input.uid}/outputs`,
        headers: auth,
      });
      return (envelopeOf(res).result as Output[])[0]?.status?.state === 'active';
    });

    // A second relay; the first drains with the publish on it: the publish keeps it. Once the stream
    // ended there, GET names the new relay.
    await relayCall('/api/relay/register', relay('relay-b'));
    await beat('relay-a', 'publishing', true);
    assert.equal((await get()).rtmps?.url.startsWith('rtmp://relay-a.example'), true);
    await relayCall('/api/relay/stream-ended', {
      relayId: 'relay-a',
      userId: 'wearer@example.com',
      streamId: input.uid,
    });
    await waitFor(async () => (await get()).status === 'client_disconnect');
    const moved = await get();
    assert.equal(moved.rtmps?.url, 'rtmp://relay-b.example:1935/live/wearer@example.com/');
    assert.notEqual(moved.rtmps?.streamKey, input.rtmps?.streamKey, 'a token for the new relay');
    assert.equal(moved.connection?.state, 'disconnected');
    assert.equal(moved.connection?.videoCodec, undefined);

    // Disabled: the relay is told to end the stream. Deleted: the same, once, at its next heartbeat.
    const putEnabled = (enabled: boolean) =>
      cloud.app.inject({ method: 'PUT', url: `${base}/${input.uid}`, headers: auth, payload: { enabled } });
    await putEnabled(false);
    const ended = await beat('relay-b', 'publishing');
    assert.deepEqual(ended.json().end, [{ userId: 'wearer@example.com', streamId: input.uid }]);
    await putEnabled(true);
    assert.equal((await beat('relay-b', 'publishing')).json().end, undefined);
    await waitFor(async () => (await get()).status === 'connected');
    await cloud.app.inject({ method: 'DELETE', url: `${base}/${input.uid}`, headers: auth });
    assert.deepEqual((await beat('relay-b', 'publishing')).json().end, [
      { userId: 'wearer@example.com', streamId: input.uid },
    ]);
    const dest2 = await cloud.app.inject({
      method: 'GET',
      url: `/api/relay/destinations/${encodeURIComponent('wearer@example.com')}/${input.uid}`,
      headers: { authorization: `Bearer ${RELAY_SECRET}` },
    });
    assert.deepEqual(dest2.json(), { destinations: [] });
  });

  it('fits the SRT stream id of a long user id with the compact token (libsrt takes 512 bytes)', async () => {
    const userId = `${'long.user+name'.repeat(8)}@example.com`.slice(0, 128);
    const input = LiveInput.parse(
      envelopeOf(
        await cloud.app.inject({ method: 'POST', url: base, headers: auth, payload: { meta: { userId } } }),
      ).result,
    );
    const id = input.srt?.streamId ?? '';
    assert.match(id, /\?token=c1\./, id);
    assert.ok(Buffer.byteLength(id) <= 512, `${Buffer.byteLength(id)} bytes`);
    assert.match(input.rtmps?.streamKey ?? '', /\?token=ey/, 'RTMP keeps the JWT');
    await cloud.app.inject({ method: 'DELETE', url: `${base}/${input.uid}`, headers: auth });
  });

  it("answers another relay's URLs once the input's relay is gone", async () => {
    await relayCall('/api/relay/register', relay('relay-c'));
    await relayCall('/api/relay/register', relay('relay-d'));
    const input = LiveInput.parse(
      envelopeOf(await cloud.app.inject({ method: 'POST', url: base, headers: auth, payload: {} })).result,
    );
    const first = /^rtmp:\/\/(relay-[a-d])\./.exec(input.rtmps?.url ?? '')?.[1];
    assert.ok(first, input.rtmps?.url);
    await relayCall('/api/relay/deregister', { relayId: first });
    const got = LiveInput.parse(
      envelopeOf(await cloud.app.inject({ method: 'GET', url: `${base}/${input.uid}`, headers: auth }))
        .result,
    );
    const now = /^rtmp:\/\/(relay-[a-d])\./.exec(got.rtmps?.url ?? '')?.[1];
    assert.ok(now && now !== first, `${first} → ${now}`);
    assert.equal(got.hls?.url.startsWith(`http://${now}.example:8888/hls/`), true);
    await cloud.app.inject({ method: 'DELETE', url: `${base}/${input.uid}`, headers: auth });
  });

  it('posts live_input.connected and .disconnected, signed, to the webhook the account set', async () => {
    const got: { body: string; signature: string }[] = [];
    let arrived: () => void = () => {};
    const server = http.createServer((req, res) => {
      let body = '';
      req.setEncoding('utf8').on('data', (d: string) => {
        body += d;
      });
      req.on('end', () => {
        got.push({ body, signature: String(req.headers['webhook-signature'] ?? '') });
        res.end('ok');
        arrived();
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const next = (n: number) =>
      new Promise<void>((resolve) => {
        arrived = () => got.length >= n && resolve();
        if (got.length >= n) resolve();
      });
    try {
      const hook = `${base.replace('/live_inputs', '/webhook')}`;
      failure(await cloud.app.inject({ method: 'GET', url: hook, headers: auth }), 404, 10003);
      const port = (server.address() as { port: number }).port;
      const set = await cloud.app.inject({
        method: 'PUT',
        url: hook,
        headers: { Authorization: `Bearer ${TOKEN}` },
        payload: `{"notificationUrl":"http://127.0.0.1:${port}/hook"}`,
      });
      assert.equal(set.statusCode, 200, set.body);
      const config = envelopeOf(set).result as { notificationUrl: string; secret: string; modified: string };
      assert.equal(config.notificationUrl, `http://127.0.0.1:${port}/hook`);
      assert.match(config.secret, /^[0-9a-f]{32}$/);
      const read = envelopeOf(await cloud.app.inject({ method: 'GET', url: hook, headers: auth }));
      assert.equal((read.result as { secret: string }).secret, config.secret);

      const input = LiveInput.parse(
        envelopeOf(await cloud.app.inject({ method: 'POST', url: base, headers: auth, payload: {} })).result,
      );
      const stream = { userId: ACCOUNT, streamId: input.uid };
      const relayId = /^rtmp:\/\/(relay-[a-d])\./.exec(input.rtmps?.url ?? '')?.[1] ?? '';
      await relayCall('/api/relay/heartbeat', {
        relayId,
        cpu: 0,
        draining: false,
        streams: [{ ...stream, state: 'publishing' }],
      });
      await next(1);
      await relayCall('/api/relay/heartbeat', {
        relayId,
        cpu: 0,
        draining: false,
        streams: [{ ...stream, state: 'publishing' }],
      });
      await relayCall('/api/relay/stream-ended', { relayId, ...stream });
      await next(2);
      assert.equal(got.length, 2, 'one event per change, none for a repeated heartbeat');
      const events = got.map((g) => JSON.parse(g.body));
      assert.deepEqual(
        events.map((e) => [e.data.event_type, e.data.input_id, e.data.notification_name]),
        [
          ['live_input.connected', input.uid, 'Stream Live Input'],
          ['live_input.disconnected', input.uid, 'Stream Live Input'],
        ],
      );
      assert.equal(typeof events[0].ts, 'number');
      assert.match(events[0].text, /Event type: live_input\.connected/);
      for (const g of got) {
        const m = /^time=(\d+),sig1=([0-9a-f]{64})$/.exec(g.signature);
        assert.ok(m, g.signature);
        const expected = createHmac('sha256', config.secret).update(`${m[1]}.${g.body}`).digest('hex');
        assert.equal(m[2], expected, 'HMAC-SHA256 of "time.body" under the secret');
      }
      const del = await cloud.app.inject({ method: 'DELETE', url: hook, headers: auth });
      assert.equal(del.statusCode, 200, del.body);
      failure(await cloud.app.inject({ method: 'GET', url: hook, headers: auth }), 404, 10003);
      await cloud.app.inject({ method: 'DELETE', url: `${base}/${input.uid}`, headers: auth });
    } finally {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    }
  });

  it('answers 2,000 fuzzed requests on its paths with the envelope and never a 5xx', async () => {
    const input = LiveInput.parse(
      envelopeOf(await cloud.app.inject({ method: 'POST', url: base, headers: auth, payload: {} })).result,
    );
    const real = [
      base,
      `${base}/${input.uid}`,
      `${base}/${input.uid}/outputs`,
      `${base}/${input.uid}/outputs/${'0'.repeat(32)}`,
      base.replace('/live_inputs', '/webhook'),
    ];
    const random = prng(22);
    for (let i = 0; i < 2000; i++) {
      const r = fuzzRequest(random, real);
      if (random() < 0.5) r.headers.authorization = `Bearer ${TOKEN}`;
      const res = await cloud.app.inject({
        method: r.method as 'GET',
        url: r.url,
        headers: r.headers,
        ...(r.body !== undefined ? { payload: r.body } : {}),
      });
      const what = `${r.method} ${r.url.slice(0, 120)}: ${res.statusCode} ${res.body.slice(0, 200)}`;
      assert.ok(res.statusCode < 500, what);
      if (
        r.method !== 'HEAD' &&
        res.statusCode >= 400 &&
        /^\/(client\/v4\/)?accounts\/[^/]*\/stream\/(live_inputs|webhook)/.test(r.url)
      )
        // Cloudflare's envelope; or the cloud's for a URL the router could not even decode (a NUL byte).
        assert.ok(res.json().success === false || res.json().code === 'CLOUD_BAD_REQUEST', what);
    }
    // Still serving (a fuzzed DELETE with the token may well have deleted the input: that is its right).
    const still = await cloud.app.inject({ method: 'POST', url: base, headers: auth, payload: {} });
    assert.equal(still.statusCode, 200, still.body);
  });

  it('is off (404) without CLOUD_API_TOKEN and CLOUD_ACCOUNT_ID, and needs both', async () => {
    const off = await startCloud(loadConfig({ CLOUD_HOST: '127.0.0.1', CLOUD_PORT: '0' }), silentLogger(), {
      relaySecret: RELAY_SECRET,
      publishTokenSecret: SECRET,
      userTokenSecret: SECRET,
      announceDashboard: false,
    });
    try {
      const res = await off.app.inject({ method: 'GET', url: base, headers: auth });
      assert.equal(res.statusCode, 404);
      assert.equal(off.liveInputs, null);
    } finally {
      await off.close();
    }
    assert.throws(() => loadConfig({ CLOUD_API_TOKEN: TOKEN }), /CLOUD_ACCOUNT_ID/);
  });
});

/** Relay reports are applied in the background: polls until `check` holds (2 s at most). */
async function waitFor(check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 2000;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('not within 2 s');
    await new Promise((r) => setTimeout(r, 10));
  }
}
