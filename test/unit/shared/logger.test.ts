/**
 * The log format decision (pretty on a terminal, JSON otherwise, LOG_FORMAT overrides), what each format
 * writes, and one real pseudo-terminal (`script` from util-linux) proving the terminal is detected.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { chooseLogFormat, createLogger, type LogFormat } from '../../../src/shared/logger.ts';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

function collect(): { stream: Writable; text: () => string } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      chunks.push(chunk.toString());
      cb();
    },
  });
  return { stream, text: () => chunks.join('') };
}

describe('log format', () => {
  const cases: [string | undefined, boolean, LogFormat][] = [
    [undefined, true, 'pretty'],
    [undefined, false, 'json'],
    ['', true, 'pretty'],
    ['json', true, 'json'],
    ['JSON', true, 'json'],
    ['pretty', false, 'pretty'],
    [' pretty ', false, 'pretty'],
  ];
  for (const [value, tty, expected] of cases) {
    it(`LOG_FORMAT=${JSON.stringify(value)} on ${tty ? 'a terminal' : 'a pipe'} → ${expected}`, () => {
      assert.equal(chooseLogFormat({ LOG_FORMAT: value }, tty), expected);
    });
  }

  it('refuses any other LOG_FORMAT with CONFIG_INVALID naming the variable', () => {
    assert.throws(
      () => chooseLogFormat({ LOG_FORMAT: 'yaml' }, true),
      (err: Error & { code?: string }) => err.code === 'CONFIG_INVALID' && /LOG_FORMAT/.test(err.message),
    );
  });

  it('json writes one object per line; pretty writes a readable line, both redacted', () => {
    const json = collect();
    createLogger({ destination: json.stream, format: 'json' }).info({ token: 'sekrit', port: 1 }, 'hello');
    const line = JSON.parse(json.text().trim()) as Record<string, unknown>;
    assert.equal(line.msg, 'hello');
    assert.equal(line.token, '[redacted]');

    const pretty = collect();
    createLogger({ destination: pretty.stream, format: 'pretty' }).warn(
      { token: 'sekrit', port: 1 },
      'hello',
    );
    const text = pretty.text();
    assert.match(text, /^\[\d\d:\d\d:\d\d\.\d{3}\] WARN: hello \{"token":"\[redacted\]","port":1\}\n$/);
    assert.ok(!text.includes('sekrit'), 'no secret');
    assert.ok(!text.includes('\u001b['), 'no colours into a non-terminal');
  });

  it('a real pseudo-terminal gets pretty lines, a pipe gets JSON', async () => {
    const run = promisify(execFile);
    const program =
      "import('./src/shared/logger.ts').then((m) => m.createLogger().info({ n: 1 }, 'on a terminal?'))";
    const env = { ...process.env, LOG_FORMAT: '', NO_COLOR: '1' };
    // `script` gives the child a pseudo-terminal as stdout and copies what it writes to ours.
    const tty = await run(
      'script',
      ['-qec', `${process.execPath} --import tsx -e "${program}"`, '/dev/null'],
      { cwd: ROOT, env, timeout: 60_000 },
    );
    assert.match(tty.stdout, /INFO: on a terminal\? \{"n":1\}/);
    const piped = await run(process.execPath, ['--import', 'tsx', '-e', program], {
      cwd: ROOT,
      env,
      timeout: 60_000,
    });
    assert.equal((JSON.parse(piped.stdout) as { msg: string }).msg, 'on a terminal?');
  });
});
