/**
 * Hostile input against the whole connection stack (handshake, chunks, messages, AMF0, commands):
 * 10,000 cases of mutated real recordings, random bytes, truncated handshakes and absurd lengths. Nothing
 * may throw out, every connection must close and be released, memory must stay flat, and a real publish
 * must still work on the same server afterwards. The bench target runs 1,000,000 (bench/rtmp-fuzz.ts).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { EndReason, Publish } from '../../src/rtmp/publish.ts';
import { RtmpServer } from '../../src/rtmp/server.ts';
import { silentLogger } from '../../src/shared/logger.ts';
import { onceEvent } from '../../src/shared/typed-emitter.ts';
import { type FixtureName, loadFixture } from '../fixtures/generate.ts';
import { MemorySocket } from '../helpers/memory-socket.ts';
import { startTool } from '../helpers/process.ts';
import { publisherArgv } from '../helpers/publishers.ts';
import { fragment, prng } from '../helpers/rtmp-bytes.ts';
import { type FuzzKind, fuzzCase } from '../helpers/rtmp-fuzz.ts';

const CASES = Number(process.env.RTMP_FUZZ_CASES ?? 10_000);
/** Cases run before the memory baseline is taken: malloc's arenas settle after about 2,000 (measured). */
const WARMUP = 2_000;

describe('RTMP fuzzing', () => {
  const server = new RtmpServer({
    log: silentLogger(),
    maxConnections: 100_000,
    maxConnectionsPerIp: 100_000,
  });
  const recordings: Buffer[] = [];
  let port = 0;

  before(async () => {
    for (const name of ['ffmpeg.rtmp', 'rtmp2sink.rtmp', 'rtmpsink.rtmp'] as FixtureName[]) {
      recordings.push(await loadFixture(name));
    }
    port = await server.listen(0, '127.0.0.1');
  });

  after(() => server.close());

  it(`survives ${CASES} hostile connections (after ${WARMUP} warm-up cases) with flat memory`, async (t) => {
    const random = prng(20261124);
    const kinds = new Map<FuzzKind, number>();
    let published = 0;
    const onPublish = (p: Publish): void => {
      published++;
      p.on('tag', () => {}); // a consumer, as the relay always has one
    };
    server.on('publish', onPublish);
    const gc = (globalThis as { gc?: () => void }).gc;
    // Collect until the ArrayBuffer backing stores are really freed (V8 releases them after a turn).
    const settle = async (): Promise<void> => {
      for (let k = 0; k < 3; k++) {
        gc?.();
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
    };
    let baseline = process.memoryUsage();
    for (let i = 0; i < WARMUP + CASES; i++) {
      if (i === WARMUP) {
        await settle();
        baseline = process.memoryUsage();
      }
      const { kind, bytes } = fuzzCase(recordings, random);
      kinds.set(kind, (kinds.get(kind) ?? 0) + 1);
      const socket = new MemorySocket();
      const conn = server.handleSocket(socket);
      assert.ok(conn, 'connection accepted');
      for (const piece of fragment(bytes, random, 1 + Math.floor(random() * 8192))) {
        socket.feed(piece);
        // Let the (async) authorization decide, so media after a publish reaches the media path.
        while (conn.state === 'authorizing') await new Promise<void>((resolve) => setImmediate(resolve));
      }
      socket.peerEnd();
      assert.equal(conn.state, 'closed', `case ${i} (${kind}) left its connection open`);
      if (i % 200 === 199) {
        // Collect as we go: garbage between collections would otherwise set the RSS high-water mark, and a
        // leak survives collections anyway.
        gc?.();
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
    }
    server.off('publish', onPublish);
    await settle();
    const now = process.memoryUsage();
    const rssGrowth = (now.rss - baseline.rss) / 1024 / 1024;
    const heapGrowth = (now.heapUsed - baseline.heapUsed) / 1024 / 1024;
    t.diagnostic(
      `rss ${(baseline.rss / 1048576).toFixed(0)} → ${(now.rss / 1048576).toFixed(0)} MB, heap +${heapGrowth.toFixed(1)} MB`,
    );
    assert.ok(rssGrowth < 50, `rss grew ${rssGrowth.toFixed(1)} MB`);
    assert.ok(heapGrowth < 10, `JS heap grew ${heapGrowth.toFixed(1)} MB`);
    assert.equal(server.connections.size, 0, 'every connection released');
    assert.equal(server.publishes.length, 0, 'every publish ended');
    assert.ok(published > 100, `mutated recordings still published (${published})`);
    assert.ok(
      server.stats.errors.size >= 8,
      `failures were classified: ${[...server.stats.errors.keys()].join(', ')}`,
    );
    for (const kind of [
      'mutated-recording',
      'random-bytes',
      'truncated-handshake',
      'absurd-lengths',
    ] as FuzzKind[]) {
      assert.ok((kinds.get(kind) ?? 0) > 0, `${kind} cases ran`);
    }
  });

  it('still accepts a real ffmpeg publish afterwards', async () => {
    const publishing = onceEvent(server, 'publish');
    const { command, args } = publisherArgv('ffmpeg', {
      url: `rtmp://127.0.0.1:${port}/live/user1/after-fuzz`,
      seconds: 2,
      live: false,
    });
    const run = startTool(command, args, { timeoutMs: 60_000 });
    const [publish] = await publishing;
    const ended = new Promise<EndReason>((resolve) => publish.once('end', resolve));
    const result = await run.done;
    assert.equal(result.code, 0, result.stderr.slice(-1000));
    assert.equal((await ended).kind, 'unpublish');
    assert.ok(publish.stats.videoFrames >= 26, `${publish.stats.videoFrames} frames`);
    assert.ok(publish.started?.hasVideo && publish.started.hasAudio);
  });
});
