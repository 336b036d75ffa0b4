import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseRtmpUrl, type RtmpUrl, redactRtmpUrl } from '../../../src/rtmp/client-url.ts';

type Expected = Pick<RtmpUrl, 'scheme' | 'host' | 'port' | 'app' | 'streamName' | 'tcUrl' | 'redacted'>;

const VALID: [string, Expected][] = [
  [
    'rtmp://a.rtmp.youtube.com/live2/abcd-efgh-ijkl-mnop',
    {
      scheme: 'rtmp',
      host: 'a.rtmp.youtube.com',
      port: 1935,
      app: 'live2',
      streamName: 'abcd-efgh-ijkl-mnop',
      tcUrl: 'rtmp://a.rtmp.youtube.com/live2',
      redacted: 'rtmp://a.rtmp.youtube.com/live2/[redacted]',
    },
  ],
  [
    'rtmps://a.rtmps.youtube.com:443/live2/abcd-efgh',
    {
      scheme: 'rtmps',
      host: 'a.rtmps.youtube.com',
      port: 443,
      app: 'live2',
      streamName: 'abcd-efgh',
      tcUrl: 'rtmps://a.rtmps.youtube.com:443/live2',
      redacted: 'rtmps://a.rtmps.youtube.com:443/live2/[redacted]',
    },
  ],
  [
    // Facebook: the key carries a query, and the query stays on the publish name.
    'rtmps://live-api-s.facebook.com/rtmp/FB-123-0-AbC?s_bl=1&s_sw=0&a=AbX',
    {
      scheme: 'rtmps',
      host: 'live-api-s.facebook.com',
      port: 443,
      app: 'rtmp',
      streamName: 'FB-123-0-AbC?s_bl=1&s_sw=0&a=AbX',
      tcUrl: 'rtmps://live-api-s.facebook.com/rtmp',
      redacted: 'rtmps://live-api-s.facebook.com/rtmp/[redacted]',
    },
  ],
  [
    // Three segments: the app has an instance (FFmpeg's split), as the relay's own ingest expects.
    'RTMP://127.0.0.1:19350/live/user1/stream1?token=abc',
    {
      scheme: 'rtmp',
      host: '127.0.0.1',
      port: 19350,
      app: 'live/user1',
      streamName: 'stream1?token=abc',
      tcUrl: 'rtmp://127.0.0.1:19350/live/user1',
      redacted: 'rtmp://127.0.0.1:19350/live/user1/[redacted]',
    },
  ],
  [
    // A colon before the second slash keeps the app to one segment (mp4:folder/file).
    'rtmp://h/vod/mp4:folder/file',
    {
      scheme: 'rtmp',
      host: 'h',
      port: 1935,
      app: 'vod',
      streamName: 'mp4:folder/file',
      tcUrl: 'rtmp://h/vod',
      redacted: 'rtmp://h/vod/[redacted]',
    },
  ],
  [
    'rtmp://[::1]:1936/app/key#with-hash',
    {
      scheme: 'rtmp',
      host: '::1',
      port: 1936,
      app: 'app',
      streamName: 'key#with-hash',
      tcUrl: 'rtmp://[::1]:1936/app',
      redacted: 'rtmp://[::1]:1936/app/[redacted]',
    },
  ],
];

const INVALID: [string, RegExp][] = [
  ['', /empty/],
  ['http://example.com/app/key', /only rtmp/],
  ['rtmpe://example.com/app/key', /only rtmp/],
  ['srt://example.com:9000', /only rtmp/],
  ['rtmp://', /no host/],
  ['rtmp:///app/key', /no host/],
  ['rtmp://user:secret@example.com/app/key', /credentials/],
  ['rtmp://example.com', /no application/],
  ['rtmp://example.com/app', /no stream key/],
  ['rtmp://example.com/app/', /no stream key/],
  ['rtmp://example.com/app/key/', /no stream key/],
  ['rtmp://example.com/app/?key=1', /no stream key/],
  ['rtmp://example.com:0/app/key', /port out of range/],
  ['rtmp://example.com:70000/app/key', /port out of range/],
  ['rtmp://example.com:12ab/app/key', /invalid port/],
  ['rtmp://exa mple.com/app/key', /spaces/],
  ['rtmp://example.com/app/k\ney', /control/],
  ['rtmp://example.com/app/k\u0000ey', /control/],
  ['rtmp://ex$ample.com/app/key', /invalid host/],
  ['rtmp://[::1/app/key', /IPv6/],
  ['rtmp://[nope]/app/key', /IPv6/],
  [`rtmp://example.com/app/${'k'.repeat(1100)}`, /longer than 1024/],
];

describe('parseRtmpUrl', () => {
  for (const [input, expected] of VALID) {
    it(`parses ${input}`, () => {
      const r = parseRtmpUrl(input);
      assert.ok(r.ok, r.ok ? '' : r.reason);
      assert.deepEqual(r.url, expected);
    });
  }

  for (const [input, reason] of INVALID) {
    it(`refuses ${JSON.stringify(input.slice(0, 60))}`, () => {
      const r = parseRtmpUrl(input);
      assert.equal(r.ok, false);
      if (!r.ok) {
        assert.match(r.reason, reason);
        assert.ok(!r.reason.includes('secret'), 'a reason quoted a credential');
      }
    });
  }
});

describe('redactRtmpUrl', () => {
  it('never shows the stream key, its query or credentials', () => {
    const cases: [string, string][] = [
      ['rtmp://a.rtmp.youtube.com/live2/SECRETKEY', 'rtmp://a.rtmp.youtube.com/live2/[redacted]'],
      ['rtmps://h:443/rtmp/FB-SECRETKEY?s_bl=1', 'rtmps://h:443/rtmp/[redacted]'],
      // Unparsable: everything after the host goes.
      ['http://h.example/app/SECRETKEY', 'http://h.example/[redacted]'],
      ['rtmp://user:SECRETKEY@h/app/x', 'rtmp://h/[redacted]'],
      ['rtmp://h/app', 'rtmp://h/[redacted]'],
      ['SECRETKEY', '[redacted]'],
    ];
    for (const [input, expected] of cases) {
      const out = redactRtmpUrl(input);
      assert.equal(out, expected);
      assert.ok(!out.includes('SECRETKEY'), out);
    }
  });
});
