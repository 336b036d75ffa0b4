import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createRelayGuard } from '../../../src/cloud/relay-guard.ts';

const bases: Record<string, string> = { r1: 'http://relay1:8888', r2: 'http://relay2:8888' };

function guard(options: { managed?: string | null; assigned?: string | null; publicBase?: string } = {}) {
  return createRelayGuard({
    managedRelayOf: async () => options.managed,
    assignedRelayOf: async () => options.assigned ?? null,
    hlsBaseOf: async (id) => bases[id] ?? null,
    publicBase: options.publicBase,
  });
}

const event = (relayId: string, urls: string[] = []) => ({
  kind: 'hls-ready' as const,
  relayId,
  userId: 'a@b.com',
  streamId: 's1',
  urls,
});
const own = (base: string) => `${base}/hls/a-b.com/s1/index.m3u8`;

describe('relay guard: who may speak for a stream', () => {
  it('lets only the relay holding a managed stream speak for it, and none while it is being moved', async () => {
    assert.equal(await guard({ managed: 'r1' })(event('r1')), null);
    assert.equal((await guard({ managed: 'r1' })(event('r2')))?.code, 'RELAY_NOT_HOLDER');
    assert.equal((await guard({ managed: null })(event('r1')))?.code, 'RELAY_NOT_HOLDER');
  });

  it("follows the store's assignment for other streams, and lets a relay report a stream nobody holds", async () => {
    assert.equal(await guard({ assigned: 'r1' })(event('r1')), null);
    assert.equal((await guard({ assigned: 'r1' })(event('r2')))?.code, 'RELAY_NOT_HOLDER');
    assert.equal(await guard({})(event('r2')), null);
  });

  it("takes URLs only under the relay's registered base (or the CDN's) and on the stream's own path", async () => {
    const g = guard({ managed: 'r1', publicBase: 'https://cdn.example.com' });
    assert.equal(await g(event('r1', [own('http://relay1:8888')])), null);
    assert.equal(await g(event('r1', [own('https://cdn.example.com')])), null);
    for (const url of [
      own('http://relay2:8888'),
      own('http://relay1:8888.evil.com'),
      own('http://relay1:8888@evil.com'),
      own('https://relay1:8888'),
      own('http://evil.com'),
      'http://relay1:8888/hls/other-b.com/s1/index.m3u8',
      'http://relay1:8888/hls/a-b.com/s2/index.m3u8',
      'http://relay1:8888/hls/a-b.com/s1/../../other-b.com/s1/index.m3u8',
      'not a url',
    ]) {
      assert.equal((await g(event('r1', [url])))?.code, 'RELAY_URL_REFUSED', url);
    }
    // Every URL must pass, not just the first.
    assert.equal(
      (await g(event('r1', [own('http://relay1:8888'), own('http://evil.com')])))?.code,
      'RELAY_URL_REFUSED',
    );
  });

  it('refuses URLs from a relay that is not registered', async () => {
    assert.equal((await guard({})(event('ghost', [own('http://relay1:8888')])))?.code, 'RELAY_URL_REFUSED');
  });
  it('takes a recording-ready from a relay that no longer holds the stream, but only with its own URLs', async () => {
    const g = guard({ managed: 'r1' });
    const rec = (relayId: string, base: string) => ({
      ...event(relayId, [`${base}/recordings/a-b.com/s1/r1700000000000/index.m3u8`]),
      kind: 'recording-ready' as const,
    });
    assert.equal(await g(rec('r2', 'http://relay2:8888')), null, 'the relay the stream moved from');
    assert.equal(
      (await g(rec('r2', 'http://relay1:8888')))?.code,
      'RELAY_URL_REFUSED',
      "another relay's URL",
    );
    const otherStream = {
      ...rec('r2', 'http://relay2:8888'),
      urls: ['http://relay2:8888/recordings/a-b.com/s2/r1700000000000/index.m3u8'],
    };
    assert.equal((await g(otherStream))?.code, 'RELAY_URL_REFUSED', "another stream's path");
  });
});
