/**
 * What the slate costs. Goal: ≤ 1 % of a core per reconnecting stream while it runs, 0 while no publisher
 * is gone.
 *
 * 1. The encode, once per spec (540x960 baseline + AAC, the glasses' format): wall time and CPU of the one
 *    FFmpeg run (reaped children's times), then a second stream's request (a cache hit: no process).
 * 2. The slate itself, in-process: BENCH_STREAMS (default 20) SlateRunners, each writing a 15 fps slate to
 *    its own LL-HLS packager and feeding re-streams, driven on a fake clock through BENCH_MEDIA_SECONDS
 *    (default 120) of media in 100 ms ticks as fast as the CPU goes: this process's CPU per stream per media
 *    second (what a real-time slate costs, without the wait).
 * 3. End to end in a real relay: BENCH_LIVE_STREAMS (default 10) copy streams of the glasses fixture,
 *    publishers dropped, every stream on its slate for BENCH_SECONDS (default 15) of wall clock: the relay
 *    process's CPU above the same relay idle for as long, per stream. And with the publishers live, the
 *    same streams with SLATE=on against SLATE=off (the per-stream gap timer is all the slate adds then).
 */
import { Packager } from '../src/hls/packager.ts';
import { ChildReaper } from '../src/pipeline/child-reaper.ts';
import { silentLogger } from '../src/shared/logger.ts';
import { SlateCache } from '../src/stream/slate-cache.ts';
import type { SlateSpec } from '../src/stream/slate-media.ts';
import { SlateRunner } from '../src/stream/slate-runner.ts';
import { fixturePath } from '../test/fixtures/generate.ts';
import { type FlvPublisher, publishFlv } from '../test/helpers/flv-publisher.ts';
import { startTestRelay } from '../test/helpers/relay-harness.ts';
import { cpuChildren, cpuSelf } from './cpu.ts';

const STREAMS = Number(process.env.BENCH_STREAMS ?? 20);
const MEDIA_SECONDS = Number(process.env.BENCH_MEDIA_SECONDS ?? 120);
const LIVE_STREAMS = Number(process.env.BENCH_LIVE_STREAMS ?? 10);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 15);
const TICK_MS = 100;

const GLASSES: SlateSpec = {
  profile: 'baseline',
  level: 31,
  width: 540,
  height: 960,
  audio: { codec: 'aac', sampleRate: 44_100, channels: 2 },
};

const pct = (cores: number): string => `${(cores * 100).toFixed(3)} %`;
const wait = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function encodeCost(): Promise<string[]> {
  const reaper = new ChildReaper();
  const cache = new SlateCache({ log: silentLogger(), reaper });
  try {
    const cpu0 = cpuChildren();
    const t0 = performance.now();
    await cache.get(GLASSES);
    const wall = performance.now() - t0;
    const cpu = cpuChildren() - cpu0;
    const t1 = performance.now();
    await cache.get({ ...GLASSES });
    const hit = performance.now() - t1;
    return [
      `| slate encode, 540x960 + AAC (once per spec) | ${wall.toFixed(0)} ms wall | ${(cpu * 1000).toFixed(0)} ms CPU (FFmpeg) | ${cache.stats.encodes} process |`,
      `| the same slate for a second stream | ${hit.toFixed(2)} ms | 0 | ${cache.stats.encodes - 1} process |`,
    ];
  } finally {
    cache.close();
    reaper.close();
  }
}

async function runnerCost(): Promise<{ row: string; cores: number }> {
  const reaper = new ChildReaper();
  const cache = new SlateCache({ log: silentLogger(), reaper });
  const media = await cache.get(GLASSES);
  cache.close();
  reaper.close();
  let now = 1_000_000;
  const clock = (): number => now;
  let fed = 0;
  const runners = Array.from({ length: STREAMS }, () => {
    const packager = new Packager({
      segmentSeconds: 2,
      targetDuration: 4,
      listSize: 5,
      lowLatency: true,
      partSeconds: 0.5,
      now: clock,
    });
    return new SlateRunner({
      startMs: 0,
      anchorMs: 0,
      anchorWallMs: now,
      packagers: [{ packager, media, fps: 15 }],
      feed: { media, fps: 15 },
      onFeedStart: () => {},
      onFeedAu: () => fed++,
      now: clock,
      tickMs: 3_600_000, // driven below, one tick per 100 ms of fake time
    });
  });
  for (const r of runners) r.start();
  const cpu0 = cpuSelf();
  const ticks = (MEDIA_SECONDS * 1000) / TICK_MS;
  for (let i = 0; i < ticks; i++) {
    now += TICK_MS;
    for (const r of runners) r.tick();
  }
  const cpu = cpuSelf() - cpu0;
  for (const r of runners) r.stop();
  const cores = cpu / (STREAMS * MEDIA_SECONDS);
  return {
    row: `| slate in-process (writer + LL-HLS packager + re-stream feed), ${STREAMS} streams × ${MEDIA_SECONDS} s | ${pct(cores)} of a core per stream | ${fed} feed units | 0 processes |`,
    cores,
  };
}

async function liveCost(): Promise<string[]> {
  const file = await fixturePath('glasses-854x480.flv');
  const rows: string[] = [];
  const measure = async (ms: number): Promise<number> => {
    const c0 = cpuSelf();
    await wait(ms);
    return cpuSelf() - c0;
  };
  // Slating streams against the same relay idle.
  {
    const { relay, records } = await startTestRelay(
      { SLATE_AFTER_SECONDS: '1', RECONNECT_WINDOW_SECONDS: '600', HLS_END_GRACE_SECONDS: '600' },
      silentLogger(),
      { record: false },
    );
    try {
      const idle = await measure(SECONDS * 1000);
      const pubs: FlvPublisher[] = [];
      for (let i = 0; i < LIVE_STREAMS; i++) {
        pubs.push(
          publishFlv(file, { port: relay.rtmpPort, user: 'bench', stream: `s${i}?profile=copy`, toMs: 8000 }),
        );
      }
      await Promise.all(pubs.map((p) => p.started));
      await Promise.all([...records.values()].map((r) => r.ready));
      for (const p of pubs) p.drop();
      await Promise.all(pubs.map((p) => p.done.catch(() => {})));
      // Every stream on its slate.
      const streams = [...records.values()].map((r) => r.stream);
      while (!streams.every((s) => s.slating)) await wait(100);
      await wait(1000);
      const slating = await measure(SECONDS * 1000);
      const per = (slating - idle) / LIVE_STREAMS / SECONDS;
      rows.push(
        `| real relay, ${LIVE_STREAMS} streams on their slate for ${SECONDS} s (above the idle relay) | ${pct(per)} of a core per stream | idle relay ${pct(idle / SECONDS)} | ${relay.streams.slates!.stats.encodes} encode(s) in all |`,
      );
    } finally {
      await relay.close();
    }
  }
  // Live publishers: SLATE=on against SLATE=off.
  const live = async (slate: 'on' | 'off'): Promise<number> => {
    const { relay } = await startTestRelay({ SLATE: slate }, silentLogger(), { record: false });
    try {
      const pubs = Array.from({ length: LIVE_STREAMS }, (_, i) =>
        publishFlv(file, { port: relay.rtmpPort, user: 'bench', stream: `l${i}?profile=copy`, toMs: 19_000 }),
      );
      await Promise.all(pubs.map((p) => p.started));
      await wait(1500);
      const cpu = await measure(Math.min(SECONDS, 15) * 1000);
      for (const p of pubs) p.drop();
      await Promise.all(pubs.map((p) => p.done.catch(() => {})));
      return cpu / LIVE_STREAMS / Math.min(SECONDS, 15);
    } finally {
      await relay.close();
    }
  };
  const on = await live('on');
  const off = await live('off');
  rows.push(
    `| real relay, ${LIVE_STREAMS} live copy streams: SLATE=on / SLATE=off | ${pct(on)} / ${pct(off)} of a core per stream | difference ${pct(on - off)} (noise: one timer wake-up a second) | 0 processes |`,
  );
  return rows;
}

const rows = [...(await encodeCost())];
const runner = await runnerCost();
rows.push(runner.row);
rows.push(...(await liveCost()));
console.log('| what | cost | | |');
console.log('| --- | --- | --- | --- |');
for (const r of rows) console.log(r);
console.log(
  `\nGoal ≤ 1 % of a core per reconnecting stream: ${runner.cores <= 0.01 ? 'met' : 'NOT met'} (in-process ${pct(runner.cores)}).`,
);
