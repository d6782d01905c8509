import { Readable, Writable } from 'node:stream';
import { runCli } from '../../src/cli/program.ts';

/** Runs `strongroom ARGS` in this process (the real command tree) against the server at `addr`. */
export async function cliInProcess(
  addr: string,
  args: string[],
  opts: { input?: string; env?: Record<string, string> } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const sink = (append: (s: string) => void) =>
    new Writable({
      write(c, _e, cb) {
        append(c.toString());
        cb();
      },
    });
  const code = await runCli(
    args,
    {
      stdout: sink((s) => (stdout += s)),
      stderr: sink((s) => (stderr += s)),
      stdin: Readable.from([Buffer.from(opts.input ?? '')]),
      env: { STRONGROOM_ADDR: addr, ...opts.env },
      cwd: process.cwd(),
    },
    async () => {
      throw new Error('the server command is not available in process');
    },
  );
  return { code, stdout, stderr };
}
