/**
 * The packager's low-latency side with an injected clock: parts grouped from fragments (whole frames, 85–100 %
 * of PART-TARGET), audio-only fragments, what a playlist lists (parts near the end, the open segment, the
 * hint, a discontinuity only once complete), blocking-reload arithmetic, retention for delta updates,
 * discards that keep what was shown, PROGRAM-DATE-TIME from arrival times.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Packager, type PackagerOptions } from '../../../src/hls/packager.ts';
import type { Fmp4Fragment, Fmp4Init } from '../../../src/media/fmp4.ts';

const VIDEO = 1;
const AUDIO = 2;
const init = (n: number): Fmp4Init => ({
  data: Buffer.from(`init${n}`),
  tracks: [
    { id: VIDEO, kind: 'video', timescale: 90_000, codec: 'avc1.42c01f', width: 540, height: 960 },
    { id: AUDIO, kind: 'audio', timescale: 44_100, codec: 'mp4a.40.2', sampleRate: 44_100, channels: 1 },
  ],
});

let seq = 0;
/** A fragment with video (and audio) from `start` for `duration` seconds. */
function video(start: number, duration: number, keyframe: boolean): Fmp4Fragment {
  seq++;
  return {
    data: Buffer.from(`v${seq};`),
    sequence: seq,
    runs: [
      {
        trackId: VIDEO,
        baseDecodeTime: Math.round(start * 90_000),
        sampleCount: 1,
        duration: Math.round(duration * 90_000),
        firstSampleIsSync: keyframe,
      },
      {
        trackId: AUDIO,
        baseDecodeTime: Math.round(start * 44_100),
        sampleCount: 2,
        duration: 2048,
        firstSampleIsSync: true,
      },
    ],
    keyframe,
    startSeconds: start,
    durationSeconds: duration,
  };
}

/** An audio-only fragment (FFmpeg flushed on audio between two sparse frames). */
function audioOnly(start: number): Fmp4Fragment {
  seq++;
  return {
    data: Buffer.from(`a${seq};`),
    sequence: seq,
    runs: [
      {
        trackId: AUDIO,
        baseDecodeTime: Math.round(start * 44_100),
        sampleCount: 2,
        duration: 2048,
        firstSampleIsSync: true,
      },
    ],
    keyframe: false,
    startSeconds: start,
    durationSeconds: 2048 / 44_100,
  };
}

function clock(start = 1_000_000): { now: () => number; set: (ms: number) => void } {
  let t = start;
  return { now: () => t, set: (ms) => (t = ms) };
}

/**
 * Feeds `framesPerFragment` frames of 1/fps per fragment with a keyframe every `gop` seconds, from frame
 * `from` to `to` (frame numbers), optionally with an audio-only fragment after each one.
 */
function feed(
  p: Packager,
  o: { fps: number; gop: number; from?: number; to: number; framesPerFragment?: number; audio?: boolean },
): void {
  const per = o.framesPerFragment ?? 1;
  const gopFrames = Math.round(o.gop * o.fps);
  for (let n = o.from ?? 0; n < o.to; n += per) {
    // A fragment never spans a keyframe: FFmpeg cuts at every one.
    const next = Math.min(n + per, Math.ceil((n + 1) / gopFrames) * gopFrames, o.to);
    p.pushFragment(video(n / o.fps, (next - n) / o.fps, n % gopFrames === 0));
    if (o.audio) p.pushFragment(audioOnly((next - 0.5) / o.fps));
    n = next - per;
  }
}

const ll = (extra: Partial<PackagerOptions> = {}): Packager =>
  new Packager({
    segmentSeconds: 2,
    targetDuration: 2,
    listSize: 5,
    lowLatency: true,
    partSeconds: 0.5,
    prefix: 'aaaaaaaa',
    ...extra,
  });

describe('LL packager: parts', () => {
  const rates = [
    { fps: 9, framesPerFragment: 1, audio: true },
    { fps: 15, framesPerFragment: 1, audio: false },
    { fps: 30, framesPerFragment: 2, audio: false },
    { fps: 30, framesPerFragment: 1, audio: true },
  ];
  for (const r of rates) {
    it(`groups whole frames at ${r.fps} fps (${r.framesPerFragment} a fragment${r.audio ? ', audio-only between' : ''}) into parts of 85–100 % of PART-TARGET`, () => {
      const p = ll();
      p.setInit(init(0));
      feed(p, { fps: r.fps, gop: 2, to: r.fps * 8, framesPerFragment: r.framesPerFragment, audio: r.audio });
      p.closeOpen();
      assert.equal(p.stats.partBreaches, 0);
      assert.equal(p.stats.shortParts, 0);
      let n = 0;
      for (const s of p.segments) {
        assert.ok(s.independent, `segment ${s.msn} starts with a keyframe`);
        assert.ok(s.parts[0]!.independent, `segment ${s.msn}'s first part is independent`);
        const sum = s.parts.reduce((t, x) => t + x.duration, 0);
        assert.ok(Math.abs(sum - s.duration) < 1e-9, `parts add up to segment ${s.msn}`);
        assert.deepEqual(Buffer.concat(s.parts.map((x) => x.data)), s.data);
        s.parts.forEach((part, i) => {
          assert.equal(part.n, n++, 'parts are numbered in order across segments');
          assert.equal(part.uri, `aaaaaaaa-part${part.n}.m4s`);
          assert.ok(part.duration <= 0.5 + 1e-6, `part ${part.n} lasts ${part.duration}`);
          assert.ok(part.duration > 0, 'no part without media time');
          if (i < s.parts.length - 1)
            assert.ok(part.duration >= 0.425 - 1e-6, `part ${part.n}: ${part.duration}`);
        });
      }
      assert.deepEqual(
        p.segments.map((s) => Math.round(s.duration * 1000)),
        [2000, 2000, 2000, 2000],
      );
    });
  }

  it('puts the audio-only fragments before a keyframe into the next segment (no part of zero time)', () => {
    const p = ll();
    p.setInit(init(0));
    // 16 frames at 9 fps, audio after each: the fourth part closes on frame 15, its audio opens a fifth.
    feed(p, { fps: 9, gop: 20, to: 16, audio: true });
    p.pushFragment(video(16 / 9, 1 / 9, true)); // a keyframe past 1.5 s: a new segment
    assert.equal(p.segments.length, 1);
    const first = p.segments[0]!;
    assert.ok(
      first.fragments.at(-1)!.runs.some((r) => r.trackId === VIDEO),
      'the segment ends on video',
    );
    assert.ok(first.parts.every((x) => x.duration > 0));
    assert.equal(p.stats.droppedFragments, 0);
    p.closeOpen();
    const second = p.segments[1]!;
    assert.equal(second.fragments.length, 2, 'the audio that came before the keyframe, the keyframe');
    assert.ok(!second.fragments[0]!.runs.some((r) => r.trackId === VIDEO));
    assert.ok(second.independent && second.parts[0]!.independent, 'its first video is a keyframe');
  });

  it('states a frame longer than PART-TARGET as it is and counts it', () => {
    const p = ll();
    p.setInit(init(0));
    p.pushFragment(video(0, 0.1, true));
    p.pushFragment(video(0.1, 0.4, false));
    p.pushFragment(video(0.5, 0.1, false));
    p.pushFragment(video(0.6, 0.7, false)); // a 0.7 s frame gap (a stalled sender)
    p.pushFragment(video(1.3, 0.1, false));
    p.closeOpen();
    assert.deepEqual(
      p.segments[0]!.parts.map((x) => Math.round(x.duration * 1000)),
      [500, 100, 700, 100],
    );
    assert.equal(p.stats.partBreaches, 1);
    assert.equal(p.stats.longestPart, 0.7);
    assert.equal(p.stats.shortParts, 1, 'the 0.1 s before it could not grow');
  });
});

describe('LL packager: the playlist', () => {
  it('lists parts for the last three TARGETDURATIONs and the open segment, then the preload hint', () => {
    const p = ll({ listSize: 20 });
    p.setInit(init(0));
    feed(p, { fps: 15, gop: 2, to: 15 * 20 + 8 }); // 10 segments and 8 frames
    const text = p.playlist();
    assert.match(
      text,
      /^#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-TARGETDURATION:2\n#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL=12\.000,HOLD-BACK=6\.000,PART-HOLD-BACK=1\.500\n#EXT-X-PART-INF:PART-TARGET=0\.500\n/,
    );
    const listedWithParts = p.segments.filter((s) => text.includes(`URI="${s.parts[0]!.uri}"`));
    assert.deepEqual(
      listedWithParts.map((s) => s.msn),
      [7, 8, 9],
      'segments ending within 6 s of the end',
    );
    // The open segment's one part (7 frames), and the hint for the next.
    assert.match(
      text,
      /aaaaaaaa-seg9\.m4s\n#EXT-X-PROGRAM-DATE-TIME:[^\n]+\n#EXT-X-PART:DURATION=0\.467,URI="aaaaaaaa-part(\d+)\.m4s",INDEPENDENT=YES\n#EXT-X-PRELOAD-HINT:TYPE=PART,URI="aaaaaaaa-part(\d+)\.m4s"\n$/,
    );
    const [, open, hint] =
      /part(\d+)\.m4s",INDEPENDENT=YES\n#EXT-X-PRELOAD-HINT:TYPE=PART,URI="aaaaaaaa-part(\d+)/.exec(text)!;
    assert.equal(Number(hint), Number(open) + 1);
    assert.equal(p.nextPartUri, `aaaaaaaa-part${hint}.m4s`);
    assert.ok(p.isNextPart(p.nextPartUri));
    assert.deepEqual(p.edge, { lastMsn: 9, openMsn: 10, openParts: 1 });
    assert.ok(p.resource(`aaaaaaaa-part${open}.m4s`), 'parts are served');
    assert.ok(p.resource('aaaaaaaa-part0.m4s'), 'old parts too, as long as their segment');
    assert.equal(p.resource(p.nextPartUri), undefined, 'not the next one before it exists');
    assert.equal(p.resource('bbbbbbbb-part0.m4s'), undefined);
  });

  it("lists a new run's first part after its DISCONTINUITY and EXT-X-MAP, on a segment boundary", () => {
    const p = ll();
    p.setInit(init(0));
    feed(p, { fps: 15, gop: 2, to: 38 }); // a segment and one part of the next
    p.setInit(init(1)); // the publisher is back: a new FFmpeg, a new timeline; the open segment closes
    assert.deepEqual(
      p.segments.map((s) => Math.round(s.duration * 1000)),
      [2000, 533],
    );
    const between = p.playlist();
    assert.match(between, /aaaaaaaa-seg1\.m4s\n#EXT-X-PRELOAD-HINT:TYPE=PART,URI="aaaaaaaa-part7\.m4s"\n$/);
    feed(p, { fps: 15, gop: 2, to: 7 });
    assert.deepEqual(p.edge, { lastMsn: 1, openMsn: 2, openParts: 1 });
    assert.match(
      p.playlist(),
      /aaaaaaaa-seg1\.m4s\n#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI="aaaaaaaa-init1\.mp4"\n#EXT-X-PROGRAM-DATE-TIME:[^\n]+\n#EXT-X-PART:DURATION=0\.467,URI="aaaaaaaa-part7\.m4s",INDEPENDENT=YES\n#EXT-X-PRELOAD-HINT:TYPE=PART,URI="aaaaaaaa-part8\.m4s"\n$/,
    );
  });

  it('is startable once complete segments after the first hold PART-HOLD-BACK, or the start grace passed', () => {
    let now = 0;
    const timed = ll({ now: () => now, startGraceMs: 1000 });
    const fired: number[] = [];
    timed.on('startable', () => fired.push(now));
    timed.setInit(init(0));
    feed(timed, { fps: 15, gop: 2, to: 31 }); // the first segment completes at now = 0
    assert.equal(timed.startable, false);
    now = 999;
    feed(timed, { fps: 15, gop: 2, from: 31, to: 38 });
    assert.equal(timed.startable, false, 'within the grace, the PART-HOLD-BACK rule decides');
    now = 1000;
    feed(timed, { fps: 15, gop: 2, from: 38, to: 45 });
    assert.equal(timed.startable, true, 'a second after the first segment, whatever the rule says');
    assert.deepEqual(fired, [1000], "'startable' once, when it first holds");
    timed.end();
    const p = ll({ startGraceMs: 60_000 });
    assert.equal(p.startable, false);
    p.setInit(init(0));
    feed(p, { fps: 15, gop: 2, to: 30 + 29 }); // a segment and 1.93 s of parts
    assert.ok(p.ready);
    assert.equal(p.startable, false, 'the second segment is not complete');
    feed(p, { fps: 15, gop: 2, from: 59, to: 61 });
    assert.equal(p.startable, true);
    let at = 0;
    const gone = ll({ now: () => at });
    gone.setInit(init(0));
    feed(gone, { fps: 15, gop: 2, to: 40 });
    assert.equal(gone.startable, false);
    gone.closeOpen(); // the publisher left: FFmpeg flushed, nothing more is coming for now
    assert.equal(gone.startable, false, 'no open segment is also the moment between two segments');
    at = 1000;
    assert.equal(gone.startable, true, 'the grace covers it');
    gone.end();
    const short = ll({ segmentSeconds: 1, targetDuration: 1, startGraceMs: 60_000 });
    short.setInit(init(0));
    feed(short, { fps: 15, gop: 1, to: 15 * 2 + 1 });
    assert.equal(short.startable, false, '1 s segments: one after the first is not 1.5 s');
    feed(short, { fps: 15, gop: 1, from: 31, to: 46 });
    assert.equal(short.startable, true);
    const classic = new Packager({ segmentSeconds: 2, targetDuration: 2, listSize: 5 });
    classic.setInit(init(0));
    feed(classic, { fps: 15, gop: 2, to: 31 });
    assert.equal(classic.startable, true, 'a classic stream is startable when ready');
  });

  it('keeps seven TARGETDURATIONs listed so a delta update skips something', () => {
    const c = clock();
    const p = ll({ now: c.now });
    p.setInit(init(0));
    feed(p, { fps: 15, gop: 2, to: 15 * 40 + 1 }); // 20 complete segments
    assert.equal(p.segments.length, 7, '14 s of 2 s segments, more than HLS_LIST_SIZE=5');
    assert.equal(p.segments[0]!.msn, 13);
    const delta = p.playlist({ skip: true });
    assert.match(
      delta,
      /#EXT-X-MEDIA-SEQUENCE:13\n#EXT-X-DISCONTINUITY-SEQUENCE:0\n#EXT-X-SKIP:SKIPPED-SEGMENTS=1\n/,
    );
    assert.doesNotMatch(delta, /aaaaaaaa-seg13\.m4s/);
    assert.match(
      delta,
      /#EXT-X-MAP:URI="aaaaaaaa-init0\.mp4"\n[^\n]+\n(#EXT-X-PART[^\n]+\n)*#EXTINF:2\.000,\naaaaaaaa-seg14\.m4s/,
    );
    p.end();
    assert.doesNotMatch(p.playlist({ skip: true }), /SKIP:/, 'no delta update once ended');
    assert.doesNotMatch(p.playlist(), /PRELOAD-HINT/);
  });

  it('is a classic playlist with low latency off', () => {
    const p = new Packager({ segmentSeconds: 2, targetDuration: 2, listSize: 5, prefix: 'aaaaaaaa' });
    p.setInit(init(0));
    feed(p, { fps: 15, gop: 2, to: 15 * 4 + 3 });
    const text = p.playlist({ skip: true });
    assert.match(text, /^#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n/);
    assert.doesNotMatch(text, /PART|SERVER-CONTROL|SKIP|PRELOAD/);
    assert.equal(p.isNextPart(p.nextPartUri), false);
  });
});

describe('LL packager: blocking reload arithmetic', () => {
  // Three complete segments (MSN 0–2) of four parts each (0.467 × 4 + 0.133), the open MSN 3 with two parts.
  const p = ll();
  p.setInit(init(0));
  feed(p, { fps: 15, gop: 2, to: 15 * 6 + 14 });
  it('stands where expected', () => {
    assert.deepEqual(p.edge, { lastMsn: 2, openMsn: 3, openParts: 2 });
    assert.deepEqual(
      p.segments.map((s) => s.parts.length),
      [5, 5, 5],
    );
  });
  const has: [number, number | undefined, boolean][] = [
    [2, undefined, true],
    [3, undefined, false],
    [0, undefined, true],
    [3, 0, true],
    [3, 1, true],
    [3, 2, false],
    [2, 4, true],
    [2, 5, true], // past the last part of 2: part 0 of 3
    [2, 40, true],
    [1, 9, true], // → part 0 of 2
    [4, 0, false],
  ];
  for (const [msn, part, expected] of has) {
    it(`has(${msn}, ${part}) is ${expected}`, () => assert.equal(p.has(msn, part), expected));
  }
  // Advance Part Limit at 0.5 s parts: 6 parts past the last listed one (part 1 of MSN 3).
  const tooFar: [number, number | undefined, boolean][] = [
    [4, undefined, false],
    [5, undefined, true],
    [3, 7, false],
    [3, 8, true],
    [4, 5, false],
    [4, 6, true],
    [0, 0, false],
  ];
  for (const [msn, part, expected] of tooFar) {
    it(`tooFarAhead(${msn}, ${part}) is ${expected}`, () => assert.equal(p.tooFarAhead(msn, part), expected));
  }
});

describe('LL packager: what was shown stays', () => {
  it('a discard (profile switch) keeps shown parts, drops the rest, never reuses a part name', () => {
    const p = ll({ segmentSeconds: 4, targetDuration: 6 });
    p.setInit(init(0));
    feed(p, { fps: 15, gop: 10, to: 30 }); // 2 s of a long GOP: parts 0–3 shown, 2 frames open
    assert.equal(p.edge.openParts, 4);
    const shown = p.playlist();
    p.discardFrom(0); // the GOP from 0 s is replayed by the next FFmpeg
    assert.equal(p.edge.openParts, 4, 'shown parts stay');
    assert.equal(p.stats.droppedFragments, 2);
    p.closeOpen();
    assert.equal(p.segments[0]!.parts.length, 4);
    for (const part of p.segments[0]!.parts) assert.ok(shown.includes(part.uri));
    p.setInit(init(1));
    feed(p, { fps: 15, gop: 2, to: 31 });
    const names = p.segments.flatMap((s) => s.parts.map((x) => x.n));
    assert.equal(new Set(names).size, names.length);
  });

  it('a discard of a segment nobody saw (a new run) works as without low latency', () => {
    const p = ll();
    p.setInit(init(0));
    feed(p, { fps: 15, gop: 2, to: 31 });
    p.setInit(init(1));
    feed(p, { fps: 15, gop: 1, to: 20 }); // hidden: its first segment is not complete
    p.discardFrom(1);
    p.closeOpen();
    assert.equal(Math.round(p.segments.at(-1)!.duration * 1000), 1000);
    assert.ok(p.segments.at(-1)!.discontinuity);
  });
});

describe('LL packager: PROGRAM-DATE-TIME', () => {
  it('advances with the media within a run, from the smallest arrival offset when first listed', () => {
    const c = clock(0);
    const T = Date.UTC(2026, 0, 1);
    const p = ll({ now: c.now });
    p.setInit(init(0));
    // FFmpeg start-up: the first three frames come 400 ms late, then 50 ms after their media time; the
    // first part (7 frames) is listed when the seventh comes.
    for (let n = 0; n < 15 * 6; n++) {
      const end = (n + 1) / 15;
      c.set(T + end * 1000 + (n < 3 ? 400 : n < 30 ? 50 : 20 + (n % 3) * 30));
      p.pushFragment(video(n / 15, 1 / 15, n % 30 === 0));
    }
    assert.deepEqual(
      p.segments.map((s) => s.programDateTime - T),
      [50, 2050],
      'one offset per run: PDTs agree with the EXTINFs',
    );
  });

  it('gives a new run its own offset, fixed when its first part is listed', () => {
    const c = clock(0);
    const T = Date.UTC(2026, 0, 1);
    const p = ll({ now: c.now });
    p.setInit(init(0));
    c.set(T);
    feed(p, { fps: 15, gop: 2, to: 31 });
    p.setInit(init(1)); // the publisher came back after 10 s: media from 0 again, 30 ms behind the wall clock
    for (let n = 0; n < 61; n++) {
      c.set(T + 10_000 + ((n + 1) / 15) * 1000 + 30);
      p.pushFragment(video(n / 15, 1 / 15, n % 30 === 0));
    }
    const [first, second] = p.segments.slice(-2);
    assert.ok(first!.discontinuity);
    assert.equal(first!.programDateTime - T, 10_030);
    assert.equal(second!.programDateTime - T, 12_030);
  });
});
