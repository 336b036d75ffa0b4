/**
 * An in-memory stand-in for net.Socket (the ConnSocket a ServerConnection needs), for fuzzing the whole
 * connection stack fast without TCP. Fakes are for one layer; the TCP path has its own tests.
 */
import { EventEmitter } from 'node:events';
import type { ConnSocket } from '../../src/rtmp/server-conn.ts';

export class MemorySocket extends EventEmitter implements ConnSocket {
  readonly remoteAddress: string;
  readonly written: Buffer[] = [];
  writtenBytes = 0;
  destroyed = false;
  writableLength = 0;

  constructor(remoteAddress = '10.255.0.1') {
    super();
    this.remoteAddress = remoteAddress;
  }

  /** Delivers bytes from the peer. */
  feed(data: Buffer): void {
    if (!this.destroyed) this.emit('data', data);
  }

  /** The peer half-closes. */
  peerEnd(): void {
    if (!this.destroyed) this.emit('end');
  }

  write(data: Buffer): boolean {
    this.writtenBytes += data.length;
    if (this.written.length < 64) this.written.push(data);
    return true;
  }

  end(): void {
    this.destroy();
  }

  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    queueMicrotask(() => this.emit('close'));
  }
}
