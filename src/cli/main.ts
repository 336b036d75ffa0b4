/**
 * The `rtmp-relay` command. Subcommands grow with the system (architecture §2).
 */
import { isRelayError } from '../shared/errors.ts';
import { startDev } from './dev.ts';

const USAGE = `usage: rtmp-relay <command>

commands:
  dev     run the system on one machine (RTMP ingest on :1935 for now)
  help    show this text

configuration comes from the environment; see README.md "Configuration".`;

async function main(argv: string[]): Promise<number> {
  const command = argv[0] ?? 'help';
  switch (command) {
    case 'dev': {
      const handle = await startDev();
      await new Promise<void>((resolve) => {
        const stop = (): void => resolve();
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      });
      await handle.close();
      return 0;
    }
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
