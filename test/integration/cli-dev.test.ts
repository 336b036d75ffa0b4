/**
 * `rtmp-relay dev` as a newcomer runs it (what `npm start` starts): the real command in its own process,
 * accepting the seed's publish command line (an email userId) on the port it prints, then stopping cleanly
 * on SIGTERM; the readable lines a person gets on a terminal, with one dashboard link that signs in and a
 * shutdown that says what it closed.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { describe, it } from 'node:test';
import { readDevLink } from '../../src/cli/dev-link.ts';
import { startTool } from '../helpers/process.ts';
import { publisherArgv } from '../helpers/publishers.ts';

/** The keys of a JSON object's top level, duplicates kept (JSON.parse keeps only the last of each). */
function topLevelKeys(text: string): string[] {
  const keys: string[] = [];
  let depth = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '"') {
      let j = i + 1;
      while (text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      if (depth === 1 && text[j + 1] === ':') keys.push(text.slice(i + 1, j));
      i = j;
    } else if (c === '{' || c === '[') depth++;
    else if (c === '}' || c === ']') depth--;
  }
  return keys;
}

/** Starts `rtmp-relay dev` on free loopback ports and follows its JSON log lines. */
function startDevCommand(extraEnv: Record<string, string> = {}) {
  const child = spawn(process.execPath, ['bin/rtmp-relay.mjs', 'dev'], {
    env: {
      ...process.env,
      RTMP_PORT: '0',
      SRT_PORT: '0',
      WEBRTC_UDP_PORT: '0',
      RTMP_HOST: '127.0.0.1',
      HLS_PORT: '0',
      API_PORT: '0',
      METRICS_PORT: '0',
      CLOUD_PORT: '0',
      CLOUD_HOST: '127.0.0.1',
      HLS_HOST: '127.0.0.1',
      LOG_LEVEL: 'info',
      LOG_FORMAT: 'json',
      ...extraEnv,
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const lines: Record<string, unknown>[] = [];
  const raw: string[] = [];
  const waiters: {
    match: (l: Record<string, unknown>) => boolean;
    resolve: (l: Record<string, unknown>) => void;
  }[] = [];
  createInterface({ input: child.stdout! }).on('line', (text) => {
    raw.push(text);
    const line = JSON.parse(text) as Record<string, unknown>;
    lines.push(line);
    for (const w of waiters.filter((x) => x.match(line))) {
      waiters.splice(waiters.indexOf(w), 1);
      w.resolve(line);
    }
  });
  const waitLine = (match: (l: Record<string, unknown>) => boolean): Promise<Record<string, unknown>> => {
    const seen = lines.find(match);
    return seen ? Promise.resolve(seen) : new Promise((resolve) => waiters.push({ match, resolve }));
  };
  return { child, lines, raw, waitLine };
}

describe('rtmp-relay dev', () => {
  it('accepts a publish to live/test@user.com/stream123, serves its HLS, and exits 0 on SIGTERM', async () => {
    const { child, lines, raw, waitLine } = startDevCommand();
    try {
      const listening = await waitLine((l) => l.msg === 'RTMP listening');
      assert.ok(
        lines.some((l) => /PUBLISH AUTH IS OFF/.test(String(l.msg))),
        'dev mode warns that auth is off',
      );
      const { command, args } = publisherArgv('ffmpeg', {
        url: `rtmp://127.0.0.1:${listening.port}/live/test@user.com/stream123`,
        seconds: 1,
        live: false,
      });
      const result = await startTool(command, args, { timeoutMs: 60_000 }).done;
      assert.equal(result.code, 0, result.stderr);
      const ended = await waitLine((l) => l.msg === 'publish ended: FCUnpublish');
      assert.equal(ended.key, 'live/test@user.com/stream123');
      assert.ok(Number(ended.videoFrames) >= 12);
      const watch = await waitLine((l) => String(l.msg).startsWith('watch: '));
      const url = String(watch.msg).slice('watch: '.length);
      assert.match(url, /^http:\/\/localhost:\d+\/hls\/test-user\.com\/stream123\/index\.m3u8$/);
      const res = await fetch(url.replace('localhost', '127.0.0.1'));
      assert.equal(res.status, 200);
      assert.match(await res.text(), /#EXTINF/);
      // A clean run warns only that auth is off; every key of a line appears once (JSON.parse keeps the last).
      const warnings = lines.filter((l) => Number(l.level) >= 40).map((l) => String(l.msg));
      assert.deepEqual(
        warnings,
        [lines.find((l) => /PUBLISH AUTH IS OFF/.test(String(l.msg)))!.msg],
        raw.join('\n'),
      );
      for (const text of raw) {
        const keys = topLevelKeys(text);
        assert.equal(new Set(keys).size, keys.length, `a key appears twice: ${text}`);
      }
      child.kill('SIGTERM');
      const [code] = await once(child, 'exit');
      assert.equal(code, 0);
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('with PUBLISH_AUTH=token prints a dev token that publishes; without it the publish is refused', async () => {
    const { child, lines, waitLine } = startDevCommand({ PUBLISH_AUTH: 'token' });
    try {
      const publishWith = await waitLine((l) => String(l.msg).startsWith('publish with: '));
      assert.ok(lines.some((l) => /PUBLISH AUTH IS ON: a dev token/.test(String(l.msg))));
      const url = /rtmp:\/\/\S+/.exec(String(publishWith.msg))?.[0] ?? '';
      assert.match(
        url,
        /^rtmp:\/\/localhost:\d+\/live\/test@user\.com\/stream123\?token=[\w-]+\.[\w-]+\.[\w-]+$/,
      );
      const local = url.replace('localhost', '127.0.0.1');
      const refused = publisherArgv('ffmpeg', {
        url: local.replace(/\?token=.*/, ''),
        seconds: 1,
        live: false,
      });
      const noToken = await startTool(refused.command, refused.args, { timeoutMs: 60_000 }).done;
      assert.notEqual(noToken.code, 0, 'a publish without the token fails');
      const { command, args } = publisherArgv('ffmpeg', { url: local, seconds: 1, live: false });
      const result = await startTool(command, args, { timeoutMs: 60_000 }).done;
      assert.equal(result.code, 0, result.stderr);
      const watch = await waitLine((l) => String(l.msg).startsWith('watch: '));
      const res = await fetch(String(watch.msg).slice('watch: '.length).replace('localhost', '127.0.0.1'));
      assert.equal(res.status, 200);
      child.kill('SIGTERM');
      const [code] = await once(child, 'exit');
      assert.equal(code, 0);
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('LOG_FORMAT=pretty: readable lines, the URLs once each, one dashboard link that works, what it closed', async () => {
    const child = spawn(process.execPath, ['bin/rtmp-relay.mjs', 'dev'], {
      env: {
        ...process.env,
        RTMP_PORT: '0',
        SRT_PORT: '0',
        WEBRTC_UDP_PORT: '0',
        RTMP_HOST: '127.0.0.1',
        HLS_PORT: '0',
        API_PORT: '0',
        METRICS_PORT: '0',
        CLOUD_PORT: '0',
        CLOUD_HOST: '127.0.0.1',
        HLS_HOST: '127.0.0.1',
        LOG_LEVEL: 'info',
        LOG_FORMAT: 'pretty',
      },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    try {
      const lines: string[] = [];
      const seen = (re: RegExp): Promise<string> =>
        new Promise((resolve) => {
          const hit = lines.find((l) => re.test(l));
          if (hit) return resolve(hit);
          const onLine = (l: string): void => {
            if (!re.test(l)) return;
            reader.off('line', onLine);
            resolve(l);
          };
          reader.on('line', onLine);
        });
      const reader = createInterface({ input: child.stdout! });
      reader.on('line', (l) => lines.push(l));
      await seen(/INFO: cloud API: /);
      for (const l of lines) assert.match(l, /^\[\d\d:\d\d:\d\d\.\d{3}\] (INFO|WARN): /, 'a readable line');
      assert.equal(lines.filter((l) => /publish with: .*rtmp:\/\/localhost:\d+\/live\//.test(l)).length, 1);
      assert.equal(
        lines.filter((l) => /watch \(HLS and LL-HLS\): http:\/\/\S+\/index\.m3u8/.test(l)).length,
        1,
      );
      assert.equal(
        lines.filter((l) =>
          /or DASH: http:\/\/\S+\/index\.mpd, or WebRTC \(WHEP\): http:\/\/\S+\/whep\//.test(l),
        ).length,
        1,
        'the DASH and WHEP URLs beside the HLS one',
      );
      const links = lines.filter((l) => /\/dashboard/.test(l));
      assert.equal(links.length, 1, `one dashboard link, not: ${links.join('\n')}`);
      const link = /http:\/\/\S+\/dashboard#token=(\S+)/.exec(links[0]!);
      assert.ok(link, links[0]);
      const url = new URL(link[0]);
      const page = await fetch(url);
      assert.equal(page.status, 200);
      const api = await fetch(new URL('/api/dashboard', url), {
        headers: { authorization: `Bearer ${decodeURIComponent(link[1]!)}` },
      });
      assert.equal(api.status, 200, 'the token in the link opens the dashboard API');
      assert.equal(readDevLink(Number(url.port)), link[0], 'the demo finds the same link');

      const exited = once(child, 'exit');
      child.kill('SIGTERM');
      const stopped = await seen(/INFO: stopped: /);
      assert.match(stopped, /RTMP :\d+ closed, 0 streams ended .*HLS :\d+.*cloud :\d+ closed/);
      const [code] = await exited;
      assert.equal(code, 0);
      assert.equal(readDevLink(Number(url.port)), null, 'the link file goes with the process');
    } finally {
      child.kill('SIGKILL');
    }
  });
});
