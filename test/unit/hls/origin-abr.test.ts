/**
 * An ABR stream through the origin's inject(): `index.m3u8` is the multivariant playlist (404 until every
 * rendition is playable), `{rung}.m3u8` each rendition's media playlist with rendition reports for the
 * others, every rendition's parts and segments by name, blocking reload per rendition, and strict names.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { LightMyRequestResponse } from 'fastify';
import { buildOrigin } from '../../../src/hls/origin.ts';
import { Packager, type PackagerOptions } from '../../../src/hls/packager.ts';
import type { Fmp4Fragment, Fmp4Init } from '../../../src/media/fmp4.ts';
import { ladderFor } from '../../../src/pipeline/ladder.ts';
import { AbrRenditions } from '../../../src/stream/abr.ts';

const FPS = 30;
const OPTIONS: PackagerOptions = {
  segmentSeconds: 2,
  targetDuration: 2,
  listSize: 5,
  lowLatency: true,
  partSeconds: 0.5,
};

const init = (codec: string): Fmp4Init => ({
  data: Buffer.from('INIT'),
  tracks: [
    { id: 2, kind: 'audio', timescale: 44100, codec: 'mp4a.40.2' },
    { id: 1, kind: 'video', timescale: 15360, codec },
  ],
});

function feed(abr: AbrRenditions, frames: number, from = 0): void {
  for (let n = from; n < from + frames; n++) {
    abr.renditions.forEach((r) => {
      const f: Fmp4Fragment = {
        data: Buffer.from(`${r.rung.name}:${n};`),
        sequence: n,
        runs: [
          {
            trackId: 1,
            baseDecodeTime: n * 512,
            sampleCount: 1,
            duration: 512,
            firstSampleIsSync: n % (2 * FPS) === 0,
          },
        ],
        keyframe: n % (2 * FPS) === 0,
        startSeconds: n / FPS,
        durationSeconds: 1 / FPS,
      };
      r.packager.pushFragment(f);
    });
  }
}

function setup(): {
  abr: AbrRenditions;
  get: (file: string) => Promise<LightMyRequestResponse>;
} {
  const rungs = ladderFor(540, 960);
  const abr = new AbrRenditions(rungs, new Packager(OPTIONS), OPTIONS);
  const app = buildOrigin({
    lookup: () => undefined,
    lookupAbr: (user, id) => (user === 'u' && id === 's' ? abr : undefined),
    corsOrigins: '*',
  });
  return { abr, get: (file) => app.inject({ url: `/hls/u/s/${file}` }) };
}

describe('ABR origin', () => {
  it('answers 404 for index.m3u8 until every rendition is playable, then the multivariant playlist', async () => {
    const { abr, get } = setup();
    assert.equal((await get('index.m3u8')).statusCode, 404);
    abr.renditions.forEach((_r, i) => {
      abr.setInit(i, init(i === 0 ? 'avc1.64001f' : 'avc1.4d401f'));
    });
    feed(abr, 5 * FPS);
    const res = await get('index.m3u8');
    assert.equal(res.statusCode, 200);
    assert.equal(res.headers['content-type'], 'application/vnd.apple.mpegurl');
    assert.equal(
      res.body,
      [
        '#EXTM3U',
        '#EXT-X-VERSION:7',
        '#EXT-X-INDEPENDENT-SEGMENTS',
        '#EXT-X-STREAM-INF:BANDWIDTH=2628000,RESOLUTION=540x960,CODECS="avc1.64001f,mp4a.40.2",FRAME-RATE=30.000',
        '540p.m3u8',
        '#EXT-X-STREAM-INF:BANDWIDTH=1378000,RESOLUTION=480x854,CODECS="avc1.4d401f,mp4a.40.2",FRAME-RATE=30.000',
        '480p.m3u8',
        '#EXT-X-STREAM-INF:BANDWIDTH=878000,RESOLUTION=360x640,CODECS="avc1.4d401f,mp4a.40.2",FRAME-RATE=30.000',
        '360p.m3u8',
        '',
      ].join('\n'),
    );
  });

  it('serves each rendition playlist with rendition reports for the others, and their parts by name', async () => {
    const { abr, get } = setup();
    abr.renditions.forEach((_r, i) => {
      abr.setInit(i, init('avc1.64001f'));
    });
    feed(abr, 5 * FPS);
    for (const r of abr.renditions) {
      const res = await get(r.uri);
      assert.equal(res.statusCode, 200, r.uri);
      const others = abr.renditions.filter((o) => o !== r);
      const edge = r.packager.edge;
      for (const o of others) {
        assert.ok(
          res.body.includes(
            `#EXT-X-RENDITION-REPORT:URI="${o.uri}",LAST-MSN=${edge.openMsn},LAST-PART=${edge.openParts - 1}\n`,
          ),
          res.body,
        );
      }
      assert.ok(!res.body.includes(`URI="${r.uri}"`), 'no report for itself');
      const seg = res.body.split('\n').find((l) => l.endsWith('.m4s') && !l.startsWith('#'))!;
      const segment = await get(seg);
      assert.equal(segment.statusCode, 200);
      assert.ok(segment.body.startsWith(`${r.rung.name}:0;`), "the rendition's own bytes");
      const part = /#EXT-X-PART:.*URI="([^"]+)"/.exec(res.body)![1]!;
      assert.equal((await get(part)).statusCode, 200);
    }
  });

  it('holds a blocking reload of a rendition playlist until its next segment', async () => {
    const { abr, get } = setup();
    abr.renditions.forEach((_r, i) => {
      abr.setInit(i, init('avc1.64001f'));
    });
    feed(abr, 5 * FPS);
    const r = abr.renditions[2]!;
    const next = r.packager.edge.openMsn;
    const pending = get(`${r.uri}?_HLS_msn=${next}`);
    await new Promise((resolve) => setImmediate(resolve));
    feed(abr, 2 * FPS, 5 * FPS);
    const res = await pending;
    assert.equal(res.statusCode, 200);
    assert.ok(r.packager.has(next));
  });

  it('refuses names it did not make', async () => {
    const { abr, get } = setup();
    abr.renditions.forEach((_r, i) => {
      abr.setInit(i, init('avc1.64001f'));
    });
    feed(abr, 5 * FPS);
    for (const file of [
      '720p.m3u8',
      '0p.m3u8',
      '540p.m3u8.bak',
      '../540p.m3u8',
      'ffffffff-seg1.m4s',
      'p.m3u8',
    ]) {
      assert.equal((await get(file)).statusCode, 404, file);
    }
  });

  it('answers a rendition name for a stream that is not ABR with 404', async () => {
    const packager = new Packager(OPTIONS);
    const app = buildOrigin({ lookup: () => packager, lookupAbr: () => undefined, corsOrigins: '*' });
    assert.equal((await app.inject({ url: '/hls/u/s/540p.m3u8' })).statusCode, 404);
  });
});
