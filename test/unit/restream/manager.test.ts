/**
 * The per-stream destination set with fake publishers: live add/remove diffed by URL, renames, invalid
 * entries and the cap as pushers in error, fan-out that survives a throwing pusher, outputs[] in the wire
 * shape, close().
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ManagedStreamStatus } from '../../../src/contracts/mentra.ts';
import { FlvTagType, type MediaTag } from '../../../src/media/flv-tag.ts';
import { RestreamManager, type RestreamManagerOptions } from '../../../src/restream/manager.ts';
import { type PusherStatus, RestreamPusher, type RestreamStart } from '../../../src/restream/pusher.ts';
import { ErrorCodes } from '../../../src/shared/errors.ts';
import { captureLogs } from '../../helpers/log-capture.ts';
import { fakeFactory } from './fake-publisher.ts';

const CONFIG: RestreamStart = { metadataTag: null, videoConfig: null, audioConfig: null, hasVideo: true };
const key = (ts: number): MediaTag => ({
  type: FlvTagType.Video,
  timestamp: ts,
  data: Buffer.from([0x17, 1]),
  keyframe: true,
  isConfig: false,
});
const url = (n: number | string): string => `rtmp://ingest-${n}.example.com/app/secret-${n}`;

class ThrowingPusher extends RestreamPusher {
  override tag(): void {
    throw new Error('boom');
  }
}

function setup(options: Partial<RestreamManagerOptions> = {}, throwing = new Set<string>()) {
  const logs = captureLogs();
  const factory = fakeFactory();
  const statuses: PusherStatus[] = [];
  const manager = new RestreamManager({
    log: logs.log,
    createPusher: (o) => {
      const Kind = throwing.has(o.destination.url) ? ThrowingPusher : RestreamPusher;
      return new Kind({ ...o, createPublisher: factory.create });
    },
    ...options,
  });
  manager.on('status', (s) => statuses.push(s));
  return { manager, made: factory.made, statuses, logs };
}

describe('RestreamManager', () => {
  it('adds and removes destinations live, diffed by URL; kept ones are untouched', () => {
    const s = setup();
    s.manager.setDestinations([{ url: url('a') }, { url: url('b'), name: 'B' }]);
    assert.equal(s.made.length, 0, 'nothing connects before the stream starts');
    s.manager.start(CONFIG);
    assert.equal(s.made.length, 2);
    const [a, b] = s.made;
    a!.accept();
    b!.accept();
    s.manager.tag(key(0));
    // Remove a, keep b (renamed), add c: c connects at once because the stream is live.
    s.manager.setDestinations([{ url: `  ${url('b')} `, name: 'B2' }, { url: url('c') }]);
    assert.equal(a!.ended, 'closed');
    assert.equal(b!.ended, null);
    assert.equal(s.made.length, 3);
    const c = s.made[2]!;
    assert.equal(c.startedCalls, 1);
    c.accept();
    s.manager.tag(key(40));
    assert.equal(a!.sent.length, 1);
    assert.equal(b!.sent.length, 2);
    assert.equal(c.sent.length, 1, 'a new destination starts at the next keyframe');
    const events = s.statuses.map(
      (x) => `${x.url.replace(/^rtmp:\/\/ingest-(\w).*$/, '$1')}:${x.status}${x.name ? `:${x.name}` : ''}`,
    );
    assert.deepEqual(events, ['a:active', 'b:active:B', 'a:stopped', 'b:active:B2', 'c:active']);
    assert.deepEqual(
      s.manager.statuses().map((x) => x.name ?? x.url),
      ['B2', 'rtmp://ingest-c.example.com/app/[redacted]'],
    );
    assert.ok(!s.logs.text().includes('secret-'), 'a stream key reached a log');
  });

  it('turns bad entries into destinations in error, caps valid ones, drops duplicates', () => {
    const s = setup({ maxDestinations: 2 });
    s.manager.setDestinations([
      { url: 'https://example.com/live/secret-x' },
      { url: url(1) },
      { url: url(1), name: 'duplicate' },
      { url: 'rtmp://' },
      { url: url(2) },
      { url: url(3) },
    ]);
    const st = s.manager.statuses();
    assert.deepEqual(
      st.map((x) => [x.state, x.errorCode ?? null]),
      [
        ['invalid', ErrorCodes.RTMP_CLIENT_URL_INVALID],
        ['idle', null],
        ['invalid', ErrorCodes.RTMP_CLIENT_URL_INVALID],
        ['idle', null],
        ['invalid', ErrorCodes.RESTREAM_TOO_MANY_DESTINATIONS],
      ],
    );
    assert.match(st[0]!.error!, /only rtmp:\/\/ and rtmps:\/\//);
    assert.match(st[4]!.error!, /at most 2 destinations/);
    assert.equal(s.statuses.length, 3, 'each error is reported at once');
    s.manager.start(CONFIG);
    assert.equal(s.made.length, 2);
    // Dropping one valid destination brings the third under the cap.
    s.manager.setDestinations([{ url: url(1) }, { url: url(3) }]);
    assert.deepEqual(
      s.manager.statuses().map((x) => x.state),
      ['connecting', 'connecting'],
    );
    assert.equal(s.made.length, 3);
  });

  it('a throwing pusher affects neither the caller nor the other destinations', () => {
    const s = setup({}, new Set([url('bad')]));
    s.manager.setDestinations([{ url: url('bad') }, { url: url('ok') }]);
    s.manager.start(CONFIG);
    for (const p of s.made) p.accept();
    for (let i = 0; i < 100; i++) s.manager.tag(key(i * 40));
    const ok = s.made.find((p) => p.url.host === 'ingest-ok.example.com')!;
    assert.equal(ok.sent.length, 100);
    assert.equal(s.manager.pusherErrors, 100);
    assert.equal(s.logs.lines().filter((l) => l.msg === 'a restream pusher threw').length, 1, 'rate-limited');
  });

  it('reports outputs[] in the managed_stream_status shape, and close() stops everything', () => {
    const s = setup();
    s.manager.setDestinations([{ url: url('a'), name: 'A' }, { url: url('b') }, { url: 'ftp://x/y/z' }]);
    s.manager.start(CONFIG);
    s.made[0]!.accept();
    s.made[1]!.fail(
      ErrorCodes.RTMP_CLIENT_UNAUTHORIZED,
      'the server refused the publish: NetStream.Publish.Unauthorized',
    );
    const outputs = s.manager.outputs();
    assert.deepEqual(outputs, [
      { url: 'rtmp://ingest-a.example.com/app/[redacted]', name: 'A', status: 'active' },
      {
        url: 'rtmp://ingest-b.example.com/app/[redacted]',
        status: 'error',
        error: 'the server refused the publish: NetStream.Publish.Unauthorized',
      },
      {
        url: 'ftp://x/[redacted]',
        status: 'error',
        error: 'invalid URL: only rtmp:// and rtmps:// URLs can be re-streamed',
      },
    ]);
    ManagedStreamStatus.parse({ type: 'managed_stream_status', status: 'active', outputs });

    s.manager.close();
    s.manager.close();
    assert.equal(s.manager.size, 0);
    assert.equal(s.made[0]!.ended, 'closed');
    assert.deepEqual(
      s.statuses.slice(-3).map((x) => x.status),
      ['stopped', 'stopped', 'stopped'],
    );
    s.manager.setDestinations([{ url: url('c') }]);
    s.manager.start(CONFIG);
    assert.equal(s.made.length, 2, 'nothing starts after close');
  });
});
