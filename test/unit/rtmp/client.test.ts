/**
 * The RTMP publishing client against the relay's own RtmpServer (plain and behind TLS) and against scripted
 * and hostile servers: what arrives, refusals with stable codes, a server that vanishes, timeouts, pings and
 * acknowledgements, and that the stream key never reaches a log or an error.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { afterEach, before, describe, it } from 'node:test';
import tls from 'node:tls';
import { readFlv } from '../../../src/media/flv-reader.ts';
import { FlvTagType, type MediaTag } from '../../../src/media/flv-tag.ts';
import { type Amf0Object, encodeAmf0 } from '../../../src/rtmp/amf0.ts';
import { ChunkReader } from '../../../src/rtmp/chunk-reader.ts';
import { ChunkWriter } from '../../../src/rtmp/chunk-writer.ts';
import {
  type PublisherClosed,
  type PublisherStarted,
  RtmpPublisher,
  type RtmpPublisherOptions,
} from '../../../src/rtmp/client.ts';
import { ServerHandshake } from '../../../src/rtmp/handshake.ts';
import {
  decodeMessage,
  encodeMessage,
  type Message,
  MessageType,
  UserControlEvent,
} from '../../../src/rtmp/messages.ts';
import type { Publish, PublishStart } from '../../../src/rtmp/publish.ts';
import { type AuthorizePublish, RtmpServer } from '../../../src/rtmp/server.ts';
import { ErrorCodes } from '../../../src/shared/errors.ts';
import { onceEvent } from '../../../src/shared/typed-emitter.ts';
import { fixturePath } from '../../fixtures/generate.ts';
import { captureLogs } from '../../helpers/log-capture.ts';
import { freePort } from '../../helpers/ports.ts';
import { selfSignedCert } from '../../helpers/tls-cert.ts';

const SECRET = 'sk-live-7c1e9d';

interface Ctx {
  servers: { close(): unknown }[];
  publishers: RtmpPublisher[];
  logs: ReturnType<typeof captureLogs>;
  cleanups: (() => void)[];
}
let ctx: Ctx;

function fresh(): Ctx {
  return { servers: [], publishers: [], logs: captureLogs(), cleanups: [] };
}
ctx = fresh();

afterEach(async () => {
  for (const p of ctx.publishers) p.destroy();
  for (const s of ctx.servers) await s.close();
  for (const cleanup of ctx.cleanups) cleanup();
  const text = ctx.logs.text();
  assert.ok(!text.includes(SECRET), 'the stream key reached a log');
  ctx = fresh();
});

async function relayServer(
  options: { authorize?: AuthorizePublish } = {},
): Promise<{ server: RtmpServer; port: number }> {
  const server = new RtmpServer({ log: captureLogs('silent').log, ...options });
  const port = await server.listen(0, '127.0.0.1');
  ctx.servers.push(server);
  return { server, port };
}

function publisher(url: string, options: Partial<RtmpPublisherOptions> = {}): RtmpPublisher {
  const p = new RtmpPublisher({ url, log: ctx.logs.log, ...options });
  ctx.publishers.push(p);
  return p;
}

function started(p: RtmpPublisher): Promise<PublisherStarted> {
  return new Promise((resolve, reject) => {
    p.once('started', resolve);
    p.once('closed', (c) => reject(new Error(`closed before started: ${c.error?.code} ${c.error?.message}`)));
  });
}

function closed(p: RtmpPublisher): Promise<PublisherClosed> {
  return onceEvent(p, 'closed').then(([c]) => c);
}

/** Collects what a server-side publish yields. */
function collect(publish: Publish): { start: Promise<PublishStart>; tags: MediaTag[] } {
  const tags: MediaTag[] = [];
  publish.on('tag', (t) => tags.push({ ...t, data: Buffer.from(t.data) }));
  return { start: onceEvent(publish, 'start').then(([s]) => s), tags };
}

async function until(predicate: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setImmediate(r));
  }
}

let fixture: MediaTag[] = [];
before(async () => {
  fixture = readFlv(readFileSync(await fixturePath('glasses-854x480.flv'))).tags;
});

describe('RtmpPublisher → RtmpServer', () => {
  it('publishes with the right key and delivers metadata, sequence headers and frames intact', async () => {
    const tokens: (string | undefined)[] = [];
    const { server, port } = await relayServer({
      authorize: (req) => {
        tokens.push(req.token);
        return { allow: true };
      },
    });
    const published = onceEvent(server, 'publish');
    const p = publisher(`rtmp://127.0.0.1:${port}/live/user1/stream1?token=${SECRET}`);
    const up = started(p);
    p.start();
    const [publish] = await published;
    const info = await up;
    assert.equal(publish.info.key, 'live/user1/stream1');
    assert.deepEqual(tokens, [SECRET]);
    assert.ok(info.streamId > 0, 'a stream id');
    assert.equal(p.state, 'publishing');

    const got = collect(publish);
    // The first 4 s of a real glasses stream: metadata, both sequence headers, then frames.
    const slice = fixture.filter((t) => t.timestamp < 4000);
    const metadata = slice.find((t) => t.type === FlvTagType.Script)!;
    let sent = 0;
    for (const tag of slice) sent += p.send(tag);
    assert.ok(sent > slice.reduce((n, t) => n + t.data.length, 0), 'send() reports the bytes written');

    const start = await got.start;
    const frames = slice.filter((t) => !t.isConfig);
    await until(() => got.tags.length >= frames.length);
    assert.deepEqual(start.metadataTag, metadata.data);
    assert.deepEqual(
      start.videoConfig?.data,
      slice.find((t) => t.type === FlvTagType.Video && t.isConfig)?.data,
    );
    assert.deepEqual(
      start.audioConfig?.data,
      slice.find((t) => t.type === FlvTagType.Audio && t.isConfig)?.data,
    );
    assert.equal(got.tags.length, frames.length);
    for (const [i, tag] of frames.entries()) {
      const r = got.tags[i]!;
      assert.equal(r.type, tag.type, `tag ${i} type`);
      assert.equal(r.timestamp, tag.timestamp, `tag ${i} timestamp`);
      assert.ok(r.data.equals(tag.data), `tag ${i} payload`);
    }

    const ended = new Promise<string>((resolve) => server.once('end', (_p, reason) => resolve(reason.kind)));
    const done = closed(p);
    p.close();
    assert.deepEqual(await done, { reason: 'closed', wasPublishing: true });
    assert.equal(await ended, 'unpublish', 'close() unpublishes (FCUnpublish + deleteStream)');
  });

  it('sends at the timestamp it is given (rebasing is the caller’s)', async () => {
    const { server, port } = await relayServer();
    const published = onceEvent(server, 'publish');
    const p = publisher(`rtmp://127.0.0.1:${port}/live/user1/stream2`);
    p.start();
    const [publish] = await published;
    await started(p).catch(() => {});
    const got = collect(publish);
    const key = fixture.find((t) => t.type === FlvTagType.Video && t.keyframe && !t.isConfig)!;
    const config = fixture.find((t) => t.type === FlvTagType.Video && t.isConfig)!;
    p.send(config, 0);
    p.send(key, 0);
    p.send(key, 0x1234567); // past 24 bits: an extended timestamp
    await until(() => got.tags.length === 2);
    assert.deepEqual(
      got.tags.map((t) => t.timestamp),
      [0, 0x1234567],
    );
  });

  it('reports an unauthorized publish as RTMP_CLIENT_UNAUTHORIZED, and a bad name as RTMP_CLIENT_BAD_NAME', async () => {
    const { port } = await relayServer({ authorize: () => ({ allow: false, reason: 'bad token' }) });
    const p = publisher(`rtmp://127.0.0.1:${port}/live/user1/stream1?token=${SECRET}`);
    const done = closed(p);
    let wasStarted = false;
    p.on('started', () => (wasStarted = true));
    p.start();
    const c = await done;
    assert.equal(c.reason, 'failed');
    assert.equal(c.error?.code, ErrorCodes.RTMP_CLIENT_UNAUTHORIZED);
    assert.match(c.error!.message, /NetStream\.Publish\.Unauthorized.*bad token/);
    assert.ok(!c.error!.message.includes(SECRET), 'the key is not in the error');
    assert.equal(wasStarted, false);
    assert.equal(p.send(fixture[0]!), 0, 'nothing is sent after a refusal');

    const q = publisher(`rtmp://127.0.0.1:${port}/live/user1/bad.stream.id`);
    const refused = closed(q);
    q.start();
    assert.equal((await refused).error?.code, ErrorCodes.RTMP_CLIENT_BAD_NAME);
  });

  it('reports a server that vanishes mid-stream as RTMP_CLIENT_DISCONNECTED', async () => {
    const { server, port } = await relayServer();
    const p = publisher(`rtmp://127.0.0.1:${port}/live/user1/stream1`);
    const up = started(p);
    p.start();
    await up;
    for (const tag of fixture.slice(0, 20)) p.send(tag);
    const done = closed(p);
    await server.close();
    const c = await done;
    assert.equal(c.reason, 'failed');
    assert.equal(c.wasPublishing, true);
    assert.ok(
      c.error?.code === ErrorCodes.RTMP_CLIENT_DISCONNECTED || c.error?.code === ErrorCodes.RTMP_SOCKET_ERROR,
      String(c.error?.code),
    );
    assert.equal(p.state, 'closed');
  });

  it('reports a refused connection as RTMP_CLIENT_CONNECT_FAILED', async () => {
    const port = await freePort();
    const p = publisher(`rtmp://127.0.0.1:${port}/live/user1/stream1`);
    const done = closed(p);
    p.start();
    const c = await done;
    assert.equal(c.error?.code, ErrorCodes.RTMP_CLIENT_CONNECT_FAILED);
    assert.match(c.error!.message, /ECONNREFUSED/);
  });

  it('times out a server that accepts and never answers (RTMP_CLIENT_TIMEOUT)', async () => {
    const sockets: net.Socket[] = [];
    const silent = net.createServer((s) => sockets.push(s));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    ctx.servers.push({
      close: () => {
        for (const s of sockets) s.destroy();
        return new Promise<void>((r) => silent.close(() => r()));
      },
    });
    const port = (silent.address() as net.AddressInfo).port;
    const p = publisher(`rtmp://127.0.0.1:${port}/live/user1/stream1`, { handshakeTimeoutMs: 150 });
    const done = closed(p);
    const t0 = Date.now();
    p.start();
    const c = await done;
    assert.equal(c.error?.code, ErrorCodes.RTMP_CLIENT_TIMEOUT);
    assert.match(c.error!.message, /handshake/);
    assert.ok(Date.now() - t0 < 2000, 'timed out promptly');
  });

  it('close() and destroy() before or while connecting end it with their own reason', async () => {
    const { port } = await relayServer();
    const a = publisher(`rtmp://127.0.0.1:${port}/live/user1/a`);
    const aClosed = closed(a);
    a.start();
    a.close();
    assert.deepEqual(await aClosed, { reason: 'closed', wasPublishing: false });
    const b = publisher(`rtmp://127.0.0.1:${port}/live/user1/b`);
    const bClosed = closed(b);
    b.destroy();
    assert.deepEqual(await bClosed, { reason: 'destroyed', wasPublishing: false });
    b.start(); // after close: nothing happens
    assert.equal(b.state, 'closed');
    assert.throws(() => new RtmpPublisher({ url: 'http://x/y/z', log: ctx.logs.log }), {
      code: ErrorCodes.RTMP_CLIENT_URL_INVALID,
    });
  });
});

// ------------------------------------------------------------------------------------------ scripted servers

interface Scripted {
  port: number;
  /** Messages the client sent, decoded. */
  received: Message[];
  commands(): string[];
}

/**
 * A server built from the relay's pure layers that runs `script` for every message the client sends;
 * `reply` writes messages back. Handshake bytes are answered by ServerHandshake.
 */
async function scriptedServer(
  script: (
    m: Message,
    reply: (...messages: (Message & { csid?: number })[]) => void,
    raw: (b: Buffer) => void,
  ) => void,
): Promise<Scripted> {
  const received: Message[] = [];
  const sockets: net.Socket[] = [];
  const server = net.createServer((socket) => {
    sockets.push(socket);
    socket.on('error', () => {}); // the client may reset: expected here
    const hs = new ServerHandshake();
    const reader = new ChunkReader();
    const writer = new ChunkWriter();
    const reply = (...messages: (Message & { csid?: number })[]): void => {
      for (const m of messages) {
        const raw = encodeMessage(m);
        if (!socket.destroyed) socket.write(writer.write(m.csid ? { ...raw, csid: m.csid } : raw));
      }
    };
    const raw = (b: Buffer): void => {
      if (!socket.destroyed) socket.write(b);
    };
    socket.on('data', (data: Buffer) => {
      let rest = data;
      if (!hs.done) {
        const step = hs.push(data);
        if (step.reply) socket.write(step.reply);
        if (!step.done) return;
        rest = step.rest;
      }
      reader.push(rest, (m) => {
        const message = decodeMessage(m);
        if (message.kind === 'set-chunk-size') reader.setChunkSize(message.size);
        received.push(message);
        script(message, reply, raw);
      });
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  ctx.servers.push({
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise<void>((r) => server.close(() => r()));
    },
  });
  return {
    port: (server.address() as net.AddressInfo).port,
    received,
    commands: () => received.flatMap((m) => (m.kind === 'command' ? [m.name] : [])),
  };
}

const command = (name: string, transactionId: number, args: unknown[], streamId = 0): Message => ({
  kind: 'command',
  streamId,
  name,
  transactionId,
  args: args as never,
});
const status = (code: string, level: string, description: string): Amf0Object =>
  ({ level, code, description }) as Amf0Object;

/** Answers connect, createStream and publish the way the relay's server does, plus `extra` on connect. */
function happyScript(
  extra: Message[] = [],
  onPublish: (name: string) => Message = () =>
    command('onStatus', 0, [null, status('NetStream.Publish.Start', 'status', 'ok')], 1),
) {
  return (m: Message, reply: (...messages: (Message & { csid?: number })[]) => void): void => {
    if (m.kind !== 'command') return;
    if (m.name === 'connect') {
      reply(
        ...extra,
        command('_result', m.transactionId, [
          { fmsVer: 'x' },
          status('NetConnection.Connect.Success', 'status', ''),
        ]),
      );
    } else if (m.name === 'createStream') {
      reply(command('_result', m.transactionId, [null, 1]));
    } else if (m.name === 'publish') {
      reply({ ...onPublish(String(m.args[1])), csid: 5 });
    }
  };
}

describe('RtmpPublisher against scripted servers', () => {
  it('speaks the publish sequence the way FFmpeg does and unpublishes on close', async () => {
    const s = await scriptedServer(happyScript());
    const p = publisher(`rtmp://127.0.0.1:${s.port}/live2/${SECRET}`);
    const up = started(p);
    p.start();
    await up;
    p.close();
    await until(() => s.commands().includes('deleteStream'));
    assert.deepEqual(s.commands(), [
      'connect',
      'releaseStream',
      'FCPublish',
      'createStream',
      'publish',
      'FCUnpublish',
      'deleteStream',
    ]);
    const connect = s.received.find((m) => m.kind === 'command' && m.name === 'connect');
    assert.ok(connect?.kind === 'command', 'connect sent');
    const obj = connect.args[0] as Amf0Object;
    assert.equal(obj.app, 'live2');
    assert.equal(obj.tcUrl, `rtmp://127.0.0.1:${s.port}/live2`);
    assert.equal(obj.type, 'nonprivate');
    assert.match(String(obj.flashVer), /FMLE/);
    const publish = s.received.find((m) => m.kind === 'command' && m.name === 'publish');
    assert.ok(publish?.kind === 'command', 'publish sent');
    assert.deepEqual(publish.args.slice(1), [SECRET, 'live']);
    assert.equal(publish.streamId, 1);
    const chunk = s.received.find((m) => m.kind === 'set-chunk-size');
    assert.deepEqual(chunk, { kind: 'set-chunk-size', size: 4096 });
  });

  it('answers pings, acknowledges the window and answers Set Peer Bandwidth', async () => {
    const s = await scriptedServer(
      happyScript([
        { kind: 'window-ack-size', size: 64 },
        { kind: 'set-peer-bandwidth', size: 5_000_000, limitType: 2 },
        { kind: 'user-control', event: UserControlEvent.PingRequest, value: 4242 },
      ]),
    );
    const p = publisher(`rtmp://127.0.0.1:${s.port}/app/key`);
    const up = started(p);
    p.start();
    await up;
    await until(() => s.received.some((m) => m.kind === 'acknowledgement'));
    assert.ok(
      s.received.some(
        (m) => m.kind === 'user-control' && m.event === UserControlEvent.PingResponse && m.value === 4242,
      ),
      'ping answered',
    );
    assert.ok(
      s.received.some((m) => m.kind === 'window-ack-size' && m.size === 5_000_000),
      'Set Peer Bandwidth answered',
    );
    const ack = s.received.find((m) => m.kind === 'acknowledgement');
    // The first acknowledgement counts every byte received so far, the handshake's included.
    assert.ok(
      ack?.kind === 'acknowledgement' && ack.sequence > 3073 && ack.sequence <= p.bytesReceived,
      `acknowledgement ${JSON.stringify(ack)}`,
    );
  });

  it('scrubs the stream key from what the server says back', async () => {
    const s = await scriptedServer(
      happyScript([], (name) =>
        command(
          'onStatus',
          0,
          [null, status('NetStream.Publish.BadName', 'error', `Stream ${name} is already publishing`)],
          1,
        ),
      ),
    );
    const p = publisher(`rtmp://127.0.0.1:${s.port}/live2/${SECRET}?x=1`);
    const done = closed(p);
    p.start();
    const c = await done;
    assert.equal(c.error?.code, ErrorCodes.RTMP_CLIENT_BAD_NAME);
    assert.match(c.error!.message, /Stream \[redacted\] is already publishing/);
    assert.ok(!c.error!.message.includes(SECRET), 'the key is not in the error');
  });

  it('reports a refused connect as RTMP_CLIENT_REJECTED', async () => {
    const s = await scriptedServer((m, reply) => {
      if (m.kind === 'command' && m.name === 'connect') {
        reply(
          command('_error', m.transactionId, [
            null,
            status('NetConnection.Connect.Rejected', 'error', 'no such app'),
          ]),
        );
      }
    });
    const p = publisher(`rtmp://127.0.0.1:${s.port}/nope/key`);
    const done = closed(p);
    p.start();
    const c = await done;
    assert.equal(c.error?.code, ErrorCodes.RTMP_CLIENT_REJECTED);
    assert.match(c.error!.message, /connect: NetConnection\.Connect\.Rejected \(no such app\)/);
  });

  it('closes on hostile server input with the chunk layer’s code, never throwing', async () => {
    const cases: [string, Buffer, string][] = [
      [
        'a message over the limit',
        // fmt 0, csid 3, ts 0, length 0xFFFFFF, type 20, stream 0
        Buffer.from([0x03, 0, 0, 0, 0xff, 0xff, 0xff, 20, 0, 0, 0, 0]),
        ErrorCodes.RTMP_MESSAGE_TOO_LARGE,
      ],
      [
        'a continuation with no previous header',
        Buffer.from([0xc9, 1, 2, 3]),
        ErrorCodes.RTMP_CHUNK_NO_PREVIOUS,
      ],
      [
        'a malformed command',
        new ChunkWriter().write({
          csid: 3,
          type: MessageType.CommandAmf0,
          streamId: 0,
          timestamp: 0,
          payload: Buffer.concat([encodeAmf0('_result', 1), Buffer.from([0x03, 0x00, 0x05, 0x61])]),
        }),
        ErrorCodes.AMF0_MALFORMED,
      ],
    ];
    for (const [what, evil, code] of cases) {
      const s = await scriptedServer((m, _reply, raw) => {
        if (m.kind === 'command' && m.name === 'connect') raw(evil);
      });
      const p = publisher(`rtmp://127.0.0.1:${s.port}/app/key`);
      const done = closed(p);
      p.start();
      const c = await done;
      assert.equal(c.error?.code, code, what);
    }
  });
});

// ----------------------------------------------------------------------------------------------- RTMPS

describe('RtmpPublisher over RTMPS', () => {
  async function selfSigned(): Promise<{ key: Buffer; cert: Buffer }> {
    const made = await selfSignedCert();
    ctx.cleanups.push(made.remove);
    return made;
  }

  it('publishes through TLS to an RtmpServer, verifying the certificate (SNI = host)', async () => {
    const { key, cert } = await selfSigned();
    const rtmp = new RtmpServer({ log: captureLogs('silent').log });
    ctx.servers.push(rtmp);
    const names: (string | false)[] = [];
    const front = tls.createServer({ key, cert }, (socket) => {
      names.push(socket.servername ?? false);
      rtmp.handleSocket(socket);
    });
    await new Promise<void>((r) => front.listen(0, '127.0.0.1', r));
    ctx.servers.push({ close: () => new Promise<void>((r) => front.close(() => r())) });
    const port = (front.address() as net.AddressInfo).port;

    // Untrusted (self-signed, no CA given): refused before anything is sent.
    const untrusted = publisher(`rtmps://localhost:${port}/live/user1/stream1?token=${SECRET}`);
    const refused = closed(untrusted);
    untrusted.start();
    const r = await refused;
    assert.equal(r.error?.code, ErrorCodes.RTMP_CLIENT_TLS_FAILED);
    assert.match(r.error!.message, /self.signed/i);

    const published = onceEvent(rtmp, 'publish');
    const p = publisher(`rtmps://localhost:${port}/live/user1/stream1?token=${SECRET}`, { ca: cert });
    const up = started(p);
    p.start();
    const [publish] = await published;
    await up;
    assert.equal(publish.info.key, 'live/user1/stream1');
    assert.ok(names.includes('localhost'), 'SNI carries the host name');
    const got = collect(publish);
    const slice = fixture.filter((t) => t.timestamp < 2000);
    for (const tag of slice) p.send(tag);
    const frames = slice.filter((t) => !t.isConfig);
    await until(() => got.tags.length >= frames.length);
    assert.ok(
      got.tags.every((t, i) => t.data.equals(frames[i]!.data) && t.timestamp === frames[i]!.timestamp),
      'frames intact through TLS',
    );
    const done = closed(p);
    p.close();
    assert.equal((await done).reason, 'closed');
  });
});
