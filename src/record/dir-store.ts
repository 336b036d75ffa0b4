/**
 * The recording store in a directory (RECORDING_URL without `s3://`, default `./recordings` relative to the
 * working directory): keys become paths under the root, checked to stay under it; writes go to a temporary
 * name and are renamed into place, so a reader never sees half an object.
 */
import { createReadStream } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, rmdir, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import type { RecordingStore, StoredObject } from './store.ts';

const KEY_PATTERN = /^(?!.*(?:^|\/)\.\.?(?:\/|$))[A-Za-z0-9._+@/-]{1,1024}$/;

export class DirStore implements RecordingStore {
  readonly root: string;
  readonly description: string;
  #tmp = 0;

  constructor(root: string) {
    this.root = path.resolve(root);
    this.description = `dir:${this.root}`;
  }

  #path(key: string): string {
    if (!KEY_PATTERN.test(key) || key.startsWith('/')) throw new Error('invalid store key');
    const full = path.resolve(this.root, key);
    if (!full.startsWith(this.root + path.sep)) throw new Error('invalid store key');
    return full;
  }

  async put(key: string, body: Buffer): Promise<void> {
    const file = this.#path(key);
    await mkdir(path.dirname(file), { recursive: true });
    const tmp = `${file}.${process.pid}.${this.#tmp++}.tmp`;
    await writeFile(tmp, body);
    await rename(tmp, file);
  }

  async get(key: string): Promise<Buffer | null> {
    try {
      return await readFile(this.#path(key));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
  }

  async getStream(key: string): Promise<Readable | null> {
    const file = this.#path(key);
    try {
      await stat(file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
    return createReadStream(file);
  }

  async list(prefix: string): Promise<StoredObject[]> {
    // The deepest directory the prefix names, walked from there.
    const dirPart = prefix.includes('/') ? prefix.slice(0, prefix.lastIndexOf('/')) : '';
    const start = dirPart === '' ? this.root : this.#path(dirPart);
    const out: StoredObject[] = [];
    const walk = async (dir: string): Promise<void> => {
      let entries: import('node:fs').Dirent[];
      try {
        entries = await readdir(dir, { withFileTypes: true });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
        throw err;
      }
      for (const e of entries) {
        const full = path.join(dir, e.name);
        if (e.isDirectory()) await walk(full);
        else if (e.isFile() && !e.name.endsWith('.tmp')) {
          const key = path.relative(this.root, full).split(path.sep).join('/');
          if (!key.startsWith(prefix)) continue;
          const s = await stat(full).catch(() => null); // removed while we walked: not listed
          if (s) out.push({ key, size: s.size, modifiedAt: s.mtimeMs });
        }
      }
    };
    await walk(start);
    return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  async delete(keys: readonly string[]): Promise<void> {
    const dirs = new Set<string>();
    for (const key of keys) {
      const file = this.#path(key);
      await rm(file, { force: true });
      dirs.add(path.dirname(file));
    }
    // Empty directories left behind go too, up to the root: nothing of a deleted recording stays.
    for (let dir of [...dirs].sort((a, b) => b.length - a.length)) {
      while (dir.startsWith(this.root + path.sep)) {
        try {
          await rmdir(dir);
        } catch {
          break; // not empty (or gone): stop climbing
        }
        dir = path.dirname(dir);
      }
    }
  }

  close(): void {}
}
