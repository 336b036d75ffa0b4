import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loadConfig } from '../../../src/shared/config.ts';
import { RelayError } from '../../../src/shared/errors.ts';

describe('SRT configuration', () => {
  it('has the architecture defaults', () => {
    const c = loadConfig({}).srt;
    assert.equal(c.port, 8890);
    assert.equal(c.latencyMs, 120);
    assert.equal(c.passphrase, undefined);
    assert.equal(c.passphraseSecret, undefined);
    assert.equal(c.peerIdleTimeoutMs, 5000);
    assert.ok(c.authTimeoutMs < 3000, 'within libsrt’s connect timeout');
  });

  it('reads SRT_* and refuses bad values', () => {
    const c = loadConfig({ SRT_PORT: '0', SRT_LATENCY_MS: '300', SRT_PASSPHRASE: 'ten-chars!' }).srt;
    assert.equal(c.port, 0);
    assert.equal(c.latencyMs, 300);
    assert.equal(c.passphrase, 'ten-chars!');
    for (const env of [
      { SRT_PASSPHRASE: 'short' },
      { SRT_LATENCY_MS: '5' },
      { SRT_PASSPHRASE: 'ten-chars!', SRT_PASSPHRASE_SECRET: 'a-secret-of-16-chars' },
    ]) {
      assert.throws(() => loadConfig(env), RelayError, JSON.stringify(env));
    }
  });
});
