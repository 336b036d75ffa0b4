/**
 * The RTMP server over real TCP with a scripted publisher: authorization, names, takeover, timeouts,
 * limits, control messages, Enhanced RTMP refusal, and what never reaches a log.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { afterEach, describe, it } from 'node:test';
import { encodeAmf0 } from '../../src/rtmp/amf0.ts';
import { MessageType, UserControlEvent } from '../../src/rtmp/messages.ts';
import type { EndReason, Publish } from '../../src/rtmp/publish.ts';
import { type AuthorizePublish, RtmpServer, type RtmpServerOptions } from '../../src/rtmp/server.ts';
import { ErrorCodes } from '../../src/shared/errors.ts';
import { onceEvent } from '../../src/shared/typed-emitter.ts';
import { captureLogs } from '../helpers/log-capture.ts';
import { AAC_CONFIG, AVC_CONFIG, AVC_FRAME, AVC_KEYFRAME, TestClient } from '../helpers/rtmp-test-client.ts';

const SECRET = 'secret-token-5c1f';

interface Ctx {
  server: RtmpServer;
  port: number;
  logs: ReturnType<typeof captureLogs>;
  clients: TestClient[];
}
const open: Ctx[] = [];

async function start(options: Partial<RtmpServerOptions> = {}): Promise<Ctx> {
  const logs = captureLogs();
  const server = new RtmpServer({ log: logs.log, ...options });
  const port = await server.listen(0, '127.0.0.1');
  const ctx = { server, port, logs, clients: [] };
  open.push(ctx);
  return ctx;
}

async function client(ctx: Ctx, options?: { handshake?: boolean }): Promise<TestClient> {
  const c = await TestClient.open(ctx.port, options);
  ctx.clients.push(c);
  return c;
}

function nextPublish(server: RtmpServer): Promise<Publish> {
  return onceEvent(server, 'publish').then(([p]) => p);
}

function nextEnd(server: RtmpServer): Promise<[Publish, EndReason]> {
  return new Promise((resolve) => server.once('end', (p, r) => resolve([p, r])));
}

afterEach(async () => {
  for (const ctx of open.splice(0)) {
    for (const c of ctx.clients) c.close();
    await ctx.server.close();
    assert.ok(!ctx.logs.text().includes(SECRET), 'a token reached the log');
  }
});

describe('RTMP server over TCP', () => {
  it('refuses an unauthorized publish with NetStream.Publish.Unauthorized before accepting any media', async () => {
    const seen: string[] = [];
    const authorize: AuthorizePublish = (req) => {
      seen.push(req.token ?? '');
      return { allow: false, reason: 'bad token' };
    };
    const ctx = await start({ authorize });
    let published = 0;
    ctx.server.on('publish', () => published++);
    const c = await client(ctx);
    await c.connectAndCreate();
    // Pipeline media right behind publish, as an impatient client would.
    c.command('publish', 5, [null, `stream1?token=${SECRET}`, 'live'], 1, 8);
    c.video(0, AVC_CONFIG);
    c.video(0, AVC_KEYFRAME);
    const status = await c.waitFor(() => c.status());
    assert.equal(status.code, 'NetStream.Publish.Unauthorized');
    assert.equal(status.level, 'error');
    await c.closed;
    assert.equal(published, 0);
    assert.deepEqual(seen, [SECRET]);
    assert.equal(ctx.server.stats.authRefusals, 1);
    assert.equal(ctx.server.stats.errors.get(ErrorCodes.RTMP_UNAUTHORIZED), 1);
  });

  it('ignores media sent while the authorization hook is still deciding', async () => {
    let decide: (allow: boolean) => void = () => {};
    const ctx = await start({
      authorize: () =>
        new Promise(
          (resolve) =>
            (decide = (allow) => resolve(allow ? { allow: true } : { allow: false, reason: 'no' })),
        ),
    });
    const c = await client(ctx);
    await c.connectAndCreate();
    c.command('publish', 5, [null, 'stream1?token=t', 'live'], 1, 8);
    c.video(0, AVC_KEYFRAME);
    // The server handles messages in order: once the pong is back, the frame has been seen (and ignored).
    c.write({
      csid: 2,
      type: MessageType.UserControl,
      streamId: 0,
      timestamp: 0,
      payload: Buffer.from('000600000001', 'hex'),
    });
    await c.waitFor(() =>
      c.received.find((m) => m.kind === 'user-control' && m.event === UserControlEvent.PingResponse),
    );
    assert.equal([...ctx.server.connections][0]!.ignoredMedia, 1);
    const published = nextPublish(ctx.server);
    decide(true);
    const publish = await published;
    const firstTag = onceEvent(publish, 'tag');
    assert.equal((await c.waitFor(() => c.status())).code, 'NetStream.Publish.Start');
    c.video(40, AVC_KEYFRAME);
    const [tag] = await firstTag;
    assert.equal(tag.timestamp, 40, 'the frame sent before Publish.Start was not accepted');
    assert.equal(publish.stats.videoFrames, 1);
  });

  it('refuses a hook that throws or hangs, without logging the token', async () => {
    const ctx = await start({
      authorize: () => {
        throw new Error(`database down while checking ${SECRET.slice(0, 3)}`);
      },
    });
    const c = await client(ctx);
    await c.connectAndCreate();
    assert.equal((await c.publish(`stream1?token=${SECRET}`)).code, 'NetStream.Publish.Unauthorized');
    assert.equal(ctx.server.stats.errors.get(ErrorCodes.RTMP_AUTH_FAILED), 1);

    const slow = await start({ authorize: () => new Promise(() => {}), authTimeoutMs: 100 });
    const d = await client(slow);
    await d.connectAndCreate();
    assert.equal((await d.publish(`stream1?token=${SECRET}`)).code, 'NetStream.Publish.Unauthorized');
  });

  it('refuses bad names with NetStream.Publish.BadName naming the value and the rule, to the publisher and in the log', async () => {
    const ctx = await start();
    const rules = {
      path: 'the stream path must be live/{userId}/{streamId}',
      userId: 'a userId is 1-128 of A-Z a-z 0-9 . _ + @ - and neither starts with "." nor contains ".."',
      streamId: 'a streamId is 1-64 of A-Z a-z 0-9 _ -',
    };
    const cases: [app: string, name: string, description: string][] = [
      ['live/user1', 'bad.name', `streamId "bad.name": ${rules.streamId}`],
      ['live/../etc', 'passwd', `stream path "live/../etc/passwd": ${rules.path}`],
      ['live/a..b', 'passwd', `userId "a..b": ${rules.userId}`],
      ['other/user1', 'stream1', `stream path "other/user1/stream1": ${rules.path}`],
      ['live', 'stream1', `stream path "live/stream1": ${rules.path}`],
      ['live/.u', 's', `userId ".u": ${rules.userId}`],
      // The token (in the query) is never echoed; control characters are escaped, not sent raw.
      ['live/user1', `s$(x)\n?token=${SECRET}`, `streamId "s$(x)\\n": ${rules.streamId}`],
      ['live/user1', 'é\u202e', `streamId "\\u00e9\\u202e": ${rules.streamId}`],
      ['live/user1', 'a'.repeat(100), `streamId "${'a'.repeat(64)}"... (100 characters): ${rules.streamId}`],
      [
        'live/%zz',
        's',
        'malformed percent-encoding in "live/%zz/s": every % must start a %XX escape of UTF-8',
      ],
      [
        'live/user1',
        'x'.repeat(3000),
        'publish name of 3000 characters: a publish name, app or tcUrl is at most 2048 characters',
      ],
      ['live/user1', '', 'empty publish name: the stream path must be live/{userId}/{streamId}'],
    ];
    for (const [app, name, description] of cases) {
      const c = await client(ctx);
      await c.connectAndCreate(app);
      const status = await c.publish(name);
      assert.equal(status.code, 'NetStream.Publish.BadName', `${app}/${name}`);
      assert.equal(status.description, description);
      await c.closed;
      const logged = ctx.logs.lines().at(-1)!;
      assert.equal(logged.msg, `connection closed: publish refused: ${description}`);
      assert.equal(logged.code, ErrorCodes.RTMP_BAD_NAME);
    }
    assert.equal(ctx.server.stats.errors.get(ErrorCodes.RTMP_BAD_NAME), cases.length);
  });

  it("names the stream and the hook's reason in every other refusal", async () => {
    const hook = await start({
      authorize: (req) =>
        req.streamId === 'taken'
          ? { allow: false, reason: 'another stream is using this HLS path', badName: true }
          : { allow: false, reason: 'bad token' },
    });
    const cases: [name: string, code: string, description: string][] = [
      ['taken', 'NetStream.Publish.BadName', 'live/user1/taken: another stream is using this HLS path'],
      [`free?token=${SECRET}`, 'NetStream.Publish.Unauthorized', 'live/user1/free: bad token'],
    ];
    for (const [name, code, description] of cases) {
      const c = await client(hook);
      await c.connectAndCreate();
      const status = await c.publish(name);
      assert.deepEqual([status.code, status.description], [code, description]);
      await c.closed;
      assert.equal(hook.logs.lines().at(-1)!.msg, `connection closed: publish refused: ${description}`);
    }
    const slow = await start({ authorize: () => new Promise(() => {}), authTimeoutMs: 100 });
    const d = await client(slow);
    await d.connectAndCreate();
    assert.equal(
      (await d.publish('s1')).description,
      'live/user1/s1: authorization timed out: the check must answer within 0.1 s',
    );
  });

  it('lets a newer publish of a live key take over, with distinct events', async () => {
    const ctx = await start();
    const events: string[] = [];
    ctx.server.on('publish', (p) => events.push(`publish:${p.info.id}`));
    ctx.server.on('takeover', (t) => events.push(`takeover:${t.previous.id}->${t.next.id}`));
    ctx.server.on('end', (p, r) => events.push(`end:${p.info.id}:${r.kind}`));

    const first = await client(ctx);
    await first.connectAndCreate();
    assert.equal((await first.publish('stream1')).code, 'NetStream.Publish.Start');
    first.video(0, AVC_CONFIG);
    first.video(0, AVC_KEYFRAME);

    const second = await client(ctx);
    await second.connectAndCreate();
    const ended = nextEnd(ctx.server);
    assert.equal((await second.publish('stream1')).code, 'NetStream.Publish.Start');
    const [, reason] = await ended;
    assert.equal(reason.kind, 'takeover');
    await first.closed;
    assert.deepEqual(events, ['publish:1', 'takeover:1->2', 'end:1:takeover', 'publish:2']);
    assert.deepEqual(
      ctx.server.publishes.map((p) => p.info.id),
      [2],
    );
    // The old connection going away later must not unregister the new publish.
    assert.equal(ctx.server.publishes.length, 1);
  });

  it('closes a slowloris handshake at the timeout', async () => {
    const ctx = await start({ limits: { handshakeTimeoutMs: 300 } });
    const c = await client(ctx, { handshake: false });
    const started = Date.now();
    c.socket.write(Buffer.from([3, 0, 0]));
    const dribble = setInterval(() => c.socket.write(Buffer.from([0])), 50);
    await c.closed;
    clearInterval(dribble);
    const took = Date.now() - started;
    assert.ok(took >= 250 && took < 5000, `closed after ${took} ms`);
    assert.equal(ctx.server.stats.errors.get(ErrorCodes.RTMP_HANDSHAKE_TIMEOUT), 1);
  });

  it('closes a publisher that sends no media within the idle timeout', async () => {
    const ctx = await start({ limits: { idleTimeoutMs: 300 } });
    const c = await client(ctx);
    await c.connectAndCreate();
    const ended = nextEnd(ctx.server);
    await c.publish('stream1');
    const [, reason] = await ended;
    assert.equal(reason.kind, 'idle-timeout');
    assert.equal(reason.code, ErrorCodes.RTMP_IDLE_TIMEOUT);
    await c.closed;
  });

  it('limits connections per IP and overall', async () => {
    const perIp = await start({ maxConnectionsPerIp: 2 });
    const a = await client(perIp);
    await client(perIp);
    const refused = await client(perIp, { handshake: false });
    await refused.closed;
    assert.equal(perIp.server.stats.errors.get(ErrorCodes.RTMP_TOO_MANY_CONNECTIONS_PER_IP), 1);
    assert.ok(
      perIp.logs
        .lines()
        .some(
          (l) =>
            l.msg ===
              'connection refused: 2 connections open from this address: at most RTMP_MAX_CONNECTIONS_PER_IP (2)' &&
            l.code === ErrorCodes.RTMP_TOO_MANY_CONNECTIONS_PER_IP,
        ),
      'the refusal names the limit it hit',
    );
    const aGone = onceEvent([...perIp.server.connections][0]!, '@close');
    a.close();
    await aGone;
    assert.equal(perIp.server.connections.size, 1);
    const again = await client(perIp);
    await again.connectAndCreate();

    const overall = await start({ maxConnections: 1 });
    await client(overall);
    const over = await client(overall, { handshake: false });
    await over.closed;
    assert.equal(overall.server.stats.errors.get(ErrorCodes.RTMP_TOO_MANY_CONNECTIONS), 1);
    assert.ok(
      overall.logs
        .lines()
        .some((l) => l.msg === 'connection refused: 1 connections open: at most RTMP_MAX_CONNECTIONS (1)'),
      'the refusal names the limit it hit',
    );
  });

  it('answers ping with pong and acknowledges the window it was given', async () => {
    const ctx = await start();
    const c = await client(ctx);
    c.write({
      csid: 2,
      type: MessageType.WindowAckSize,
      streamId: 0,
      timestamp: 0,
      payload: Buffer.from('00001000', 'hex'),
    });
    c.write({
      csid: 2,
      type: MessageType.UserControl,
      streamId: 0,
      timestamp: 0,
      payload: Buffer.from('0006000004d2', 'hex'),
    });
    await c.waitFor(() =>
      c.received.find((m) => m.kind === 'user-control' && m.event === UserControlEvent.PingResponse),
    );
    await c.connectAndCreate();
    await c.publish('stream1');
    for (let i = 0; i < 20; i++) c.video(i * 40, AVC_KEYFRAME);
    const ack = await c.waitFor(() => c.received.find((m) => m.kind === 'acknowledgement'));
    assert.ok(ack.kind === 'acknowledgement' && ack.sequence >= 4096);
    const pong = c.received.find(
      (m) => m.kind === 'user-control' && m.event === UserControlEvent.PingResponse,
    );
    assert.ok(pong?.kind === 'user-control' && pong.value === 1234);
  });

  it('answers the command flow as real clients expect, including GStreamer txn 0', async () => {
    const ctx = await start();
    const c = await client(ctx);
    c.command('connect', 1, [{ app: 'live/user1', tcUrl: 'rtmp://127.0.0.1/live/user1' }]);
    c.command('releaseStream', 0, [null, 'stream1']);
    c.command('FCPublish', 0, [null, 'stream1']);
    c.command('createStream', 2, [null]);
    await c.waitFor(() => c.result(2));
    const connect = c.result(1)!;
    assert.equal((connect.args[1] as { code: string }).code, 'NetConnection.Connect.Success');
    assert.equal(c.result(2)!.args[1], 1, 'createStream returns stream id 1');
    assert.equal(c.commands().filter((m) => m.transactionId === 0 && m.name === '_result').length, 0);
    assert.ok(c.received.some((m) => m.kind === 'window-ack-size'));
    assert.ok(c.received.some((m) => m.kind === 'set-chunk-size' && m.size === 4096));
    const published = nextPublish(ctx.server);
    c.command('publish', 0, [null, 'stream1', 'live'], 1, 8);
    assert.equal((await c.waitFor(() => c.status())).code, 'NetStream.Publish.Start');
    assert.ok(
      c.received.some(
        (m) => m.kind === 'user-control' && m.event === UserControlEvent.StreamBegin && m.value === 1,
      ),
    );
    const publish = await published;
    const ended = new Promise<EndReason>((resolve) => publish.once('end', resolve));
    c.command('FCUnpublish', 0, [null, 'stream1']);
    c.command('deleteStream', 0, [null, 'stream1']); // rtmp2sink passes the name
    assert.equal((await ended).kind, 'unpublish');
  });

  it('delivers metadata, configuration and frames of a scripted publish in order', async () => {
    const ctx = await start();
    const c = await client(ctx);
    await c.connectAndCreate();
    const published = nextPublish(ctx.server);
    await c.publish('stream1');
    const publish = await published;
    const started = onceEvent(publish, 'start');
    c.write({
      csid: 4,
      type: MessageType.DataAmf0,
      streamId: 1,
      timestamp: 0,
      payload: encodeAmf0('@setDataFrame', 'onMetaData', { width: 540, height: 960 }),
    });
    c.video(0, AVC_CONFIG);
    c.audio(0, AAC_CONFIG);
    c.video(0, AVC_KEYFRAME);
    c.video(71, AVC_FRAME);
    const [start0] = await started;
    assert.equal(start0.metadata?.width, 540);
    assert.equal(start0.hasAudio, true);
  });

  it('refuses Enhanced RTMP HEVC with RTMP_UNSUPPORTED_CODEC and a log line', async () => {
    const ctx = await start();
    const c = await client(ctx);
    await c.connectAndCreate();
    const ended = nextEnd(ctx.server);
    await c.publish('stream1');
    c.video(0, Buffer.from('9068766331010203', 'hex'));
    const [, reason] = await ended;
    assert.equal(reason.code, ErrorCodes.RTMP_UNSUPPORTED_CODEC);
    await c.closed;
    assert.ok(
      ctx.logs
        .lines()
        .some((l) => l.code === ErrorCodes.RTMP_UNSUPPORTED_CODEC && /HEVC/.test(String(l.msg))),
    );
  });

  it('closes only the offending connection on a protocol violation', async () => {
    const ctx = await start();
    const good = await client(ctx);
    await good.connectAndCreate();
    const published = nextPublish(ctx.server);
    await good.publish('stream1');
    const publish = await published;
    const bad = await client(ctx);
    bad.socket.write(Buffer.from('82000001ff', 'hex')); // fmt 2 with no previous header
    await bad.closed;
    const tag = onceEvent(publish, 'tag');
    good.video(0, AVC_KEYFRAME);
    await tag;
    assert.equal(ctx.server.stats.errors.get(ErrorCodes.RTMP_CHUNK_NO_PREVIOUS), 1);
  });

  it('refuses play: the server is publish-only', async () => {
    const ctx = await start();
    const c = await client(ctx);
    await c.connectAndCreate();
    c.command('play', 5, [null, 'stream1'], 1);
    await c.closed;
    assert.equal(ctx.server.stats.errors.get(ErrorCodes.RTMP_COMMAND_UNEXPECTED), 1);
  });

  it('closes every connection and ends every publish on close()', async () => {
    const ctx = await start();
    const c = await client(ctx);
    await c.connectAndCreate();
    const ended = nextEnd(ctx.server);
    await c.publish('stream1');
    await client(ctx, { handshake: false });
    await ctx.server.close();
    assert.equal((await ended)[1].kind, 'server-close');
    assert.equal(ctx.server.connections.size, 0);
    await c.closed;
    await assert.rejects(
      new Promise((resolve, reject) => {
        const s = net.connect(ctx.port, '127.0.0.1');
        s.once('connect', () => resolve(s.destroy()));
        s.once('error', reject);
      }),
    );
  });
});
