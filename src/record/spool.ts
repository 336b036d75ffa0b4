/**
 * The local spool: what a relay recorded and has not uploaded yet, on disk (RECORDING_SPOOL_DIR), so a store
 * that is down loses nothing that fits, and a relay killed mid-stream uploads it when it starts again. One
 * directory per part: its media files and `part.json` (the part's manifest with every spooled segment, and
 * how far the upload got), replaced atomically after each change. Bounded in bytes (RECORDING_SPOOL_MAX_MB):
 * a segment that does not fit is dropped and counted, never waited for; the live stream goes on.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { isValidMediaFile, isValidPartId } from './layout.ts';
import { PartManifest } from './manifest.ts';

export const SpoolState = z.object({
  manifest: PartManifest,
  /** Segments of `manifest.segments` uploaded, from the first. */
  uploadedSegments: z.number().int().min(0),
  /** Init numbers uploaded. */
  uploadedInits: z.array(z.number().int().min(0)),
  thumbnailUploaded: z.boolean(),
  /** Init numbers spooled (their file is in the part's directory). */
  inits: z.array(z.number().int().min(0)),
  /** The manifest as uploaded last is current (nothing to PUT). */
  manifestUploaded: z.boolean(),
});
export type SpoolState = z.infer<typeof SpoolState>;

const STATE_FILE = 'part.json';

export class Spool {
  readonly dir: string;
  readonly maxBytes: number;
  /** Bytes of media held now. */
  used = 0;
  /** Segments dropped because the spool was full. */
  dropped = 0;

  constructor(dir: string, maxBytes: number) {
    this.dir = path.resolve(dir);
    this.maxBytes = maxBytes;
    // Made on the first write: a relay that records nothing leaves no directory behind.
  }

  /**
   * Parts left by a previous run of this relay (killed, or stopped with uploads pending), with their
   * state; counts their bytes as used. Unreadable parts are removed (logged by the caller).
   */
  recover(): { states: SpoolState[]; broken: string[] } {
    const states: SpoolState[] = [];
    const broken: string[] = [];
    if (!existsSync(this.dir)) return { states, broken };
    for (const name of readdirSync(this.dir)) {
      const partDir = path.join(this.dir, name);
      if (!isValidPartId(name)) continue; // not ours: left alone
      try {
        const state = SpoolState.parse(JSON.parse(readFileSync(path.join(partDir, STATE_FILE), 'utf8')));
        for (const file of readdirSync(partDir)) {
          if (file === STATE_FILE) continue;
          const full = path.join(partDir, file);
          if (!isValidMediaFile(file)) {
            rmSync(full, { force: true }); // a write cut short (temporary name)
            continue;
          }
          // Only segments count against the bound (inits and thumbnails are small and never dropped).
          if (file.startsWith('seg')) this.used += statSync(full).size;
        }
        states.push(state);
      } catch {
        // No readable state: the part never recorded a segment, or its state write was cut; nothing to upload.
        broken.push(name);
        rmSync(partDir, { recursive: true, force: true });
      }
    }
    return { states, broken };
  }

  partDir(partId: string): string {
    if (!isValidPartId(partId)) throw new Error('invalid part id');
    return path.join(this.dir, partId);
  }

  /** Whether `bytes` more fit; if so they are counted as used. */
  reserve(bytes: number): boolean {
    if (this.used + bytes > this.maxBytes) return false;
    this.used += bytes;
    return true;
  }

  release(bytes: number): void {
    this.used = Math.max(0, this.used - bytes);
  }

  async writeMedia(partId: string, file: string, data: Buffer): Promise<void> {
    if (!isValidMediaFile(file)) throw new Error('invalid media name');
    const dir = this.partDir(partId);
    mkdirSync(dir, { recursive: true });
    const tmp = path.join(dir, `${file}.tmp`);
    await writeFile(tmp, data);
    await rename(tmp, path.join(dir, file));
  }

  readMedia(partId: string, file: string): Buffer {
    if (!isValidMediaFile(file)) throw new Error('invalid media name');
    return readFileSync(path.join(this.partDir(partId), file));
  }

  async removeMedia(partId: string, file: string): Promise<void> {
    if (!isValidMediaFile(file)) throw new Error('invalid media name');
    await rm(path.join(this.partDir(partId), file), { force: true });
  }

  async writeState(state: SpoolState): Promise<void> {
    const dir = this.partDir(state.manifest.partId);
    mkdirSync(dir, { recursive: true });
    const tmp = path.join(dir, `${STATE_FILE}.tmp`);
    await writeFile(tmp, JSON.stringify(state));
    await rename(tmp, path.join(dir, STATE_FILE));
  }

  /** The part is uploaded and closed: its directory goes. */
  removePart(partId: string): void {
    rmSync(this.partDir(partId), { recursive: true, force: true });
  }
}
