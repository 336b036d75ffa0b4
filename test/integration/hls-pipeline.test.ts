/**
 * The media path end to end with real FFmpeg: the generated dirty glasses stream (540x960 portrait, 9–15
 * fps, irregular keyframes with one 7 s GOP, a 5 s timestamp jump, AAC 44.1 kHz mono) published through
 * the RTMP server in each profile at once. For each: the playlist keeps the rules, every segment decodes,
 * none exceeds the TARGETDURATION its profile announces (auto switched to transcode at the long GOP),
 * and audio and video stay in sync.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Segment } from '../../src/hls/packager.ts';
import type { RelayHandle } from '../../src/relay/relay.ts';
import { targetDurationFor } from '../../src/stream/stream.ts';
import { DIRTY_540X960 } from '../fixtures/dirty.ts';
import { fixturePath } from '../fixtures/generate.ts';
import { FlvPublishError, publishFlv } from '../helpers/flv-publisher.ts';
import { probe } from '../helpers/process.ts';
import { initOf, type StreamRecord, startTestRelay } from '../helpers/relay-harness.ts';

const PROFILES = ['auto', 'copy', 'transcode'] as const;
const SPEED = 2;
/** Seconds of media the publisher may leave for the end's flush (a GOP and a part, at most). */
const CAUGHT_UP_SLACK = 3;

describe('clean HLS from a dirty stream, per profile', () => {
  let relay: RelayHandle;
  let records: Map<string, StreamRecord>;
  let hls: (p: string) => string;
  const dir = mkdtempSync(path.join(tmpdir(), 'hls-pipeline-'));

  before(async () => {
    // No slate: each publisher is held, connected and silent, until the output caught up (below), which the
    // slate would rightly fill; this suite checks the pipeline's own segments (the slate has its own).
    ({ relay, records, hls } = await startTestRelay({ SLATE: 'off' }));
    const file = await fixturePath('dirty-540x960.flv');
    const media = DIRTY_540X960.durationMs / 1000;
    // Seconds of media each stream's packager holds: complete segments plus the parts of the open one.
    const output = new Map<string, { seconds: () => number; wake: () => void }>();
    relay.streams.on('created', (stream) => {
      let complete = 0;
      let open = 0;
      const span = { seconds: () => complete + open, wake: () => {} };
      output.set(stream.streamId, span);
      stream.packager.on('part', (part) => {
        open += part.duration;
        span.wake();
      });
      stream.packager.on('segment', (segment) => {
        complete += segment.duration;
        open = 0;
        span.wake();
      });
    });
    /**
     * The publisher stays until the stream's output covers all but the last few seconds of the media: then
     * the end (FFmpeg flushing the rest) is short on any machine. A loaded machine only makes the wait
     * longer (media time decides, not the wall clock): without it, a transcode that fell behind was still
     * flushing when the stream ended and lost its tail.
     */
    const caughtUp = (profile: string) => async (): Promise<void> => {
      const span = output.get(profile);
      if (!span) throw new Error(`${profile}: no stream`);
      const reached = (): boolean => span.seconds() >= media - CAUGHT_UP_SLACK;
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`${profile}: output reached ${span.seconds().toFixed(1)} s of ${media} s`)),
          240_000,
        );
        span.wake = () => {
          if (!reached()) return;
          clearTimeout(timer);
          resolve();
        };
        span.wake();
      });
    };
    await Promise.all(
      PROFILES.map(async (profile) => {
        const pub = publishFlv(file, {
          port: relay.rtmpPort,
          user: 'glasses@user.com',
          stream: `${profile}?profile=${profile}`,
          speed: SPEED,
          beforeUnpublish: caughtUp(profile),
        });
        await pub.done;
      }),
    );
    await Promise.all(PROFILES.map((p) => records.get(p)!.ended));
  });

  after(async () => {
    await relay.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('refuses an unknown profile with NetStream.Publish.BadName before any media', async () => {
    const pub = publishFlv(await fixturePath('glasses-854x480.flv'), {
      port: relay.rtmpPort,
      user: 'u',
      stream: 'x?profile=bogus',
    });
    await assert.rejects(
      pub.done,
      (e: unknown) => e instanceof FlvPublishError && e.status === 'NetStream.Publish.BadName',
    );
    assert.equal(records.has('x'), false);
  });

  it('refuses a second key whose HLS path would collide (a@b and a-b) while the first lives', async () => {
    const glasses = await fixturePath('glasses-854x480.flv');
    const first = publishFlv(glasses, { port: relay.rtmpPort, user: 'a@b', stream: 'same', toMs: 3000 });
    await first.started;
    const second = publishFlv(glasses, { port: relay.rtmpPort, user: 'a-b', stream: 'same' });
    await assert.rejects(
      second.done,
      (e: unknown) => e instanceof FlvPublishError && e.status === 'NetStream.Publish.BadName',
    );
    await first.stop();
  });

  for (const profile of PROFILES) {
    it(`${profile}: playlist rules, decodable segments within TARGETDURATION, A/V in sync`, async () => {
      const rec = records.get(profile)!;
      const range = targetDurationFor(profile, 2, 6);
      const res = await fetch(hls(`glasses-user.com/${profile}/index.m3u8`));
      assert.equal(res.status, 200);
      const text = await res.text();
      // Decided by the first segment: copy and auto copy the first GOPs (keyframes at 0, 0.53 and 2.47 s: the
      // first keyframe past 0.75 s (copy) or 1.5 s (auto) closes a 2.47 s segment, rounded 2); FFmpeg's 2 s.
      const td = Number(/#EXT-X-TARGETDURATION:(\d+)\n/.exec(text)?.[1]);
      assert.equal(td, 2, `${profile}: TARGETDURATION`);
      assert.ok(td >= range.min && td <= range.max);
      assert.match(text, /#EXT-X-ENDLIST\n$/);
      assert.match(text, /#EXT-X-MAP:URI="[0-9a-f]{8}-init\d+\.mp4"/);
      assert.match(text, /#EXT-X-PROGRAM-DATE-TIME:/);
      // The seed's window of 5 segments at least; with LL-HLS on (the default) as many more as keep 6
      // TARGETDURATIONs after the first listed one, so a delta update (CAN-SKIP-UNTIL) can skip something.
      const listed = [...text.matchAll(/#EXTINF:([\d.]+),/g)].map((m) => Number(m[1]));
      const allListed = listed.length === rec.segments.length;
      assert.ok(listed.length >= 5, `${listed.length} segments listed`);
      assert.ok(
        allListed || listed.slice(1).reduce((a, b) => a + b, 0) >= 6 * td - 0.01,
        `${profile}: ${listed.join(' ')} s listed`,
      );

      // Sequences only grow.
      for (let i = 1; i < rec.sequences.length; i++) {
        assert.ok(rec.sequences[i]!.media >= rec.sequences[i - 1]!.media);
        assert.ok(rec.sequences[i]!.discontinuity >= rec.sequences[i - 1]!.discontinuity);
      }
      const total = rec.segments.reduce((s, seg) => s + seg.duration, 0);
      const media = DIRTY_540X960.durationMs / 1000;
      assert.ok(
        total > media - 4 && total < media + 3,
        `${profile}: ${total.toFixed(1)} s of segments for ${media} s of media`,
      );

      for (const seg of rec.segments) {
        assert.ok(
          Math.round(seg.duration) <= td,
          `${profile}: segment ${seg.msn} lasts ${seg.duration} > ${td}`,
        );
        // A/V sync: each fragment's audio and video runs start together (within 150 ms).
        for (const f of seg.fragments) {
          const init = initOf(rec, seg);
          const at = (kind: 'video' | 'audio'): number | undefined => {
            const track = init.tracks.find((t) => t.kind === kind);
            const run = f.runs.find((r) => r.trackId === track?.id);
            return run && track ? run.baseDecodeTime / track.timescale : undefined;
          };
          const v = at('video');
          const a = at('audio');
          if (v !== undefined && a !== undefined) {
            assert.ok(
              Math.abs(v - a) < 0.15,
              `${profile}: segment ${seg.msn} A/V apart by ${(v - a).toFixed(3)} s`,
            );
          }
        }
        // A segment that starts mid-GOP (copy's cuts of a GOP longer than TARGETDURATION) decodes after the
        // ones before it back to its GOP's keyframe, as a player plays them: probe them and require frames
        // beyond theirs.
        const gopBefore: Segment[] = [];
        for (let msn = seg.msn - 1; !seg.independent; msn--) {
          const earlier = rec.segments.find((x) => x.msn === msn);
          if (!earlier) break;
          gopBefore.unshift(earlier);
          if (earlier.independent) break;
        }
        const decode = async (parts: Buffer[], name: string): Promise<number> => {
          const file = path.join(dir, `${profile}-${name}.mp4`);
          writeFileSync(file, Buffer.concat([initOf(rec, seg).data, ...parts]));
          const streams = await probe(file);
          const video = streams.find((s) => s.codec_type === 'video');
          assert.equal(video?.width, 540, `${profile} segment ${seg.msn}`);
          assert.equal(video?.height, 960);
          assert.equal(streams.find((s) => s.codec_type === 'audio')?.codec_name, 'aac');
          return Number(video?.nb_read_frames);
        };
        if (gopBefore.length > 0) {
          const before = await decode(
            gopBefore.map((x) => x.data),
            `${seg.msn}-prev`,
          );
          const both = await decode([...gopBefore.map((x) => x.data), seg.data], `${seg.msn}-pair`);
          assert.ok(both > before, `${profile}: segment ${seg.msn} decodes after segment ${seg.msn - 1}`);
        } else {
          assert.ok(seg.independent, `${profile}: segment ${seg.msn} starts with a keyframe`);
          assert.ok(
            (await decode([seg.data], String(seg.msn))) > 0,
            `${profile}: segment ${seg.msn} has decodable video`,
          );
        }
      }
      if (profile === 'auto') {
        assert.equal(rec.stream.pipelineProfile, 'transcode', 'auto switched to transcode at the long GOP');
        assert.match(rec.stream.decision, /GOP ran past/);
        assert.ok(
          rec.segments.some((s) => s.discontinuity),
          'the switch is a discontinuity',
        );
        assert.equal(rec.stream.packager.stats.breaches, 0);
      }
      if (profile === 'transcode') assert.equal(rec.stream.packager.stats.breaches, 0);
      if (profile === 'copy')
        assert.ok(rec.stream.packager.stats.breaches >= 1, 'the 7 s GOP is a breach in copy');
      assert.ok(rec.stream.repair.counts.jumpForward >= 1, 'the timestamp jump was repaired');
    });
  }
});
