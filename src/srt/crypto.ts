/**
 * SRT encryption as libsrt does it (draft-sharabayko-srt §6, gosrt `crypto/crypto.go`): the caller sends
 * its stream encrypting keys (SEKs, even and/or odd) wrapped (AES key wrap, RFC 3394) with a key encrypting
 * key (KEK) derived from the passphrase by PBKDF2-HMAC-SHA1 (2048 iterations, the last 8 bytes of the
 * salt); each data packet is AES-CTR with an IV made of the salt and the packet's sequence number. The
 * even/odd flag of each packet (KK) says which SEK; the caller announces new keys in a KMREQ mid-stream.
 * Node's crypto does every primitive (`id-aesNNN-wrap` is RFC 3394 with its default IV).
 */
import { createCipheriv, createDecipheriv, pbkdf2Sync } from 'node:crypto';
import { KeyFlag, type KeyMaterial } from './packet.ts';

export const KEK_ITERATIONS = 2048;
/** libsrt's passphrase bounds (SRTO_PASSPHRASE). */
export const PASSPHRASE_MIN = 10;
export const PASSPHRASE_MAX = 79;

const WRAP_IV = Buffer.from('a6a6a6a6a6a6a6a6', 'hex');

function wrapCipher(keyLength: number): string {
  return `id-aes${keyLength * 8}-wrap`;
}

/** The KEK for a passphrase and a KM salt (16 bytes): PBKDF2-HMAC-SHA1 over the salt's last 8 bytes. */
export function deriveKek(passphrase: string, salt: Buffer, keyLength: number): Buffer {
  return pbkdf2Sync(passphrase, salt.subarray(salt.length - 8), KEK_ITERATIONS, keyLength, 'sha1');
}

/** RFC 3394 key wrap. */
export function aesKeyWrap(kek: Buffer, keys: Buffer): Buffer {
  const c = createCipheriv(wrapCipher(kek.length), kek, WRAP_IV);
  return Buffer.concat([c.update(keys), c.final()]);
}

/** RFC 3394 key unwrap; null when the integrity check fails (a wrong passphrase). */
export function aesKeyUnwrap(kek: Buffer, wrapped: Buffer): Buffer | null {
  try {
    const d = createDecipheriv(wrapCipher(kek.length), kek, WRAP_IV);
    return Buffer.concat([d.update(wrapped), d.final()]);
  } catch {
    return null; // the unwrap's integrity check failed: the caller's passphrase differs from ours
  }
}

/** The AES-CTR IV of a packet: salt[0..14) XOR (sequence number at bytes 10..13), block counter 0. */
export function packetIv(salt: Buffer, seq: number): Buffer {
  const iv = Buffer.alloc(16);
  iv.writeUInt32BE(seq >>> 0, 10);
  for (let i = 0; i < 14; i++) iv[i] = iv[i]! ^ salt[i]!;
  return iv;
}

/** The keys of one connection: decrypts data packets, takes new keys from a KMREQ. */
export class SrtDecryptor {
  readonly keyLength: number;
  #salt: Buffer;
  #even: Buffer | null = null;
  #odd: Buffer | null = null;
  readonly #passphrase: string;

  private constructor(passphrase: string, km: KeyMaterial) {
    this.#passphrase = passphrase;
    this.keyLength = km.keyLength;
    this.#salt = km.salt;
  }

  /** Unwraps the keys of a KMREQ; null when the passphrase does not match. */
  static fromKeyMaterial(passphrase: string, km: KeyMaterial): SrtDecryptor | null {
    const d = new SrtDecryptor(passphrase, km);
    return d.update(km) ? d : null;
  }

  /** Takes the keys of a (re)keying KMREQ; false when they do not unwrap with our passphrase. */
  update(km: KeyMaterial): boolean {
    if (km.keyLength !== this.keyLength || km.cipher !== 2) return false;
    const kek = deriveKek(this.#passphrase, km.salt, km.keyLength);
    const keys = aesKeyUnwrap(kek, km.wrap);
    const n = km.keys === KeyFlag.Both ? 2 : 1;
    if (!keys || keys.length !== n * km.keyLength) return false;
    this.#salt = km.salt;
    if (km.keys === KeyFlag.Both) {
      this.#even = keys.subarray(0, km.keyLength);
      this.#odd = keys.subarray(km.keyLength);
    } else if (km.keys === KeyFlag.Even) this.#even = keys;
    else this.#odd = keys;
    return true;
  }

  /** Decrypts a payload encrypted with the key the KK bits name; null when that key is unknown. */
  decrypt(payload: Buffer, key: number, seq: number): Buffer | null {
    const sek = key === KeyFlag.Even ? this.#even : key === KeyFlag.Odd ? this.#odd : null;
    if (!sek) return null;
    const d = createDecipheriv(`aes-${sek.length * 8}-ctr`, sek, packetIv(this.#salt, seq));
    return Buffer.concat([d.update(payload), d.final()]);
  }
}
