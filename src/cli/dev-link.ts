/**
 * The dashboard link of a running `rtmp-relay dev`, handed to `npm run demo` (another process) through a
 * file only this user can read: the link carries the control token dev generated, which lives exactly as
 * long as that dev process, and the file is removed when it stops. Without it the demo could only print a
 * link that opens signed out. One file per cloud port, so two dev systems on one machine do not mix.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

function linkDir(env: NodeJS.ProcessEnv): string {
  const base = env.XDG_RUNTIME_DIR || os.tmpdir();
  return path.join(base, `rtmp-relay-${process.getuid?.() ?? 'user'}`);
}

/** Where the link of the dev system whose cloud listens on `cloudPort` is kept. */
export function devLinkPath(cloudPort: number, env: NodeJS.ProcessEnv = process.env): string {
  return path.join(linkDir(env), `dashboard-${Math.trunc(cloudPort)}.url`);
}

/** Writes the link (mode 0600 in a 0700 folder); returns its undo, which removes the file. */
export function writeDevLink(
  cloudPort: number,
  url: string,
  env: NodeJS.ProcessEnv = process.env,
): () => void {
  const file = devLinkPath(cloudPort, env);
  mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  writeFileSync(file, `${url}\n`, { mode: 0o600 });
  return () => rmSync(file, { force: true });
}

/** The link a dev system on `cloudPort` wrote, or null (none running, or it was started elsewhere). */
export function readDevLink(cloudPort: number, env: NodeJS.ProcessEnv = process.env): string | null {
  try {
    return readFileSync(devLinkPath(cloudPort, env), 'utf8').trim() || null;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}
