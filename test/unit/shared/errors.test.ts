import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import {
  ErrorCodes,
  httpStatusOf,
  isErrorCode,
  RelayError,
  toRelayError,
} from '../../../src/shared/errors.ts';

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const full = path.join(dir, e.name);
    return e.isDirectory() ? sources(full) : full.endsWith('.ts') ? [full] : [];
  });
}

describe('error registry', () => {
  it('declares each code once, named by itself', () => {
    const entries = Object.entries(ErrorCodes);
    for (const [key, value] of entries) assert.equal(key, value);
    assert.equal(new Set(Object.values(ErrorCodes)).size, entries.length);
  });

  it('gives every code an HTTP error status (4xx or 5xx), carried by its errors', () => {
    for (const code of Object.values(ErrorCodes)) {
      const status = httpStatusOf(code);
      assert.ok(Number.isInteger(status) && status >= 400 && status <= 599, `${code}: ${status}`);
      assert.equal(new RelayError(code, 'x').httpStatus, status);
      assert.ok(isErrorCode(code));
    }
    assert.equal(httpStatusOf(ErrorCodes.CLOUD_STORE_FAILED), 503);
    assert.equal(httpStatusOf(ErrorCodes.MANAGED_STREAM_NOT_FOUND), 404);
    assert.ok(!isErrorCode('NOT_A_CODE') && !isErrorCode('toString') && !isErrorCode(undefined));
  });

  it('has no stale codes: every code is used in the sources', () => {
    const files = sources(path.resolve('src')).filter((f) => !f.endsWith(path.join('shared', 'errors.ts')));
    const text = files.map((f) => readFileSync(f, 'utf8')).join('\n');
    const unused = Object.keys(ErrorCodes).filter((code) => !text.includes(`ErrorCodes.${code}`));
    assert.deepEqual(unused, []);
  });

  it('classifies anything thrown, keeping the cause', () => {
    const cause = new TypeError('boom');
    const e = toRelayError(cause, ErrorCodes.RTMP_MESSAGE_MALFORMED);
    assert.ok(e instanceof RelayError);
    assert.equal(e.code, ErrorCodes.RTMP_MESSAGE_MALFORMED);
    assert.equal(e.cause, cause);
    const same = new RelayError(ErrorCodes.RTMP_BAD_NAME, 'x');
    assert.equal(toRelayError(same, ErrorCodes.AMF0_MALFORMED), same);
  });
});
