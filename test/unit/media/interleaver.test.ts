import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { AccessUnit, TrackKind } from '../../../src/media/access-unit.ts';
import { Interleaver } from '../../../src/media/interleaver.ts';

const au = (track: TrackKind, dts: number): AccessUnit => ({
  track,
  dts,
  pts: dts,
  keyframe: true,
  data: Buffer.alloc(1),
});
const names = (out: AccessUnit[]): string[] => out.map((a) => `${a.track[0]}${a.dts}`);

test('a muxer that sends audio ahead: units come out in DTS order across tracks', () => {
  const out: AccessUnit[] = [];
  const il = new Interleaver({ video: true, audio: true }, (a) => out.push(a));
  // Audio 0..600 arrives before the video of 0..600 (an MPEG-TS muxer's buffering).
  for (const t of [0, 200, 400, 600]) il.push(au('audio', t));
  for (const t of [0, 300, 600]) il.push(au('video', t));
  il.push(au('audio', 800));
  il.push(au('video', 900));
  il.flush();
  // On a tie the video frame goes first (a GOP starts with its keyframe).
  assert.deepEqual(names(out), ['v0', 'a0', 'a200', 'v300', 'a400', 'v600', 'a600', 'a800', 'v900']);
  assert.equal(il.held, 0);
});

test('a stalled track holds the other no longer than maxHoldMs of media', () => {
  const out: AccessUnit[] = [];
  const il = new Interleaver({ video: true, audio: true }, (a) => out.push(a), 1000);
  for (let t = 0; t <= 1500; t += 100) il.push(au('audio', t)); // no video at all
  assert.deepEqual(names(out).slice(0, 5), ['a0', 'a100', 'a200', 'a300', 'a400']);
  assert.ok(il.held <= 11, `${il.held} held`);
});

test('one track: no holding at all', () => {
  const out: AccessUnit[] = [];
  const il = new Interleaver({ video: false, audio: true }, (a) => out.push(a));
  il.push(au('audio', 5));
  assert.deepEqual(names(out), ['a5']);
});
