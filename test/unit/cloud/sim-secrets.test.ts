import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { simToken, startCommand } from '../../../src/cli/commands.ts';
import { redactTokens } from '../../../src/sim/glasses-sim.ts';

const JWT = 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhQGIuY29tIn0.c2lnbmF0dXJl';

describe('glasses simulator secrets', () => {
  it('refuses a token on the command line', async () => {
    for (const args of [
      ['--user', 'a@b.com', '--token', JWT],
      ['--user', 'a@b.com', `--token=${JWT}`],
    ]) {
      await assert.rejects(startCommand('glasses-sim', args), /never from argv/);
    }
  });

  it('reads the token from a file (first line) or GLASSES_TOKEN', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'sim-token-'));
    try {
      const file = path.join(dir, 'token');
      await writeFile(file, `${JWT}\n`);
      assert.equal(await simToken(file, 'from-env'), JWT, 'the file wins');
      assert.equal(await simToken(undefined, ` ${JWT} `), JWT);
      assert.equal(await simToken(undefined, undefined), undefined);
      await writeFile(file, '\n');
      await assert.rejects(simToken(file, undefined), /empty/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("keeps publish tokens out of what it logs of FFmpeg's messages", () => {
    const line = `rtmp://127.0.0.1:1935/live/a@b.com/s1?token=${JWT}: Input/output error`;
    const out = redactTokens(line);
    assert.ok(!out.includes(JWT.split('.')[2]!), out);
    assert.match(out, /Input\/output error/);
    assert.ok(!redactTokens(`bare ${JWT} here`).includes('eyJ'));
  });
});
