import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loadConfig } from '../../../src/shared/config.ts';
import { ErrorCodes, RelayError } from '../../../src/shared/errors.ts';
import { redactUrl } from '../../../src/shared/logger.ts';

describe('config', () => {
  it('has production defaults', () => {
    const c = loadConfig({});
    assert.equal(c.rtmp.port, 1935);
    assert.equal(c.rtmp.handshakeTimeoutMs, 10_000);
    assert.equal(c.rtmp.maxMessageSize, 8 * 1024 * 1024);
    assert.equal(c.publishAuth, 'token');
    assert.equal(loadConfig({}, { publishAuth: 'off' }).publishAuth, 'off');
  });

  it('reads timers in (fractional) seconds and ignores empty values', () => {
    const c = loadConfig({ RTMP_IDLE_TIMEOUT_SECONDS: '0.25', RTMP_PORT: '' });
    assert.equal(c.rtmp.idleTimeoutMs, 250);
    assert.equal(c.rtmp.port, 1935);
  });

  it('names every bad variable', () => {
    assert.throws(
      () => loadConfig({ RTMP_PORT: '70000', RTMP_IDLE_TIMEOUT_SECONDS: '-1', PUBLISH_AUTH: 'maybe' }),
      (e: unknown) =>
        e instanceof RelayError &&
        e.code === ErrorCodes.CONFIG_INVALID &&
        /RTMP_PORT/.test(e.message) &&
        /RTMP_IDLE_TIMEOUT_SECONDS/.test(e.message) &&
        /PUBLISH_AUTH/.test(e.message),
    );
  });
});

describe('redactUrl', () => {
  it('hides secret query values', () => {
    assert.equal(
      redactUrl('rtmp://h/live/u/s?token=abc&profile=copy'),
      'rtmp://h/live/u/s?token=[redacted]&profile=copy',
    );
    assert.equal(redactUrl('s?x=1&TOKEN=abc'), 's?x=1&TOKEN=[redacted]');
  });
});
