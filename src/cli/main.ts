/**
 * The `rtmp-relay` command. Subcommands grow with the system (architecture §2).
 */
import { isRelayError } from '../shared/errors.ts';
import { startCommand } from './commands.ts';
import { startDev } from './dev.ts';
import { tokenCommand } from './token.ts';

const USAGE = `usage: rtmp-relay <command>

commands:
  dev          the system on one machine: cloud (:8080, dashboard at /dashboard) + relay (RTMP :1935, HLS :8888)
  relay        one relay node; registers with CLOUD_API_URL (needs RELAY_SHARED_SECRET, PUBLISH_TOKEN_SECRET)
  cloud        the control plane on :8080 (needs RELAY_SHARED_SECRET, PUBLISH_TOKEN_SECRET; REDIS_URL optional)
               with the operator dashboard at /dashboard (its API needs CONTROL_API_TOKEN)
  glasses-sim  simulated glasses: --user USER_ID [--cloud ws://localhost:8080] [--token-file FILE]
               (or the token in GLASSES_TOKEN; never on the command line)
  token        prints a signed token: token user|publish|playback USER_ID [STREAM_ID [RELAY_ID]] [--ttl S]
  help         show this text

configuration comes from the environment; see README.md "Configuration".`;

function nextStopSignal(): Promise<NodeJS.Signals> {
  return new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGINT', () => resolve('SIGINT'));
    process.once('SIGTERM', () => resolve('SIGTERM'));
  });
}

async function main(argv: string[]): Promise<number> {
  const command = argv[0] ?? 'help';
  switch (command) {
    case 'dev': {
      const handle = await startDev();
      await handle.close(await nextStopSignal());
      return 0;
    }
    case 'relay':
    case 'cloud':
    case 'glasses-sim': {
      const handle = await startCommand(command, argv.slice(1));
      const signal = await nextStopSignal();
      // SIGTERM (Kubernetes, Porter) drains a relay gracefully; SIGINT stops at once.
      if (signal === 'SIGTERM' && handle.drain) await handle.drain();
      else await handle.close();
      return 0;
    }
    case 'token':
      // The token is the command's output (stdout), never a log line.
      console.log(await tokenCommand(argv.slice(1), process.env));
      return 0;
    case 'help':
    case '--help':
    case '-h':
      console.log(USAGE);
      return 0;
    default:
      console.error(`unknown command "${command}"\n\n${USAGE}`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(isRelayError(err) ? `${err.code}: ${err.message}` : err);
    process.exit(1);
  },
);
