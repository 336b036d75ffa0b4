/**
 * A real `redis-server` for tests and benchmarks: argv array, loopback only, a free port, no persistence, its
 * own temp dir, ready once it logs "Ready to accept connections". A missing binary FAILS with a clear message
 * (never a skip). `restart()` stops it and starts it again on the same port (chaos tests), as `stop()` then
 * `start()` do with an outage in between; `close()` is idempotent, and a server still running when the process
 * exits is killed with it.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

export interface RedisServer {
  readonly url: string;
  readonly port: number;
  /** Stops the server (SIGTERM by default; SIGKILL for a crash) and starts it again on the same port, empty. */
  restart(options?: { signal?: NodeJS.Signals }): Promise<void>;
  /** Stops the server (SIGTERM by default; SIGKILL for a crash); resolves once it has exited. */
  stop(options?: { signal?: NodeJS.Signals }): Promise<void>;
  /** Starts a stopped server again on the same port, empty (no-op while it runs). */
  start(): Promise<void>;
  close(): Promise<void>;
}

const READY = 'Ready to accept connections';
const START_TIMEOUT_MS = 10_000;

export async function startRedisServer(options: { binary?: string } = {}): Promise<RedisServer> {
  const binary = options.binary ?? process.env.REDIS_SERVER ?? 'redis-server';
  const dir = await mkdtemp(path.join(os.tmpdir(), 'redis-test-'));
  let child: ChildProcess | undefined;
  let port = 0;
  const killOnExit = (): void => {
    child?.kill('SIGKILL');
  };
  process.once('exit', killOnExit);

  const start = async (fixedPort?: number): Promise<void> => {
    for (let attempt = 1; ; attempt++) {
      const tryPort = fixedPort ?? (await freePort());
      try {
        child = await launch(binary, tryPort, dir);
        port = tryPort;
        return;
      } catch (err) {
        // Another process took the port between our probe and redis' bind: try again (a fixed port waits).
        if (!(err instanceof PortInUse) || attempt >= 20) throw err;
        if (fixedPort !== undefined) await new Promise((r) => setTimeout(r, 100));
      }
    }
  };

  const stop = async (signal: NodeJS.Signals): Promise<void> => {
    const running = child;
    child = undefined;
    if (!running || running.exitCode !== null || running.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => running.once('exit', () => resolve()));
    running.kill(signal);
    const timer = setTimeout(() => running.kill('SIGKILL'), 5_000);
    await exited;
    clearTimeout(timer);
  };

  try {
    await start();
  } catch (err) {
    process.off('exit', killOnExit);
    await rm(dir, { recursive: true, force: true });
    throw err;
  }

  let closed = false;
  return {
    get url() {
      return `redis://127.0.0.1:${port}`;
    },
    get port() {
      return port;
    },
    async restart({ signal = 'SIGTERM' } = {}) {
      if (closed) throw new Error('redis-server: restart after close');
      await stop(signal);
      await start(port);
    },
    async stop({ signal = 'SIGTERM' } = {}) {
      if (closed) throw new Error('redis-server: stop after close');
      await stop(signal);
    },
    async start() {
      if (closed) throw new Error('redis-server: start after close');
      if (!child) await start(port);
    },
    async close() {
      if (closed) return;
      closed = true;
      await stop('SIGTERM');
      process.off('exit', killOnExit);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

class PortInUse extends Error {}

function launch(binary: string, port: number, dir: string): Promise<ChildProcess> {
  const args = [
    '--port',
    String(port),
    '--bind',
    '127.0.0.1',
    '--save',
    '',
    '--appendonly',
    'no',
    '--dir',
    dir,
    '--daemonize',
    'no',
  ];
  const child = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  return new Promise<ChildProcess>((resolve, reject) => {
    const fail = (err: Error): void => {
      clearTimeout(timer);
      child.kill('SIGKILL');
      reject(err);
    };
    const timer = setTimeout(
      () =>
        fail(new Error(`redis-server did not become ready in ${START_TIMEOUT_MS} ms:\n${log.slice(-2000)}`)),
      START_TIMEOUT_MS,
    );
    const onData = (chunk: Buffer): void => {
      log = (log + chunk.toString('utf8')).slice(-20_000);
      if (log.includes(READY)) {
        clearTimeout(timer);
        child.stdout?.off('data', onData);
        child.stderr?.off('data', onData);
        // Keep draining its output so a chatty server never blocks on a full pipe.
        child.stdout?.resume();
        child.stderr?.resume();
        child.off('exit', onExit);
        resolve(child);
      }
    };
    const onExit = (code: number | null, signal: NodeJS.Signals | null): void => {
      clearTimeout(timer);
      const message = `redis-server exited before it was ready (${code ?? signal}):\n${log.slice(-2000)}`;
      reject(/address already in use/i.test(log) ? new PortInUse(message) : new Error(message));
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.once('exit', onExit);
    child.once('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      child.off('exit', onExit);
      reject(
        err.code === 'ENOENT'
          ? new Error(
              `redis-server is not installed (${binary} not found): install the Debian package redis-server ` +
                '(sudo apt-get install redis-server), or run "npm test", which installs it',
            )
          : new Error(`redis-server could not start: ${err.message}`),
      );
    });
  });
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}
