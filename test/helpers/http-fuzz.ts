/**
 * HTTP fuzz case generation, shared by the suite and the bench target: deterministic per seed. Requests are
 * built from pieces that have broken HTTP servers before (traversal in every encoding, NUL and control
 * bytes, absurd lengths and numbers, LL-HLS query parameters out of range, duplicated parameters, junk
 * JSON and content types, odd methods), mixed with the routes the servers really have so the cases reach
 * past the router. `rawRequest` makes byte-level malformed requests for the HTTP parser itself.
 */

export interface FuzzRequest {
  method: string;
  url: string;
  headers: Record<string, string>;
  body?: string;
}

const SEGMENTS = [
  'hls',
  'api',
  'watch',
  'dashboard',
  'relay',
  'managed-streams',
  'rtmp-relay',
  'hls-ready',
  'register',
  'heartbeat',
  'destinations',
  'events',
  'viewers',
  'index.m3u8',
  'fuzz-user.com',
  'fuzz@user.com',
  'fuzzstream',
  '00000000-init0.mp4',
  '00000000-seg0.m4s',
  '00000000-seg0.0.m4s',
  'thumbnail.jpg',
  '..',
  '.',
  '%2e%2e',
  '%252e%252e',
  '..%2f..%2fetc%2fpasswd',
  '%2e%2e%5c',
  '....//',
  '%00',
  'a%00b',
  '%ff%fe',
  '%',
  '%zz',
  'é',
  '%F0%9F%92%A9',
  '~root',
  '$(id)',
  '`id`',
  ';ls',
  '|cat',
  '<script>',
  '{}',
  '[]',
  '*',
  'null',
  'undefined',
  '__proto__',
  'constructor',
  'prototype',
  '-1',
  '0',
  '99999999999999999999',
  '1e308',
  'NaN',
];

const QUERY_KEYS = [
  '_HLS_msn',
  '_HLS_part',
  '_HLS_skip',
  'token',
  'userId',
  'profile',
  '__proto__',
  'constructor',
  'a',
  '',
];
const QUERY_VALUES = [
  '0',
  '1',
  '-1',
  '2147483648',
  '9007199254740993',
  '1e400',
  'NaN',
  'YES',
  'v2',
  'no',
  '',
  '%00',
  '..%2f',
  '[object Object]',
  'x'.repeat(5000),
];

const METHODS = ['GET', 'GET', 'GET', 'HEAD', 'POST', 'POST', 'PUT', 'DELETE', 'OPTIONS', 'PATCH'];

const BODIES = [
  '',
  '{',
  '{}',
  '[]',
  'null',
  '"x"',
  '{"__proto__":{"admin":true}}',
  '{"constructor":{"prototype":{"x":1}}}',
  '{"relayId":"r","rtmpUrl":"javascript:alert(1)","hlsUrl":"file:///etc/passwd","maxStreams":1}',
  '{"relayId":"../../x","streams":[],"cpu":1e309,"draining":"yes"}',
  '{"userId":"a@b","streamId":"s","hlsUrl":"http://x/","relayId":"r"}',
  '{"streams":[{"userId":"a","streamId":"s","state":"publishing","stats":{"fps":-1}}]}',
  `{"a":${'['.repeat(2000)}${']'.repeat(2000)}}`,
  `{"k":"${'x'.repeat(100_000)}"}`,
];

const CONTENT_TYPES = [
  'application/json',
  'text/plain',
  'application/x-www-form-urlencoded',
  'multipart/form-data',
  '',
];

function pick<T>(random: () => number, list: readonly T[]): T {
  return list[Math.floor(random() * list.length)]!;
}

/** One request; `real` prefixes make a share of them hit existing routes. */
export function fuzzRequest(random: () => number, real: readonly string[]): FuzzRequest {
  const parts: string[] = [];
  const verbatim = random() < 0.4; // a real route as is: the handlers, not just the router, see the junk
  if (verbatim || random() < 0.6) parts.push(...pick(random, real).split('/').filter(Boolean));
  const depth = verbatim ? 0 : 1 + Math.floor(random() * 5);
  for (let i = 0; i < depth; i++) parts.push(pick(random, SEGMENTS));
  if (random() < 0.05) parts.push('x'.repeat(1 + Math.floor(random() * 3000)));
  let url = `/${parts.join(random() < 0.05 ? '//' : '/')}`;
  if (random() < 0.5) {
    const n = 1 + Math.floor(random() * 4);
    const q: string[] = [];
    for (let i = 0; i < n; i++) q.push(`${pick(random, QUERY_KEYS)}=${pick(random, QUERY_VALUES)}`);
    url += `?${q.join('&')}`;
  }
  const headers: Record<string, string> = {};
  if (random() < 0.3)
    headers.authorization = pick(random, [
      'Bearer ',
      'Bearer x',
      'Basic eA==',
      `Bearer ${'a'.repeat(4000)}`,
      'bearer x.y.z',
    ]);
  if (random() < 0.2) headers.origin = pick(random, ['http://evil.example', 'null', '*', 'file://']);
  if (random() < 0.2) headers['if-none-match'] = pick(random, ['*', '"x"', 'W/"x"', '"'.repeat(50)]);
  if (random() < 0.1) headers.range = pick(random, ['bytes=0-', 'bytes=-1', 'bytes=999999999-', 'bytes=a-b']);
  if (random() < 0.1) headers.accept = `*/*;q=${'x'.repeat(200)}`;
  const method = pick(random, METHODS);
  const request: FuzzRequest = { method, url, headers };
  if (
    method === 'POST' ||
    method === 'PUT' ||
    method === 'PATCH' ||
    (method === 'DELETE' && random() < 0.3)
  ) {
    const type = pick(random, CONTENT_TYPES);
    if (type) headers['content-type'] = type;
    request.body = pick(random, BODIES);
  }
  return request;
}

/** Byte-level malformed requests for the HTTP parser (sent on raw sockets). */
export function rawRequest(random: () => number): Buffer {
  const cases = [
    () => 'GET / HTTP/1.1\r\n\r\n', // no Host
    () => 'GET /hls/../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n',
    () => `GET /${'a'.repeat(100_000)} HTTP/1.1\r\nHost: x\r\n\r\n`,
    () => `GET / HTTP/1.1\r\nHost: x\r\nX: ${'b'.repeat(100_000)}\r\n\r\n`,
    () => 'GET / HTTP/9.9\r\nHost: x\r\n\r\n',
    () => 'GARBAGE\r\n\r\n',
    () => '\x00\x01\x02\x03\r\n\r\n',
    () => 'POST /api/relay/register HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n{',
    () => 'POST /api/relay/register HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n',
    () => 'POST /api/relay/register HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n',
    () => 'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
    () => 'GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n',
    () => 'GET /\x7f HTTP/1.1\r\nHost: x\r\n\r\n',
    () => 'GET / HTTP/1.1\nHost: x\n\n',
    () => 'GET / HTTP/1.1\r\nHost: x\r\n Folded: y\r\n\r\n',
    () => `${'GET / HTTP/1.1\r\nHost: x\r\n\r\n'.repeat(50)}`,
    () => 'GET /hls/a/b/index.m3u8?_HLS_msn=1&_HLS_part=1&_HLS_msn=2 HTTP/1.1\r\nHost: x\r\n\r\n',
    () => 'GET /hls/a/b/index.m3u8 HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n',
  ];
  const text = pick(random, cases)();
  const bytes = Buffer.from(text, 'latin1');
  if (random() < 0.3 && bytes.length > 0)
    bytes[Math.floor(random() * bytes.length)] = Math.floor(random() * 256);
  return bytes;
}
