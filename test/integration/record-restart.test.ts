/**
 * A relay killed mid-recording (kill -9, a real `rtmp-relay relay` process) loses nothing it spooled: with
 * the S3 server down when it dies, its recording waits on disk; started again on the same spool, it closes
 * the part as it stood and uploads it, and the recording is listed ready with what was recorded.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fixturePath } from '../fixtures/generate.ts';
import { publishFlv } from '../helpers/flv-publisher.ts';
import { killGroup, type NodeProcess, spawnRelay } from '../helpers/relay-process.ts';
import { startS3, type TestS3 } from '../helpers/s3-server.ts';

const START_MS = 60_000;

/** Files under the spool's part directories (segments, inits, state). */
function spoolFiles(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir).flatMap((p) => readdirSync(path.join(dir, p)).map((f) => `${p}/${f}`));
}

async function until<T>(
  what: string,
  timeoutMs: number,
  probe: () => Promise<T | null> | T | null,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== null) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

describe('recording across a relay killed mid-stream', () => {
  let s3: TestS3;
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'rtmp-relay-record-restart-'));
  const spool = path.join(tmp, 'spool');
  const nodes: NodeProcess[] = [];

  before(async () => {
    s3 = await startS3();
  });

  after(async () => {
    for (const n of nodes) killGroup(n.pid, 'SIGKILL');
    await Promise.all(nodes.map((n) => n.exited));
    await s3?.close();
    rmSync(tmp, { recursive: true, force: true });
  });

  function relay(id: string): NodeProcess {
    const node = spawnRelay(id, 'http://127.0.0.1:9', {
      RELAY_SHARED_SECRET: 'a-relay-secret-for-the-recording-test',
      PUBLISH_AUTH: 'off',
      RECORDING: 'on',
      RECORDING_SPOOL_DIR: spool,
      CLEAN_PROFILE: 'copy',
      ...s3.env('rec'),
    });
    nodes.push(node);
    return node;
  }

  const port = async (node: NodeProcess, match: RegExp): Promise<number> =>
    Number(
      (await node.waitLine((l) => typeof l.msg === 'string' && match.test(l.msg) && 'port' in l, START_MS))
        .port,
    );

  it('kill -9 with the store down, restart: the spool is uploaded and the recording is ready', async () => {
    const a = relay('rec-a');
    const rtmpPort = await port(a, /RTMP/);
    const pub = publishFlv(await fixturePath('glasses-854x480.flv'), {
      port: rtmpPort,
      user: 'u',
      stream: 'killed',
      speed: 2,
    });
    const finished = pub.done.catch(() => {}); // the relay goes away under it: expected
    await pub.started;
    await a.waitLine((l) => l.msg === 'HLS ready', START_MS);
    await s3.stop();
    // The store is down: segments wait in the spool (at least one after the first seconds).
    await until('segments in the spool', 30_000, () =>
      spoolFiles(spool).some((f) => /seg\d+\.m4s$/.test(f)) ? true : null,
    );
    killGroup(a.pid, 'SIGKILL');
    await a.exited;
    pub.drop();
    await finished;
    const spooled = spoolFiles(spool).filter((f) => /seg\d+\.m4s$/.test(f));
    assert.ok(spooled.length > 0, 'spooled segments survive the kill');

    await s3.start();
    const b = relay('rec-b');
    await b.waitLine((l) => l.msg === 'recording spool of a previous run: uploading', START_MS);
    const origin = await b.waitLine((l) => typeof l.msg === 'string' && /HLS origin/.test(l.msg), START_MS);
    const hlsPort = Number(origin.hlsPort);
    const rec = await until('a ready recording', 60_000, async () => {
      const res = await fetch(`http://127.0.0.1:${hlsPort}/recordings/u/killed`);
      const body = (await res.json()) as {
        recordings: { state: string; durationSeconds: number; mp4Url: string }[];
      };
      return body.recordings.find((r) => r.state === 'ready') ?? null;
    });
    assert.ok(rec.durationSeconds >= 2, `recorded ${rec.durationSeconds} s`);
    // The part's directory goes in the upload's last step, just after the manifest that made it ready.
    await until('the spool emptied once uploaded', 30_000, () =>
      spoolFiles(spool).length === 0 ? true : null,
    );
    const mp4 = await fetch(rec.mp4Url);
    assert.equal(mp4.status, 200);
    assert.ok((await mp4.arrayBuffer()).byteLength > 10_000);
  });
});
