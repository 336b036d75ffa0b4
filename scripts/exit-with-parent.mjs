// Preloaded into the Node processes of a test run (scripts/test.mjs sets NODE_OPTIONS=--import=this file,
// RTMP_RELAY_TEST_RUN and RTMP_RELAY_TEST_RUNNER_PID): a process whose parent or whose runner is gone exits,
// so a run that is killed (even with -9) leaves no test file, relay, cloud or glasses simulator behind, those
// in their own process group or session included. Linux has PR_SET_PDEATHSIG for this; Node cannot call
// prctl. Exiting runs the test helpers' exit hooks, which kill the tools, nodes and redis-server they started;
// FFmpeg children of a relay read EOF on stdin and exit. `node --test` itself does not load --import
// modules, so a test file whose runner died first stops it (the leader of its process group), lest it start
// the next file. Outside a test run this does nothing.
import { readFileSync } from 'node:fs';

const runner = Number(process.env.RTMP_RELAY_TEST_RUNNER_PID);
if (process.env.RTMP_RELAY_TEST_RUN && runner > 0) {
  const parent = process.ppid;
  const alive = (pid) => {
    try {
      process.kill(pid, 0);
      return true;
    } catch (err) {
      return err.code === 'EPERM';
    }
  };
  const timer = setInterval(() => {
    const runnerGone = !alive(runner);
    // Reparented (to init or a subreaper): our parent died without stopping us.
    if (!runnerGone && process.ppid === parent) return;
    if (runnerGone) {
      try {
        const stat = readFileSync('/proc/self/stat', 'utf8');
        const pgrp = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]);
        if (pgrp > 1 && pgrp !== process.pid) process.kill(pgrp, 'SIGKILL');
      } catch {
        // the leader is gone already (or not ours): nothing more to stop
      }
    }
    process.exit(1);
  }, 250);
  timer.unref();
}
