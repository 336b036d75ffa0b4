import assert from 'node:assert/strict';
import { createCipheriv, pbkdf2Sync } from 'node:crypto';
import { describe, it } from 'node:test';
import { SynCookies } from '../../../src/srt/cookie.ts';
import { aesKeyUnwrap, aesKeyWrap, deriveKek, packetIv, SrtDecryptor } from '../../../src/srt/crypto.ts';
import { KeyFlag } from '../../../src/srt/packet.ts';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

describe('srt crypto', () => {
  // RFC 3394 §4: wrap vectors (128-bit KEK with 128-bit data; 256-bit KEK with 256-bit data).
  const wraps = [
    {
      kek: '000102030405060708090A0B0C0D0E0F',
      data: '00112233445566778899AABBCCDDEEFF',
      wrapped: '1FA68B0A8112B447 AEF34BD8FB5A7B82 9D3E862371D2CFE5',
    },
    {
      kek: '000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F',
      data: '00112233445566778899AABBCCDDEEFF000102030405060708090A0B0C0D0E0F',
      wrapped: '28C9F404C4B810F4 CBCCB35CFB87F826 3F5786E2D80ED326 CBC7F0E71A99F43B FB988B9B7A02DD21',
    },
  ];
  for (const w of wraps) {
    it(`AES key wrap, RFC 3394 vector with a ${w.kek.length * 4}-bit KEK`, () => {
      assert.deepEqual(aesKeyWrap(hex(w.kek), hex(w.data)), hex(w.wrapped));
      assert.deepEqual(aesKeyUnwrap(hex(w.kek), hex(w.wrapped)), hex(w.data));
      const tampered = hex(w.wrapped);
      tampered[3]! ^= 1;
      assert.equal(aesKeyUnwrap(hex(w.kek), tampered), null);
    });
  }

  it('PBKDF2-HMAC-SHA1 (RFC 6070 vector) and the KEK from the salt’s last 8 bytes', () => {
    assert.deepEqual(
      pbkdf2Sync('password', 'salt', 4096, 20, 'sha1'),
      hex('4b007901b765489abead49d926f721d065a429c1'),
    );
    const salt = hex('00000000000000007361 6c7400000000'.replace(/ /g, '').padEnd(32, '0'));
    assert.deepEqual(
      deriveKek('passphrase', salt, 16),
      pbkdf2Sync('passphrase', salt.subarray(8), 2048, 16, 'sha1'),
    );
  });

  it('decrypts AES-CTR packets with the even and odd keys of a KMREQ', () => {
    const salt = Buffer.alloc(16, 0x5a);
    const even = Buffer.alloc(16, 1);
    const odd = Buffer.alloc(16, 2);
    const kek = deriveKek('correct horse battery', salt, 16);
    const km = {
      keys: KeyFlag.Both,
      keki: 0,
      cipher: 2,
      auth: 0,
      se: 2,
      salt,
      keyLength: 16,
      wrap: aesKeyWrap(kek, Buffer.concat([even, odd])),
    };
    const d = SrtDecryptor.fromKeyMaterial('correct horse battery', km);
    assert.ok(d);
    assert.equal(SrtDecryptor.fromKeyMaterial('wrong passphrase', km), null);
    const plain = Buffer.from('G'.repeat(1316));
    for (const [flag, sek] of [
      [KeyFlag.Even, even],
      [KeyFlag.Odd, odd],
    ] as const) {
      const c = createCipheriv('aes-128-ctr', sek, packetIv(salt, 12345));
      const enc = Buffer.concat([c.update(plain), c.final()]);
      assert.deepEqual(d.decrypt(enc, flag, 12345), plain);
    }
    assert.equal(d.decrypt(plain, KeyFlag.None, 1), null);
  });

  it('IV: salt XOR the sequence number at bytes 10..13', () => {
    assert.deepEqual(packetIv(Buffer.alloc(16, 0xff), 0x01020304), hex('ffffffffffffffffffff fefdfcfb 0000'));
  });
});

describe('srt SYN cookies', () => {
  it('accepts a cookie from the same address in this minute or the last, nothing else', () => {
    let now = 1_000_000;
    const cookies = new SynCookies({ now: () => now });
    const c = cookies.make('10.0.0.1', 5000);
    assert.ok(cookies.check('10.0.0.1', 5000, c));
    assert.ok(!cookies.check('10.0.0.1', 5001, c));
    assert.ok(!cookies.check('10.0.0.2', 5000, c));
    now += 60_000;
    assert.ok(cookies.check('10.0.0.1', 5000, c));
    now += 60_000;
    assert.ok(!cookies.check('10.0.0.1', 5000, c));
  });
});
