/**
 * Makes sure no FFmpeg outlives the relay: every child runs in its own process group (so its own children
 * go with it), is registered here while alive, and is SIGKILLed with its group when the relay process exits
 * for any reason. One reaper is created by the composition root and passed down; close() unhooks it.
 */

export class ChildReaper {
  readonly #groups = new Set<number>();
  readonly #onExit = (): void => this.killAll();

  constructor() {
    process.on('exit', this.#onExit);
  }

  get size(): number {
    return this.#groups.size;
  }

  add(pid: number): void {
    this.#groups.add(pid);
  }

  delete(pid: number): void {
    this.#groups.delete(pid);
  }

  /** Signals a child's whole process group; false when it is already gone. */
  signal(pid: number, signal: NodeJS.Signals): boolean {
    try {
      process.kill(-pid, signal);
      return true;
    } catch {
      return false; // ESRCH: the group is gone already, which is what we wanted
    }
  }

  killAll(): void {
    for (const pid of this.#groups) this.signal(pid, 'SIGKILL');
    this.#groups.clear();
  }

  close(): void {
    this.killAll();
    process.off('exit', this.#onExit);
  }
}
