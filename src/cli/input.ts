import { password } from '@clack/prompts';
import { type CliIO, UsageError } from './context.ts';

/** Reads all of stdin (bounded), for values piped in so they never appear in shell history. */
export async function readStdin(io: CliIO, limit = 1024 * 1024): Promise<string> {
  return (await readStdinBytes(io, limit)).toString('utf8');
}

/** All of stdin as bytes (bounded): binary data to encrypt, sign or hash. */
export async function readStdinBytes(io: CliIO, limit = 1024 * 1024): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of io.stdin) {
    const b = typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer);
    size += b.byteLength;
    if (size > limit) throw new UsageError(`standard input is larger than ${limit} bytes`);
    chunks.push(b);
  }
  return Buffer.concat(chunks);
}

/** A secret from stdin (one trailing newline removed) or, on a terminal, a hidden prompt. */
export async function readSecretInput(io: CliIO, message: string): Promise<string> {
  if (!io.stdin.isTTY) {
    const text = await readStdin(io);
    return text.replace(/\r?\n$/, '');
  }
  const v = await password({
    message,
    mask: '*',
    input: io.stdin as NodeJS.ReadStream,
    output: io.stderr as NodeJS.WriteStream,
  });
  if (typeof v !== 'string') throw new UsageError('cancelled');
  return v;
}
