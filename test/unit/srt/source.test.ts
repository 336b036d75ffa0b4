import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { PublishInfo } from '../../../src/contracts/publish.ts';
import { srtStreamPassphrase } from '../../../src/contracts/srt.ts';
import type { AccessUnit, SourceStart } from '../../../src/media/access-unit.ts';
import type { SrtConnectionStats } from '../../../src/srt/conn.ts';
import { passphraseFromConfig } from '../../../src/srt/listener.ts';
import { SrtSource } from '../../../src/srt/source.ts';
import { tsReference } from '../../helpers/srt-publish.ts';

const info: PublishInfo = {
  id: 1,
  key: 'live/u/s',
  userId: 'u',
  streamId: 's',
  params: {},
  remoteAddress: '127.0.0.1',
  startedAt: 0,
  protocol: 'srt',
};

function record(source: SrtSource) {
  const events: string[] = [];
  const aus: AccessUnit[] = [];
  let start: SourceStart | null = null;
  source.on('start', (s) => {
    start = s;
    events.push('start');
  });
  source.on('au', (au) => {
    aus.push(au);
    events.push(au.track);
  });
  source.on('end', (r) => events.push(`end:${r.kind}`));
  return { events, aus, start: () => start };
}

describe('SrtSource: MPEG-TS in, a MediaSource out', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'srt-source-'));
  let ts: Buffer;
  let ref: Awaited<ReturnType<typeof tsReference>>;
  before(async () => {
    ref = await tsReference(dir, 3);
    ts = readFileSync(ref.file);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('starts once both configurations are known, video on its keyframe, audio held until then', () => {
    const source = new SrtSource(info, () => ({}) as SrtConnectionStats);
    const r = record(source);
    for (let i = 0; i < ts.length; i += 1316) source.feed(ts.subarray(i, i + 1316));
    source.end({ kind: 'unpublish' });
    source.end({ kind: 'disconnect' });
    assert.equal(r.events[0], 'start');
    assert.equal(r.events.at(-1), 'end:unpublish', 'ends once');
    const start = r.start()!;
    assert.ok(start.video && start.audio && start.hasVideo && start.hasAudio);
    const video = r.aus.filter((a) => a.track === 'video');
    assert.equal(video.length, ref.video.length);
    assert.ok(video[0]!.keyframe);
    assert.equal(r.aus.filter((a) => a.track === 'audio').length, ref.audio.length);
    assert.equal(source.stats.videoFrames, ref.video.length);
    assert.equal(source.stats.skippedBeforeStart, 0);
  });

  it('joined mid-stream: video before the next keyframe is skipped and counted', () => {
    const source = new SrtSource(info, () => ({}) as SrtConnectionStats);
    const r = record(source);
    // Keep the PAT/PMT (first packets), then join a second in.
    source.feed(ts.subarray(0, 188 * 2));
    const from = Math.floor(ts.length / 3 / 188) * 188;
    for (let i = from; i < ts.length; i += 1316) source.feed(ts.subarray(i, i + 1316));
    source.end({ kind: 'disconnect' });
    const video = r.aus.filter((a) => a.track === 'video');
    assert.ok(video.length > 0 && video[0]!.keyframe);
    // Before the keyframe the demuxer has no SPS yet: those frames are counted there.
    assert.ok(source.stats.skippedBeforeStart + source.stats.demux.droppedVideoFrames > 0);
    assert.equal(r.events[0], 'start');
  });

  it('takes its passphrase from the configuration', () => {
    assert.equal(
      passphraseFromConfig({ passphraseSecret: undefined, passphrase: undefined })('live/u/s'),
      null,
    );
    assert.equal(
      passphraseFromConfig({ passphraseSecret: undefined, passphrase: 'fixed-pass' })('live/u/s'),
      'fixed-pass',
    );
    assert.equal(
      passphraseFromConfig({ passphraseSecret: 'a-secret-of-16-chars', passphrase: undefined })('live/u/s'),
      srtStreamPassphrase('a-secret-of-16-chars', 'live/u/s'),
    );
  });
});
