/**
 * One restream destination with a fake publisher: the state machine and what it reports, configuration
 * first and keyframe start, rebased and monotonic timestamps, the backoff schedule (fake timers), drops on a
 * slow destination, the stall rule, invalid URLs, close().
 */
import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import { FlvTagType, type MediaTag } from '../../../src/media/flv-tag.ts';
import {
  DEFAULT_BACKOFF_MS,
  type PusherStatus,
  RestreamPusher,
  type RestreamPusherOptions,
  type RestreamStart,
} from '../../../src/restream/pusher.ts';
import { ErrorCodes } from '../../../src/shared/errors.ts';
import { captureLogs } from '../../helpers/log-capture.ts';
import { fakeFactory } from './fake-publisher.ts';

const KEY = 'yt-secret-key-1234';
const URL = `rtmp://a.rtmp.youtube.com/live2/${KEY}`;

const video = (timestamp: number, keyframe = false, size = 100): MediaTag => ({
  type: FlvTagType.Video,
  timestamp,
  data: Buffer.alloc(size, keyframe ? 0x17 : 0x27),
  keyframe,
  isConfig: false,
});
const audio = (timestamp: number, size = 20): MediaTag => ({
  type: FlvTagType.Audio,
  timestamp,
  data: Buffer.alloc(size, 0xaf),
  keyframe: true,
  isConfig: false,
});
const CONFIG: RestreamStart = {
  metadataTag: Buffer.from('meta'),
  videoConfig: {
    type: FlvTagType.Video,
    timestamp: 5000,
    data: Buffer.from('17000000aa', 'hex'),
    keyframe: true,
    isConfig: true,
  },
  audioConfig: {
    type: FlvTagType.Audio,
    timestamp: 5000,
    data: Buffer.from('af001210', 'hex'),
    keyframe: true,
    isConfig: true,
  },
  hasVideo: true,
};

function setup(options: Partial<RestreamPusherOptions> = {}) {
  const logs = captureLogs();
  const factory = fakeFactory();
  let clock = 0;
  const statuses: PusherStatus[] = [];
  const pusher = new RestreamPusher({
    destination: { url: URL, name: 'YouTube' },
    log: logs.log,
    createPublisher: factory.create,
    now: () => clock,
    ...options,
  });
  pusher.on('status', (s) => statuses.push(s));
  return {
    pusher,
    made: factory.made,
    statuses,
    logs,
    advance: (ms: number) => {
      clock += ms;
    },
    /** Status values reported so far, in order. */
    reported: () => statuses.map((s) => s.status),
    last: () => factory.made[factory.made.length - 1]!,
  };
}

describe('RestreamPusher', () => {
  it('sends the configuration at 0, then media from the first keyframe, rebased to 0', () => {
    const s = setup();
    assert.equal(s.pusher.state, 'idle');
    assert.equal(s.pusher.status().status, null, 'nothing to report before the first attempt');
    s.pusher.tag(video(4000, true)); // before start(): ignored
    s.pusher.start(CONFIG);
    assert.equal(s.pusher.state, 'connecting');
    assert.equal(s.made.length, 1);
    assert.equal(s.last().url.streamName, KEY);
    assert.equal(s.last().startedCalls, 1);
    s.pusher.tag(video(5000, true)); // not yet publishing: ignored
    s.last().accept();
    assert.equal(s.pusher.state, 'active');
    assert.deepEqual(s.reported(), ['active']);
    for (const t of [audio(5010), video(5020), video(5040, true), audio(5030), audio(5050), video(5080)])
      s.pusher.tag(t);
    assert.deepEqual(s.last().timeline(), ['mc@0', 'vc@0', 'ac@0', 'v@0', 'a@0', 'a@10', 'v@40']);
    const st = s.pusher.status();
    assert.equal(st.url, 'rtmp://a.rtmp.youtube.com/live2/[redacted]');
    assert.equal(st.name, 'YouTube');
    assert.match(st.id, /^[0-9a-f]{12}$/);
    assert.equal(
      st.bytesSent,
      s.last().sent.reduce((n, x) => n + x.data.length + 12, 0),
    );
    assert.ok(!s.logs.text().includes(KEY), 'the stream key reached a log');
  });

  it('starts with any tag when the stream has no video', () => {
    const s = setup();
    s.pusher.start({ ...CONFIG, videoConfig: null, hasVideo: false });
    s.last().accept();
    s.pusher.tag(audio(300));
    s.pusher.tag(audio(323));
    assert.deepEqual(s.last().timeline(), ['mc@0', 'ac@0', 'a@0', 'a@23']);
  });

  it('retries on the backoff schedule (first retry within 5 s), reports error → active, resumes at a keyframe', (t: TestContext) => {
    t.mock.timers.enable({ apis: ['setTimeout'] });
    assert.deepEqual(DEFAULT_BACKOFF_MS, [1000, 2000, 5000, 10_000, 30_000]);
    assert.ok(DEFAULT_BACKOFF_MS[0]! <= 5000, 'first retry within 5 s');
    const s = setup();
    s.pusher.start(CONFIG);
    s.last().accept();
    s.pusher.tag(video(1000, true));
    s.pusher.tag(video(1100));
    s.last().fail(ErrorCodes.RTMP_CLIENT_DISCONNECTED, 'the server closed the connection');
    assert.equal(s.pusher.state, 'retrying');
    assert.deepEqual(s.reported(), ['active', 'error']);
    assert.equal(s.statuses[1]!.error, 'the server closed the connection');
    assert.equal(s.statuses[1]!.errorCode, ErrorCodes.RTMP_CLIENT_DISCONNECTED);

    // Every later failure waits the next step; the last step repeats.
    const waits: number[] = [];
    for (let attempt = 0; attempt < 7; attempt++) {
      const before = s.made.length;
      let waited = 0;
      while (s.made.length === before) {
        t.mock.timers.tick(250);
        waited += 250;
        assert.ok(waited <= 60_000, 'a retry came');
      }
      waits.push(waited);
      assert.equal(s.pusher.state, 'connecting');
      if (attempt < 6) s.last().fail(ErrorCodes.RTMP_CLIENT_CONNECT_FAILED, 'cannot connect (ECONNREFUSED)');
    }
    assert.deepEqual(waits, [1000, 2000, 5000, 10_000, 30_000, 30_000, 30_000]);
    assert.deepEqual(s.reported(), ['active', 'error', 'error'], 'a new error message is reported once');
    assert.equal(s.pusher.status().reconnects, 7);

    // Back: configuration again at 0, media from the next keyframe, timestamps from 0 again.
    s.last().accept();
    s.pusher.tag(video(90_000));
    s.pusher.tag(audio(90_010));
    s.pusher.tag(video(90_100, true));
    s.pusher.tag(audio(90_120));
    assert.deepEqual(s.last().timeline(), ['mc@0', 'vc@0', 'ac@0', 'v@0', 'a@20']);
    assert.deepEqual(s.reported(), ['active', 'error', 'error', 'active']);
    assert.equal(s.pusher.status().error, undefined);
  });

  it('starts the backoff over after a connection that lasted', (t: TestContext) => {
    t.mock.timers.enable({ apis: ['setTimeout'] });
    const s = setup({ backoffMs: [100, 1000], stableAfterMs: 10_000 });
    s.pusher.start(CONFIG);
    s.last().fail(ErrorCodes.RTMP_CLIENT_CONNECT_FAILED);
    t.mock.timers.tick(100);
    s.last().accept();
    s.last().fail(ErrorCodes.RTMP_CLIENT_DISCONNECTED); // short-lived: next wait is the second step
    t.mock.timers.tick(999);
    assert.equal(s.made.length, 2);
    t.mock.timers.tick(1);
    assert.equal(s.made.length, 3);
    s.last().accept();
    s.advance(10_000); // this one lasted
    s.last().fail(ErrorCodes.RTMP_CLIENT_DISCONNECTED);
    t.mock.timers.tick(100);
    assert.equal(s.made.length, 4, 'back to the first step');
  });

  it('on a publisher reconnect upstream, resends what changed, waits for a keyframe, keeps time monotonic', () => {
    const s = setup();
    s.pusher.start(CONFIG);
    s.last().accept();
    s.pusher.tag(video(10_000, true));
    s.pusher.tag(video(12_000));
    // The glasses reconnect: timestamps restart near 0, a new video configuration.
    const newVideo = { ...CONFIG.videoConfig!, data: Buffer.from('17000000bb', 'hex') };
    s.pusher.start({ ...CONFIG, videoConfig: newVideo });
    s.pusher.tag(audio(5));
    s.pusher.tag(video(40, true));
    s.pusher.tag(audio(50));
    s.pusher.tag(video(100));
    assert.deepEqual(s.last().timeline(), [
      'mc@0',
      'vc@0',
      'ac@0',
      'v@0',
      'v@2000',
      'vc@2000',
      'v@2001',
      'a@2011',
      'v@2061',
    ]);
    // Repaired upstream timestamps that just continue are kept as they are.
    s.pusher.start(CONFIG);
    s.pusher.tag(video(160, true));
    assert.deepEqual(s.last().timeline().slice(-2), ['vc@2061', 'v@2121']);
  });

  it('forwards configuration changes mid-stream at once, even while dropping', () => {
    const s = setup({ maxQueueBytes: 1000 });
    s.pusher.start(CONFIG);
    s.last().accept();
    s.pusher.tag(video(0, true));
    s.last().writableLength = 5000;
    s.pusher.tag(video(40)); // dropped
    s.pusher.tag({ ...CONFIG.audioConfig!, timestamp: 50, data: Buffer.from('af001290', 'hex') });
    assert.deepEqual(s.last().timeline(), ['mc@0', 'vc@0', 'ac@0', 'v@0', 'ac@0']);
    assert.equal(s.pusher.status().dropped, 1);
  });

  it('drops media while the destination is backed up and resumes at a keyframe once it drained', () => {
    const s = setup({ maxQueueBytes: 10_000 });
    s.pusher.start(CONFIG);
    const p = s.last();
    p.accept();
    s.pusher.tag(video(0, true));
    p.writableLength = 10_001; // over the bound
    for (let ts = 40; ts < 400; ts += 40) s.pusher.tag(ts % 200 === 0 ? video(ts, true) : video(ts));
    assert.equal(s.pusher.status().dropped, 9, 'keyframes too while still backed up');
    p.writableLength = 6000; // drained, but not below half: still dropping
    s.pusher.tag(video(400, true));
    p.writableLength = 4000; // below half, not a keyframe: still dropping
    s.pusher.tag(video(440));
    s.pusher.tag(audio(450));
    s.pusher.tag(video(480, true)); // resumes here
    s.pusher.tag(audio(490));
    assert.equal(s.pusher.status().dropped, 12);
    assert.deepEqual(s.last().timeline().slice(3), ['v@0', 'v@480', 'a@490']);
    assert.equal(s.pusher.state, 'active', 'slow is not failed');
    assert.match(s.logs.text(), /destination too slow/);
  });

  it('bounds the queue by seconds of the stream’s own rate', () => {
    const s = setup({ maxQueueBytes: 4 * 1024 * 1024, maxQueueSeconds: 2 });
    s.pusher.start(CONFIG);
    const p = s.last();
    p.accept();
    // 100 kB/s for 3 s: a 2-second bound is about 200 kB, lifted to the 256 KiB floor.
    for (let ts = 0; ts <= 3000; ts += 100) s.pusher.tag(video(ts, ts === 0, 10_000));
    p.writableLength = 300 * 1024;
    s.pusher.tag(video(3100));
    assert.equal(s.pusher.status().dropped, 1);
  });

  it('reconnects a destination that stays backed up past the stall timeout', (t: TestContext) => {
    t.mock.timers.enable({ apis: ['setTimeout'] });
    const s = setup({ maxQueueBytes: 1000, stallTimeoutMs: 3000, backoffMs: [500] });
    s.pusher.start(CONFIG);
    const p = s.last();
    p.accept();
    s.pusher.tag(video(0, true));
    p.writableLength = 2000;
    s.pusher.tag(video(40));
    s.advance(2999);
    s.pusher.tag(video(80));
    assert.equal(s.pusher.state, 'active');
    s.advance(1);
    s.pusher.tag(video(120));
    assert.equal(s.pusher.state, 'retrying');
    assert.equal(p.ended, 'destroyed');
    const st = s.pusher.status();
    assert.equal(st.status, 'error');
    assert.equal(st.errorCode, ErrorCodes.RESTREAM_DESTINATION_STALLED);
    t.mock.timers.tick(500);
    assert.equal(s.made.length, 2);
  });

  it('an invalid URL is an error from the start and never connects', () => {
    const s = setup({ destination: { url: `http://example.com/live/${KEY}` } });
    assert.equal(s.pusher.state, 'invalid');
    const st = s.pusher.status();
    assert.equal(st.status, 'error');
    assert.equal(st.errorCode, ErrorCodes.RTMP_CLIENT_URL_INVALID);
    assert.match(st.error!, /only rtmp:\/\/ and rtmps:\/\//);
    assert.equal(st.url, 'http://example.com/[redacted]');
    s.pusher.start(CONFIG);
    s.pusher.tag(video(0, true));
    assert.equal(s.made.length, 0);
    s.pusher.close();
    assert.equal(s.pusher.status().status, 'stopped');
    assert.ok(!s.logs.text().includes(KEY), 'the stream key reached a log');
  });

  it('close() unpublishes, cancels a pending retry and reports stopped once', (t: TestContext) => {
    t.mock.timers.enable({ apis: ['setTimeout'] });
    const s = setup();
    s.pusher.start(CONFIG);
    s.last().accept();
    s.pusher.close();
    assert.equal(s.last().ended, 'closed');
    assert.deepEqual(s.reported(), ['active', 'stopped']);

    const r = setup();
    r.pusher.start(CONFIG);
    r.last().fail(ErrorCodes.RTMP_CLIENT_CONNECT_FAILED);
    r.pusher.close();
    r.pusher.close();
    t.mock.timers.tick(60_000);
    assert.equal(r.made.length, 1, 'no retry after close');
    assert.deepEqual(r.reported(), ['error', 'stopped']);
    assert.equal(r.pusher.status().error, undefined);
  });
});
