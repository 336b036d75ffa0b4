#!/usr/bin/env node
// Sets up what is missing before `npm start` (mode "run"), `npm test` (mode "test") or `npm run bench` (mode "bench": the test tools plus nginx and wrk):
// npm packages, then the system tools from Debian's apt when running as root, else a clear message of what
// to install. Plain Node with no dependencies, because it runs before node_modules exists.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const mode = process.argv[2] ?? 'run';
if (!['run', 'test', 'bench'].includes(mode)) {
  console.error(`setup: unknown mode "${mode}" (use run, test or bench)`);
  process.exit(2);
}

const [major] = process.versions.node.split('.').map(Number);
if (major < 20) {
  console.error(`setup: Node.js 20 or newer is needed; this is ${process.versions.node}`);
  process.exit(1);
}

// --- npm packages -------------------------------------------------------------------------------------------
const lock = path.join(root, 'package-lock.json');
const installed = path.join(root, 'node_modules', '.package-lock.json');
const stale =
  !existsSync(installed) || (existsSync(lock) && statSync(lock).mtimeMs > statSync(installed).mtimeMs);
if (stale) {
  const args = existsSync(lock) ? ['ci', '--no-audit', '--no-fund'] : ['install', '--no-audit', '--no-fund'];
  console.log(`setup: npm ${args[0]}`);
  const r = spawnSync('npm', args, { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) {
    console.error('setup: npm could not install the packages (see above)');
    process.exit(1);
  }
}

// --- system tools -------------------------------------------------------------------------------------------
/** Each need: how to check it, and the Debian packages that provide it. */
const needs = [
  { what: 'ffmpeg', check: () => has('ffmpeg'), apt: ['ffmpeg'], modes: ['run', 'test'] },
  { what: 'ffprobe', check: () => has('ffprobe'), apt: ['ffmpeg'], modes: ['run', 'test'] },
  {
    what: 'gst-launch-1.0',
    check: () => has('gst-launch-1.0'),
    apt: ['gstreamer1.0-tools'],
    modes: ['test'],
  },
  ...[
    ['flvmux', 'gstreamer1.0-plugins-good'],
    ['videotestsrc', 'gstreamer1.0-plugins-base'],
    ['audiotestsrc', 'gstreamer1.0-plugins-base'],
    ['x264enc', 'gstreamer1.0-plugins-ugly'],
    ['avenc_aac', 'gstreamer1.0-libav'],
    ['h264parse', 'gstreamer1.0-plugins-bad'],
    ['aacparse', 'gstreamer1.0-plugins-good'],
    ['rtmp2sink', 'gstreamer1.0-plugins-bad'],
    ['rtmpsink', 'gstreamer1.0-plugins-bad'],
    ['srtsink', 'gstreamer1.0-plugins-bad'],
    ['tsparse', 'gstreamer1.0-plugins-bad'],
  ].map(([element, pkg]) => ({
    what: `GStreamer element ${element}`,
    check: () => has('gst-inspect-1.0') && run('gst-inspect-1.0', ['--exists', element]),
    apt: ['gstreamer1.0-tools', pkg],
    modes: ['test'],
  })),
  {
    what: 'Chromium (/usr/bin/chromium)',
    check: () => existsSync('/usr/bin/chromium') || has('chromium'),
    apt: ['chromium'],
    modes: ['test'],
  },
  {
    what: 'srt-live-transmit',
    check: () => has('srt-live-transmit'),
    apt: ['srt-tools'],
    modes: ['test'],
  },
  { what: 'redis-server', check: () => has('redis-server'), apt: ['redis-server'], modes: ['test'] },
  // The origin benchmark compares the relay with nginx serving the same files, loaded by wrk.
  {
    what: 'nginx',
    check: () => has('nginx') || existsSync('/usr/sbin/nginx'),
    apt: ['nginx'],
    modes: ['bench'],
  },
  { what: 'wrk', check: () => has('wrk'), apt: ['wrk'], modes: ['bench'] },
];

function has(command) {
  return run('sh', ['-c', `command -v ${command}`]);
}

function run(command, args) {
  return spawnSync(command, args, { stdio: 'ignore' }).status === 0;
}

// A benchmark run needs everything the tests need, and its own load tools.
const modes = mode === 'bench' ? ['test', 'bench'] : [mode];
const missing = needs.filter((n) => n.modes.some((m) => modes.includes(m)) && !n.check());
if (missing.length > 0) {
  const packages = [...new Set(missing.flatMap((n) => n.apt))];
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  const command = `apt-get install -y --no-install-recommends ${packages.join(' ')}`;
  if (!isRoot || !has('apt-get')) {
    console.error(`setup: missing ${missing.map((n) => n.what).join(', ')}.`);
    console.error(`setup: install them (Debian/Ubuntu): sudo apt-get update && sudo ${command}`);
    process.exit(1);
  }
  console.log(`setup: installing ${packages.join(' ')} with apt-get`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  try {
    execFileSync('apt-get', ['update'], { stdio: 'inherit', env });
    execFileSync('apt-get', command.split(' ').slice(1), { stdio: 'inherit', env });
  } catch {
    console.error(`setup: apt-get failed; run it yourself: ${command}`);
    process.exit(1);
  }
  const still = missing.filter((n) => !n.check());
  if (still.length > 0) {
    console.error(`setup: still missing after apt-get: ${still.map((n) => n.what).join(', ')}`);
    process.exit(1);
  }
}
