/**
 * The DASH presentation (src/dash/presentation.ts) over real packagers fed by the real CMAF writer, on an
 * injected clock: the MPD it makes passes the strict check; its timeline is the segments' own decode times
 * and durations under their HLS names; availabilityStartTime and each Period's start and offset stay put as
 * segments come and go; a new run (publisher back) is a new Period that starts after the one before; an
 * ended stream is a static MPD laid from 0; ABR rungs are Representations of one AdaptationSet.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { renderMpd } from '../../../src/dash/mpd.ts';
import { DashPresentation, runOf } from '../../../src/dash/presentation.ts';
import { type CheckedMpd, checkMpd } from '../../helpers/mpd-check.ts';
import { stream, view } from './fixture.ts';

const check = (p: DashPresentation): CheckedMpd => {
  const model = p.model(view);
  assert.ok(model, 'an MPD');
  return checkMpd(renderMpd(model));
};

describe('dash presentation', () => {
  it('is not ready before the first segment', () => {
    const s = stream('aaaaaaaa');
    const p = new DashPresentation([{ id: 'v0', packager: s.packager }]);
    assert.equal(p.model(view), null);
    s.newRun();
    s.feed(0, 1500);
    assert.equal(p.model(view), null);
  });

  it('lists the segments under their HLS names with their own times, and keeps its anchors as they slide', () => {
    const s = stream('aaaaaaaa');
    const p = new DashPresentation([{ id: 'v0', packager: s.packager }]);
    s.newRun();
    s.feed(0, 6100);
    const m = check(p);
    const first = s.packager.segments[0]!;
    assert.equal(m.type, 'dynamic');
    assert.equal(m.availabilityStartTime, first.programDateTime);
    assert.equal(m.periods.length, 1);
    const period = m.periods[0]!;
    assert.equal(period.id, 'p0');
    assert.equal(period.start, 0);
    assert.equal(period.contentType, 'video');
    const r = period.representations[0]!;
    assert.deepEqual(r.codecs, ['avc1.64001f', 'mp4a.40.2']);
    assert.equal(r.timescale, 90000);
    assert.equal(r.initialization, '../../../hls/u/s/aaaaaaaa-init0.mp4');
    assert.equal(r.media, '../../../hls/u/s/aaaaaaaa-seg$Number$.m4s');
    assert.deepEqual(
      r.segments.map((x) => [x.number, x.t, x.d]),
      s.packager.segments.map((x) => [
        x.msn,
        Math.round(x.fragments[0]!.runs[0]!.baseDecodeTime),
        Math.round(x.duration * 90000),
      ]),
    );
    assert.equal(r.presentationTimeOffset, r.segments[0]!.t);
    assert.ok(r.bandwidth > 0);
    // Media of segment k plays at AST + start + (t - pto) / ts: the wall-clock date HLS gives it.
    for (const seg of r.segments) {
      const hlsSeg = s.packager.segments.find((x) => x.msn === seg.number)!;
      const at =
        m.availabilityStartTime! + (period.start + (seg.t - r.presentationTimeOffset) / r.timescale) * 1000;
      assert.ok(
        Math.abs(at - hlsSeg.programDateTime) <= 1,
        `segment ${seg.number}: ${at} vs ${hlsSeg.programDateTime}`,
      );
    }
    // 20 more seconds: the first segments leave; AST and the Period's anchors stay.
    s.feed(6100, 26100);
    const later = check(p);
    assert.equal(later.availabilityStartTime, m.availabilityStartTime);
    const lr = later.periods[0]!.representations[0]!;
    assert.equal(later.periods[0]!.start, 0);
    assert.equal(lr.presentationTimeOffset, r.presentationTimeOffset);
    assert.ok(lr.segments[0]!.number > 0, 'the window slid');
    assert.ok(later.publishTime > m.publishTime);
    assert.ok(later.timeShiftBufferDepth! >= 9.9);
    assert.equal(later.suggestedPresentationDelay, 6);
  });

  it('a new run is a new Period, after the one before; an ended stream is static from 0', () => {
    const s = stream('bbbbbbbb');
    const p = new DashPresentation([{ id: 'v0', packager: s.packager }]);
    s.newRun();
    s.feed(0, 4100);
    s.packager.closeOpen();
    s.advance(3000); // the publisher is gone three seconds
    s.newRun();
    s.feed(4100, 8200); // the repaired timeline goes on
    const m = check(p);
    assert.deepEqual(
      m.periods.map((x) => x.id),
      ['p0', 'p1'],
    );
    const [p0, p1] = m.periods as [CheckedMpd['periods'][0], CheckedMpd['periods'][0]];
    const r0 = p0.representations[0]!;
    const end0 =
      p0.start + (r0.segments.at(-1)!.t + r0.segments.at(-1)!.d - r0.presentationTimeOffset) / 90000;
    assert.ok(p1.start >= end0 - 1e-9, `p1 at ${p1.start}, p0 ends at ${end0}`);
    assert.ok(p1.start >= 6.9, `p1 starts after the gap (${p1.start})`);
    assert.equal(p1.representations[0]!.initialization, '../../../hls/u/s/bbbbbbbb-init1.mp4');
    assert.equal(p1.representations[0]!.segments[0]!.number, r0.segments.at(-1)!.number + 1);
    // Asked again, the same anchors.
    const again = check(p);
    assert.deepEqual(
      again.periods.map((x) => [x.start, x.representations[0]!.presentationTimeOffset]),
      m.periods.map((x) => [x.start, x.representations[0]!.presentationTimeOffset]),
    );
    s.packager.end();
    const ended = check(p);
    assert.equal(ended.type, 'static');
    assert.equal(ended.periods[0]!.start, 0);
    const listed = s.packager.segments.reduce((sum, x) => sum + x.duration, 0);
    assert.ok(
      Math.abs(ended.mediaPresentationDuration! - listed) < 0.002,
      `${ended.mediaPresentationDuration} vs ${listed}`,
    );
    const e0 = ended.periods[0]!.representations[0]!;
    const e0len = e0.segments.reduce((sum, x) => sum + x.d, 0) / 90000;
    assert.ok(Math.abs(ended.periods[1]!.start - e0len) < 0.002, 'Periods laid end to end');
  });

  it('ABR rungs are Representations of one AdaptationSet, each with its own names', () => {
    const a = stream('cccccccc');
    const b = stream('dddddddd');
    const p = new DashPresentation([
      { id: '540p', packager: a.packager, bandwidth: 2_000_000, frameRate: 15 },
      { id: '360p', packager: b.packager, bandwidth: 800_000, frameRate: 15 },
    ]);
    a.newRun();
    a.feed(0, 4100);
    assert.equal(p.model(view), null, 'not before every rung has a segment');
    b.newRun();
    b.feed(0, 4100);
    const m = check(p);
    const reps = m.periods[0]!.representations;
    assert.deepEqual(
      reps.map((r) => [r.id, r.bandwidth, r.media]),
      [
        ['540p', 2_000_000, '../../../hls/u/s/cccccccc-seg$Number$.m4s'],
        ['360p', 800_000, '../../../hls/u/s/dddddddd-seg$Number$.m4s'],
      ],
    );
    assert.deepEqual(reps[0]!.segments, reps[1]!.segments, 'aligned rungs, one timeline');
    // A muxed Representation gets no frameRate (dash.js would drop it: see presentation.ts).
    assert.doesNotMatch(renderMpd(p.model(view)!), /frameRate/);
  });

  it('runOf reads the run from an init name', () => {
    assert.equal(runOf('abcd0123-init12.mp4'), 12);
    assert.equal(runOf('nonsense'), -1);
  });
});
