import assert from 'node:assert/strict';
import { test } from 'node:test';
import { renderMultivariantPlaylist } from '../../../src/hls/multivariant.ts';
import { ladderArgs, ladderFor } from '../../../src/pipeline/ladder.ts';

const sizes = (w: number, h: number) =>
  ladderFor(w, h).map((r) => `${r.name} ${r.width}x${r.height} ${r.videoKbps}k`);

test('ladder per input size: never upscale, portrait-aware, even sizes, the seed qualities', () => {
  const cases: [number, number, string[]][] = [
    // Portrait glasses: the input's own size on top, then smaller rungs.
    [540, 960, ['540p 540x960 2000k', '480p 480x854 1000k', '360p 360x640 600k']],
    [854, 480, ['480p 854x480 1000k', '360p 640x360 600k']],
    [480, 854, ['480p 480x854 1000k', '360p 360x640 600k']],
    [1280, 720, ['720p 1280x720 2000k', '480p 854x480 1000k', '360p 640x360 600k']],
    [1920, 1080, ['720p 1280x720 2000k', '480p 854x480 1000k', '360p 640x360 600k']],
    [1080, 1920, ['720p 720x1280 2000k', '480p 480x854 1000k', '360p 360x640 600k']],
    [320, 240, ['240p 320x240 600k']],
    [641, 361, ['360p 640x360 1000k']],
  ];
  for (const [w, h, expected] of cases) assert.deepEqual(sizes(w, h), expected, `${w}x${h}`);
  for (const [w, h] of [
    [540, 960],
    [854, 480],
    [1920, 1080],
  ] as const) {
    for (const r of ladderFor(w, h)) {
      assert.ok(r.width <= w + 1 && r.height <= h + 1, `no upscale ${r.name}`);
      assert.equal(r.width % 2, 0);
      assert.equal(r.height % 2, 0);
      assert.ok(r.bandwidth > r.videoKbps * 1000, 'BANDWIDTH covers the peak and audio');
    }
  }
  assert.throws(() => ladderFor(0, 10), RangeError);
});

test('one decode, a scaled branch per rung, aligned keyframes, a pipe per rendition', () => {
  const rungs = ladderFor(540, 960);
  const args = ladderArgs(rungs, { hasAudio: true, fragmentMs: 500 });
  const graph = args[args.indexOf('-filter_complex') + 1]!;
  assert.equal(
    graph,
    '[0:v:0]fps=30,split=3[v0in][v1in][v2in];[v0in]scale=540:960,format=yuv420p[v0];' +
      '[v1in]scale=480:854,format=yuv420p[v1];[v2in]scale=360:640,format=yuv420p[v2]',
  );
  assert.equal(args.filter((a) => a === '-i').length, 1, 'one input, one decode');
  assert.deepEqual(
    args.filter((a) => a.startsWith('pipe:')),
    ['pipe:0', 'pipe:1', 'pipe:3', 'pipe:4'],
  );
  assert.equal(args.filter((a) => a === 'expr:gte(t,n_forced*2)').length, 3, 'same forced keyframes');
  assert.equal(args.filter((a) => a === '0:a:0').length, 3, 'audio in every rendition');
  assert.ok(args.includes('2000k') && args.includes('1000k') && args.includes('600k'));
  const silent = ladderArgs(rungs, { hasAudio: false, fragmentMs: 500 });
  assert.ok(!silent.includes('0:a:0') && !silent.includes('aac'));
});

test('input of at most 30 fps keeps its frames; AAC input is copied into every rendition', () => {
  const rungs = ladderFor(540, 960);
  const args = ladderArgs(rungs, { hasAudio: true, fragmentMs: 500, capFps: false, copyAudio: true });
  const graph = args[args.indexOf('-filter_complex') + 1]!;
  assert.ok(graph.startsWith('[0:v:0]split=3[v0in]'), graph);
  assert.equal(
    args.filter((a, i) => a === 'passthrough' && args[i - 1] === '-fps_mode').length,
    3,
    'an output option, so once per rendition',
  );
  assert.equal(args.filter((a, i) => a === 'copy' && args[i - 1] === '-c:a').length, 3);
  assert.ok(!args.includes('aac'), 'no audio encode');
  assert.equal(
    args.filter((a) => a === 'expr:gte(t,n_forced*2)').length,
    3,
    'keyframes still forced on time',
  );
});

test('multivariant playlist: highest first, every attribute the players need', () => {
  const text = renderMultivariantPlaylist([
    {
      uri: '480p/index.m3u8',
      bandwidth: 1_378_000,
      width: 480,
      height: 854,
      codecs: ['avc1.4d401f', 'mp4a.40.2'],
      frameRate: 30,
    },
    {
      uri: '540p/index.m3u8',
      bandwidth: 2_628_000,
      averageBandwidth: 2_100_000,
      width: 540,
      height: 960,
      codecs: ['avc1.4d401f', 'mp4a.40.2'],
      frameRate: 30,
    },
  ]);
  assert.equal(
    text,
    [
      '#EXTM3U',
      '#EXT-X-VERSION:7',
      '#EXT-X-INDEPENDENT-SEGMENTS',
      '#EXT-X-STREAM-INF:BANDWIDTH=2628000,AVERAGE-BANDWIDTH=2100000,RESOLUTION=540x960,CODECS="avc1.4d401f,mp4a.40.2",FRAME-RATE=30.000',
      '540p/index.m3u8',
      '#EXT-X-STREAM-INF:BANDWIDTH=1378000,RESOLUTION=480x854,CODECS="avc1.4d401f,mp4a.40.2",FRAME-RATE=30.000',
      '480p/index.m3u8',
      '',
    ].join('\n'),
  );
});
