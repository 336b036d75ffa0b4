/** A throwaway self-signed certificate for localhost / 127.0.0.1 (openssl, at test time; never committed). */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

export interface TestCert {
  key: Buffer;
  cert: Buffer;
  keyFile: string;
  certFile: string;
  /** Removes the files. */
  remove(): void;
}

export async function selfSignedCert(): Promise<TestCert> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'test-cert-'));
  const keyFile = path.join(dir, 'key.pem');
  const certFile = path.join(dir, 'cert.pem');
  await promisify(execFile)('openssl', [
    ...['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1'],
    ...['-keyout', keyFile, '-out', certFile, '-subj', '/CN=localhost'],
    ...['-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1'],
  ]);
  return {
    key: readFileSync(keyFile),
    cert: readFileSync(certFile),
    keyFile,
    certFile,
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}
