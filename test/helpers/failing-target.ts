/**
 * Not a test of its own: a file with known failures for test/integration/test-runner.test.ts, which checks
 * that `scripts/test.mjs` names them at the end of its output. Named without `.test.ts` so the suite never
 * runs it by itself.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

describe('outer suite', () => {
  describe('inner suite', () => {
    it('fails on an assertion', () => assert.equal(1, 2));
    it('passes', () => {});
  });
  it('fails on a throw', () => {
    throw new Error('boom\nsecond line');
  });
});

it('fails at the top level', () => assert.fail('deliberately'));
