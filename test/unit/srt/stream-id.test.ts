import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { srtPublishStreamId, srtStreamPassphrase } from '../../../src/contracts/srt.ts';
import { srtPublishUrl } from '../../../src/contracts/urls.ts';
import { rejectFor } from '../../../src/srt/listener.ts';
import { RejectReason } from '../../../src/srt/packet.ts';
import { parseSrtStreamId } from '../../../src/srt/stream-id.ts';

describe('SRT stream id', () => {
  const accepted: {
    id: string;
    userId: string;
    streamId: string;
    token?: string;
    params?: Record<string, string>;
  }[] = [
    { id: 'publish:live/u1/s1', userId: 'u1', streamId: 's1' },
    {
      id: 'publish:live/me%40x.com/s-1?token=abc.def',
      userId: 'me@x.com',
      streamId: 's-1',
      token: 'abc.def',
    },
    {
      id: 'publish:live/a b@x.com/s?token=t&profile=copy',
      userId: 'a+b@x.com',
      streamId: 's',
      token: 't',
      params: { profile: 'copy' },
    },
    { id: 'publish:/live/u/s/', userId: 'u', streamId: 's' },
    { id: '#!::r=live/u2/s2,m=publish,s=tok', userId: 'u2', streamId: 's2', token: 'tok' },
    { id: '#!::r=live/u2/s2', userId: 'u2', streamId: 's2' },
    {
      id: 'publish%3Alive%2Fa%252Bb%2540x.com%2Fs%3Ftoken%3Dt.k',
      userId: 'a+b@x.com',
      streamId: 's',
      token: 't.k',
    },
    { id: '%23%21%3A%3Ar%3Dlive%2Fu%2Fs%2Cs%3Dtok', userId: 'u', streamId: 's', token: 'tok' },
  ];
  for (const c of accepted) {
    it(`accepts ${c.id}`, () => {
      const r = parseSrtStreamId(c.id);
      assert.ok(r.ok, !r.ok ? r.reason : '');
      assert.deepEqual(r.target, {
        key: `live/${c.userId}/${c.streamId}`,
        userId: c.userId,
        streamId: c.streamId,
        token: c.token,
        params: c.params ?? {},
      });
    });
  }

  const refused: { id: string | undefined; reject: number }[] = [
    { id: undefined, reject: RejectReason.BadRequest },
    { id: 'live/u/s', reject: RejectReason.BadRequest },
    { id: 'publish:live/u', reject: RejectReason.BadRequest },
    { id: 'publish:other/u/s', reject: RejectReason.BadRequest },
    { id: 'publish:live/u/s%zz', reject: RejectReason.BadRequest },
    { id: 'publish:live/u/s..x!', reject: RejectReason.BadRequest },
    { id: 'read:live/u/s', reject: RejectReason.BadMode },
    { id: '#!::r=live/u/s,m=request', reject: RejectReason.BadMode },
    { id: '#!::m=publish', reject: RejectReason.BadRequest },
    { id: `publish:live/u/s?token=${'x'.repeat(600)}`, reject: RejectReason.Unacceptable },
  ];
  for (const c of refused) {
    it(`refuses ${String(c.id).slice(0, 40)} with ${c.reject}`, () => {
      const r = parseSrtStreamId(c.id);
      assert.ok(!r.ok);
      assert.equal(r.reject, c.reject);
    });
  }

  it('builds stream ids that parse back, and none past 512 bytes', () => {
    const id = srtPublishStreamId('a+b@x.com', 'stream_1', 'eyJ.abc-_.sig');
    assert.ok(id);
    const r = parseSrtStreamId(id);
    assert.ok(r.ok);
    assert.equal(r.target.userId, 'a+b@x.com');
    assert.equal(r.target.token, 'eyJ.abc-_.sig');
    assert.equal(srtPublishStreamId('u', 's', 'x'.repeat(600)), null);
  });

  it('derives a stable per-stream passphrase libsrt accepts', () => {
    const p = srtStreamPassphrase('secret', 'live/u/s');
    assert.equal(p, srtStreamPassphrase('secret', 'live/u/s'));
    assert.notEqual(p, srtStreamPassphrase('secret', 'live/u/t'));
    assert.notEqual(p, srtStreamPassphrase('other', 'live/u/s'));
    assert.equal(p.length, 32);
    assert.match(p, /^[A-Za-z0-9_-]+$/);
  });
});

describe('SRT rejection for an authorization refusal', () => {
  const cases = [
    {
      decision: { allow: false as const, reason: 'invalid userId', badName: true },
      reject: RejectReason.BadRequest,
      code: 'SRT_BAD_STREAM_ID',
    },
    {
      decision: { allow: false as const, reason: 'publish token expired' },
      reject: RejectReason.Unauthorized,
      code: 'SRT_UNAUTHORIZED',
    },
    {
      decision: { allow: false as const, reason: 'missing publish token' },
      reject: RejectReason.Unauthorized,
      code: 'SRT_UNAUTHORIZED',
    },
    {
      decision: { allow: false as const, reason: 'publish token is for another relay' },
      reject: RejectReason.Forbidden,
      code: 'SRT_FORBIDDEN',
    },
    {
      decision: { allow: false as const, reason: 'relay is draining' },
      reject: RejectReason.Down,
      code: 'SRT_UNAUTHORIZED',
    },
  ];
  for (const c of cases) {
    it(`${c.decision.reason} → ${c.reject}`, () => {
      const r = rejectFor(c.decision);
      assert.equal(r.reject, c.reject);
      assert.equal(r.code, c.code);
    });
  }
});

describe('the SRT publish URL the glasses get', () => {
  it("uses only FFmpeg's option names (StreamPack's srtdroid throws on others) and decodes to the relay's stream id", () => {
    const url = srtPublishUrl('srt://relay:8890', 'a+b@c.com', 'abc_12', 'c1.abc.DEF-ghi_', {
      passphrase: 'p@ss word/1',
      latencyMs: 200,
    });
    assert.ok(url);
    const parsed = new URL(url);
    assert.deepEqual([...parsed.searchParams.keys()].sort(), ['latency', 'passphrase', 'streamid']);
    assert.equal(
      parsed.searchParams.get('latency'),
      '200000',
      'microseconds, as FFmpeg and srtdroid read it',
    );
    assert.equal(parsed.searchParams.get('passphrase'), 'p@ss word/1');
    // No raw `+` or space anywhere: Android's Uri and FFmpeg would read them differently.
    assert.doesNotMatch(url, /[+ ]/);
    const result = parseSrtStreamId(parsed.searchParams.get('streamid') ?? undefined);
    assert.ok(result.ok);
    assert.equal(result.target.userId, 'a+b@c.com');
    assert.equal(result.target.streamId, 'abc_12');
    assert.equal(result.target.token, 'c1.abc.DEF-ghi_');
  });
});
