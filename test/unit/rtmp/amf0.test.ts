import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  AMF0_MAX_DEPTH,
  Amf0EcmaArray,
  type Amf0Encodable,
  type Amf0Value,
  decodeAmf0,
  decodeAmf0All,
  encodeAmf0,
} from '../../../src/rtmp/amf0.ts';
import { ErrorCodes, RelayError } from '../../../src/shared/errors.ts';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const obj = (o: Record<string, Amf0Value>): Amf0Value => Object.assign(Object.create(null), o);

/** One table for both directions: `value` encodes to `bytes` and `bytes` decode to `decoded ?? value`. */
const cases: { name: string; value: Amf0Encodable; bytes: Buffer; decoded?: Amf0Value }[] = [
  { name: 'number', value: 1, bytes: hex('00 3ff0000000000000') },
  { name: 'negative number', value: -2.5, bytes: hex('00 c004000000000000') },
  { name: 'true', value: true, bytes: hex('01 01') },
  { name: 'false', value: false, bytes: hex('01 00') },
  { name: 'string', value: 'connect', bytes: hex('02 0007 636f6e6e656374') },
  { name: 'empty string', value: '', bytes: hex('02 0000') },
  { name: 'utf-8 string', value: 'é', bytes: hex('02 0002 c3a9') },
  { name: 'null', value: null, bytes: hex('05') },
  { name: 'undefined', value: undefined, bytes: hex('06') },
  { name: 'object', value: obj({ app: 'live' }), bytes: hex('03 0003 617070 02 0004 6c697665 0000 09') },
  { name: 'empty object', value: obj({}), bytes: hex('03 0000 09') },
  {
    name: 'ecma array',
    value: new Amf0EcmaArray(obj({ fps: 14 }) as Record<string, Amf0Value>),
    bytes: hex('08 00000001 0003 667073 00 402c000000000000 0000 09'),
    decoded: obj({ fps: 14 }),
  },
  { name: 'strict array', value: [1, 'a'], bytes: hex('0a 00000002 00 3ff0000000000000 02 0001 61') },
  { name: 'date', value: new Date(0), bytes: hex('0b 0000000000000000 0000') },
  {
    name: 'nested',
    value: obj({ a: obj({ b: [null] }) }),
    bytes: hex('03 0001 61 03 0001 62 0a 00000001 05 0000 09 0000 09'),
  },
];

describe('AMF0', () => {
  for (const c of cases) {
    it(`encodes ${c.name}`, () => {
      assert.deepEqual(encodeAmf0(c.value), c.bytes);
    });
    it(`decodes ${c.name}`, () => {
      const { value, offset } = decodeAmf0(c.bytes);
      assert.deepEqual(value, c.decoded ?? c.value);
      assert.equal(offset, c.bytes.length);
    });
    it(`refuses every truncation of ${c.name}`, () => {
      for (let n = 0; n < c.bytes.length; n++) {
        assert.throws(
          () => decodeAmf0(c.bytes.subarray(0, n)),
          (e: unknown) => e instanceof RelayError && e.code === ErrorCodes.AMF0_MALFORMED,
          `truncated at ${n}`,
        );
      }
    });
  }

  it('decodes a whole command body and every prefix of it either fails cleanly or decodes fewer values', () => {
    const body = encodeAmf0('connect', 1, {
      app: 'live/user1',
      tcUrl: 'rtmp://h/live/user1',
      flashVer: 'FMLE/3.0',
    });
    assert.deepEqual(decodeAmf0All(body)[0], 'connect');
    for (let n = 0; n < body.length; n++) {
      try {
        decodeAmf0All(body.subarray(0, n));
      } catch (e) {
        assert.ok(e instanceof RelayError && e.code === ErrorCodes.AMF0_MALFORMED);
      }
    }
  });

  it('reads long strings and typed objects', () => {
    assert.equal(decodeAmf0(hex('0c 00000002 6869')).value, 'hi');
    assert.deepEqual(decodeAmf0(hex('10 0001 43 0001 78 05 0000 09')).value, obj({ x: null }));
  });

  it('encodes strings longer than 65535 bytes as long strings', () => {
    const long = 'x'.repeat(70_000);
    const bytes = encodeAmf0(long);
    assert.equal(bytes[0], 0x0c);
    assert.equal(decodeAmf0(bytes).value, long);
  });

  it('refuses hostile input with AMF0_MALFORMED', () => {
    const hostile: [string, Buffer][] = [
      ['unknown marker', hex('42')],
      ['reference marker', hex('07 0001')],
      ['AMF3 switch', hex('11 00')],
      ['bare object end', hex('09')],
      ['string longer than the buffer', hex('02 ffff 61')],
      ['long string of 4 GB', hex('0c ffffffff 61')],
      ['strict array count beyond the buffer', hex('0a ffffffff 05')],
      ['object missing its end marker', hex('03 0001 61 05 0000 05')],
      [
        'nesting deeper than the limit',
        Buffer.concat([...Array.from({ length: AMF0_MAX_DEPTH + 2 }, () => hex('0a 00000001')), hex('05')]),
      ],
    ];
    for (const [name, bytes] of hostile) {
      assert.throws(
        () => decodeAmf0All(bytes),
        (e: unknown) => e instanceof RelayError && e.code === ErrorCodes.AMF0_MALFORMED,
        name,
      );
    }
  });

  it('keeps keys like __proto__ as plain data', () => {
    const bytes = hex('03 0009 5f5f70726f746f5f5f 01 01 0000 09');
    const value = decodeAmf0(bytes).value as Record<string, unknown>;
    assert.equal(Object.getPrototypeOf(value), null);
    // biome-ignore lint/suspicious/noProto: the test reads an own key named "__proto__", not the accessor
    assert.equal(value.__proto__, true);
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
  });
});
