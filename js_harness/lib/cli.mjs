// The harness's command lines: node's util.parseArgs, with a refused command line as one line on stderr.
//
//   import { parseOrExit } from './lib/cli.mjs';
//   const { values: args } = parseOrExit({ options: { port: { type: 'string' } } });
//
// Every command line is strict (an unknown option or a stray argument is refused, never ignored) and takes no
// positionals unless it says so.  util.parseArgs throws a TypeError for a refused command line, which left
// uncaught ends in a stack trace; here it is `error: <message>` on one line and exit code 2 (a usage error,
// as argparse gives in the Python commands).  Any other error (a wrong `config`, a bug) is thrown as it is.
import { parseArgs } from 'node:util';

/** Exit code of a command line that was refused. */
export const USAGE_ERROR = 2;

/**
 * util.parseArgs(config) with strict: true and allowPositionals: false by default; a command line it
 * refuses (an error whose code starts with ERR_PARSE_ARGS_) prints `error: <message>` and exits 2.
 * @param {object} config util.parseArgs's config (args defaults to process.argv after the script).
 * @returns {{values: object, positionals: string[]}}
 */
export function parseOrExit(config) {
  try {
    return parseArgs({ strict: true, allowPositionals: false, ...config });
  } catch (error) {
    if (!String(error?.code).startsWith('ERR_PARSE_ARGS_')) throw error;
    process.stderr.write(`error: ${error.message.replace(/\s*\n\s*/g, ' ')}\n`);
    process.exit(USAGE_ERROR);
  }
}
