import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildClientC0C1, HANDSHAKE_SIZE, ServerHandshake } from '../../../src/rtmp/handshake.ts';
import { ErrorCodes, RelayError } from '../../../src/shared/errors.ts';

function c2(): Buffer {
  return Buffer.alloc(HANDSHAKE_SIZE, 7);
}

describe('server handshake', () => {
  it('answers C0+C1 with S0+S1+S2: version 3, zero S1 version bytes, S2 echoing C1', () => {
    const hs = new ServerHandshake();
    const c0c1 = buildClientC0C1();
    const step = hs.push(c0c1);
    assert.equal(step.done, false);
    const reply = step.reply!;
    assert.equal(reply.length, 1 + 2 * HANDSHAKE_SIZE);
    assert.equal(reply[0], 3);
    assert.deepEqual(reply.subarray(5, 9), Buffer.alloc(4));
    assert.deepEqual(reply.subarray(1 + HANDSHAKE_SIZE), c0c1.subarray(1));
    const end = hs.push(c2());
    assert.equal(end.done, true);
    assert.equal(hs.done, true);
  });

  it("accepts ffmpeg's digest-style C1 (version 9.0.124.2) and a C2 that does not echo S1", () => {
    const c0c1 = buildClientC0C1();
    c0c1.writeUInt32BE(0x09007c02, 5);
    const hs = new ServerHandshake();
    assert.ok(hs.push(c0c1).reply);
    assert.equal(hs.push(Buffer.alloc(HANDSHAKE_SIZE, 0xab)).done, true);
  });

  it('works one byte at a time and hands over the bytes after C2', () => {
    const hs = new ServerHandshake();
    const all = Buffer.concat([buildClientC0C1(), c2(), Buffer.from([1, 2, 3])]);
    let replies = 0;
    let rest: Buffer | undefined;
    for (let i = 0; i < all.length; i++) {
      const step = hs.push(all.subarray(i, i + 1));
      if (step.reply) replies++;
      if (step.done) {
        rest = Buffer.concat([step.rest, all.subarray(i + 1)]);
        break;
      }
    }
    assert.equal(replies, 1);
    assert.deepEqual(rest, Buffer.from([1, 2, 3]));
  });

  it('hands over chunk bytes that arrive in the same read as C0+C1+C2', () => {
    const hs = new ServerHandshake();
    const step = hs.push(Buffer.concat([buildClientC0C1(), c2(), Buffer.from([9])]));
    assert.equal(step.done, true);
    assert.ok(step.reply);
    assert.deepEqual(step.done && step.rest, Buffer.from([9]));
  });

  const refused: [string, number, string][] = [
    ['RTMPE (C0 = 6)', 6, ErrorCodes.RTMP_HANDSHAKE_ENCRYPTED],
    ['unknown version', 5, ErrorCodes.RTMP_HANDSHAKE_VERSION],
    ['an HTTP request', 'G'.charCodeAt(0), ErrorCodes.RTMP_HANDSHAKE_VERSION],
  ];
  for (const [name, version, code] of refused) {
    it(`refuses ${name} on the first byte`, () => {
      assert.throws(
        () => new ServerHandshake().push(Buffer.from([version])),
        (e: unknown) => e instanceof RelayError && e.code === code,
      );
    });
  }
});
