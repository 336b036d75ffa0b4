import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { hlsUserPath, isValidStreamId, isValidUserId } from '../../../src/contracts/names.ts';
import { parsePublishTarget } from '../../../src/rtmp/stream-key.ts';

describe('publish target', () => {
  const accepted: [string, { tcUrl?: string; app?: string; name: string }, string, string | undefined][] = [
    [
      'ffmpeg split',
      { tcUrl: 'rtmp://127.0.0.1:1935/live/user1', app: 'live/user1', name: 'stream1?token=abc' },
      'live/user1/stream1',
      'abc',
    ],
    [
      'email userId',
      { tcUrl: 'rtmp://localhost:1935/live/test@user.com', name: 'stream123' },
      'live/test@user.com/stream123',
      undefined,
    ],
    ['no tcUrl, app only', { app: 'live/user1', name: 'stream1' }, 'live/user1/stream1', undefined],
    ['quoted tcUrl', { tcUrl: '"rtmp://h/live/user1"', name: 'stream1' }, 'live/user1/stream1', undefined],
    ['trailing slash', { tcUrl: 'rtmp://h/live/user1/', name: 'stream1' }, 'live/user1/stream1', undefined],
    [
      'app live, name user/stream',
      { tcUrl: 'rtmp://h/live', name: 'user1/stream1?token=t' },
      'live/user1/stream1',
      't',
    ],
    [
      'librtmp options after the query',
      { tcUrl: 'rtmp://h:1/live/u', name: 'st?token=abc live=1' },
      'live/u/st',
      'abc',
    ],
    ['token in tcUrl (OBS server field)', { tcUrl: 'rtmp://h/live/u?token=q', name: 's' }, 'live/u/s', 'q'],
    ['percent-encoded @', { tcUrl: 'rtmp://h/live/a%40b.com', name: 's' }, 'live/a@b.com/s', undefined],
  ];
  for (const [name, input, key, token] of accepted) {
    it(`accepts ${name}`, () => {
      const r = parsePublishTarget(input);
      assert.ok(r.ok, r.ok ? '' : r.reason);
      assert.equal(r.target.key, key);
      assert.equal(r.target.token, token);
    });
  }

  it('keeps other query parameters apart from the token', () => {
    const r = parsePublishTarget({ tcUrl: 'rtmp://h/live/u', name: 's?token=x&profile=copy' });
    assert.ok(r.ok);
    assert.deepEqual(r.target.params, { profile: 'copy' });
    assert.ok(!JSON.stringify(r.target.params).includes('x'));
  });

  const refused: [string, { tcUrl?: unknown; app?: unknown; name: unknown }][] = [
    ['another app', { tcUrl: 'rtmp://h/app/u', name: 's' }],
    ['too short', { tcUrl: 'rtmp://h/live', name: 's' }],
    ['too long', { tcUrl: 'rtmp://h/live/u/x', name: 's' }],
    ['path traversal', { tcUrl: 'rtmp://h/live/..', name: 's' }],
    ['encoded traversal', { tcUrl: 'rtmp://h/live/%2e%2e', name: 's' }],
    ['encoded slash', { tcUrl: 'rtmp://h/live/a%2Fb', name: 's' }],
    ['userId starting with a dot', { tcUrl: 'rtmp://h/live/.u', name: 's' }],
    ['userId with ..', { tcUrl: 'rtmp://h/live/a..b', name: 's' }],
    ['streamId with a dot', { tcUrl: 'rtmp://h/live/u', name: 's.x' }],
    ['shell characters', { tcUrl: 'rtmp://h/live/u', name: '$(touch x)' }],
    ['newline', { tcUrl: 'rtmp://h/live/u', name: 's\n' }],
    ['empty name', { tcUrl: 'rtmp://h/live/u', name: '' }],
    ['non-string name', { tcUrl: 'rtmp://h/live/u', name: 5 }],
    ['malformed percent-encoding', { tcUrl: 'rtmp://h/live/%zz', name: 's' }],
    ['a huge name', { tcUrl: 'rtmp://h/live/u', name: 'a'.repeat(5000) }],
    ['streamId of 65 characters', { tcUrl: 'rtmp://h/live/u', name: 'a'.repeat(65) }],
  ];
  for (const [name, input] of refused) {
    it(`refuses ${name}`, () => {
      assert.equal(parsePublishTarget(input).ok, false);
    });
  }

  it('follows the naming contract', () => {
    assert.ok(isValidUserId('a'.repeat(128)));
    assert.ok(!isValidUserId('a'.repeat(129)));
    assert.ok(isValidUserId('x+tag@mail.example_1-2'));
    assert.ok(!isValidUserId('a/b'));
    assert.ok(isValidStreamId('A-z_09'));
    assert.ok(!isValidStreamId(''));
    assert.equal(hlsUserPath('test@user.com'), 'test-user.com');
  });
});
