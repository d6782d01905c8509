import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { HASH_ALGORITHMS, type HashAlgorithm, KEY_TYPES, type KeyType } from '../api/transit.ts';
import { transitClient } from '../sdk/transit.ts';
import { type CliIO, clientFor, formatOf, UsageError } from './context.ts';
import { readStdinBytes } from './input.ts';
import { kv, print } from './output.ts';

/** Largest input read from a file or standard input: what one transit request carries (docs/transit.md). */
const MAX_INPUT = 9 * 1024 * 1024;

function oneOf<T extends string>(values: readonly T[], what: string) {
  return (v: string): T => {
    if (!(values as readonly string[]).includes(v)) {
      throw new UsageError(`${what} must be one of ${values.join(', ')}`);
    }
    return v as T;
  };
}

function version(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new UsageError(`a key version is a whole number, not ${v}`);
  return n;
}

/** The data to work on: `--file F`, else standard input (never an argument, which shells keep in history). */
async function input(io: CliIO, file: string | undefined, limit = MAX_INPUT): Promise<Buffer> {
  if (file !== undefined) {
    const b = await readFile(file);
    if (b.length > limit) throw new UsageError(`${file} is larger than ${limit} bytes`);
    return b;
  }
  if (io.stdin.isTTY) throw new UsageError('pipe the data in on standard input, or give --file');
  return readStdinBytes(io, limit);
}

/** A ciphertext too long for an argument (a few MiB): from a file or standard input, without its newline. */
async function ciphertextFrom(io: CliIO, file: string | undefined): Promise<string> {
  const text = (await input(io, file, MAX_INPUT * 2)).toString('utf8').trim();
  if (!text) throw new UsageError('no ciphertext: give it as an argument, with --file, or on standard input');
  return text;
}

/** `strongroom transit …` (docs/transit.md): keys, and encryption, signatures and HMACs under them. */
export function transitCommands(program: Command, io: CliIO): void {
  const t = program
    .command('transit')
    .description('encryption, signatures and HMACs under keys that never leave the vault');
  const tc = (cmd: Command) => transitClient(clientFor(io, cmd).request);
  const showKey = (cmd: Command, k: Awaited<ReturnType<ReturnType<typeof tc>['readKey']>>) =>
    print(io.stdout, formatOf(cmd), k, () =>
      kv({
        Name: k.name,
        Type: k.type,
        'Latest version': k.latest_version,
        Versions: Object.keys(k.keys).join(', '),
        'Min decryption version': k.min_decryption_version,
        'Min encryption version': k.min_encryption_version,
        'Deletion allowed': k.deletion_allowed,
        Exportable: k.exportable,
        Derived: k.derived,
      }),
    );

  const key = t.command('key').description('create, read, rotate, configure, trim and delete keys');
  key
    .command('create')
    .argument('<name>')
    .option(
      '--type <type>',
      `one of ${KEY_TYPES.join(', ')}`,
      oneOf<KeyType>(KEY_TYPES, '--type'),
      'aes256-gcm96',
    )
    .option('--exportable', 'allow the key material to leave the vault (cannot be undone)')
    .option('--derived', 'derive a key per --context (encryption keys)')
    .description('make a key (creating one that exists with the same type changes nothing)')
    .action(
      async (name: string, o: { type: KeyType; exportable?: boolean; derived?: boolean }, cmd: Command) => {
        showKey(
          cmd,
          await tc(cmd).createKey(name, {
            type: o.type,
            ...(o.exportable ? { exportable: true } : {}),
            ...(o.derived ? { derived: true } : {}),
          }),
        );
      },
    );
  key
    .command('read')
    .argument('<name>')
    .description('a key’s versions, policy and public keys')
    .action(async (name: string, _o, cmd: Command) => showKey(cmd, await tc(cmd).readKey(name)));
  key.command('list').action(async (_o, cmd: Command) => {
    const keys = await tc(cmd).listKeys();
    print(io.stdout, formatOf(cmd), { keys }, () => keys.map((k) => [k]));
  });
  key
    .command('rotate')
    .argument('<name>')
    .description('add a version; new ciphertexts use it, older ones still decrypt')
    .action(async (name: string, _o, cmd: Command) => showKey(cmd, await tc(cmd).rotateKey(name)));
  key
    .command('config')
    .argument('<name>')
    .option('--min-decryption-version <n>', 'refuse ciphertexts and signatures older than this', version)
    .option('--min-encryption-version <n>', 'the oldest version encrypt may use (0: the latest)', version)
    .option(
      '--deletion-allowed <bool>',
      'true or false',
      oneOf(['true', 'false'] as const, '--deletion-allowed'),
    )
    .description('change a key’s policy')
    .action(
      async (
        name: string,
        o: {
          minDecryptionVersion?: number;
          minEncryptionVersion?: number;
          deletionAllowed?: 'true' | 'false';
        },
        cmd: Command,
      ) => {
        showKey(
          cmd,
          await tc(cmd).configureKey(name, {
            ...(o.minDecryptionVersion === undefined
              ? {}
              : { min_decryption_version: o.minDecryptionVersion }),
            ...(o.minEncryptionVersion === undefined
              ? {}
              : { min_encryption_version: o.minEncryptionVersion }),
            ...(o.deletionAllowed === undefined ? {} : { deletion_allowed: o.deletionAllowed === 'true' }),
          }),
        );
      },
    );
  key
    .command('trim')
    .argument('<name>')
    .requiredOption('--min-available-version <n>', 'delete the versions below this, for good', version)
    .action(async (name: string, o: { minAvailableVersion: number }, cmd: Command) =>
      showKey(cmd, await tc(cmd).trimKey(name, o.minAvailableVersion)),
    );
  key
    .command('delete')
    .argument('<name>')
    .description('delete a key whose config allows it: what it encrypted can never be decrypted again')
    .action(async (name: string, _o, cmd: Command) => {
      const r = await tc(cmd).deleteKey(name);
      print(io.stdout, formatOf(cmd), r, () => kv({ Deleted: r.deleted }));
    });

  dataCommands(t, io, tc);
}

function dataCommands(t: Command, io: CliIO, tc: (cmd: Command) => ReturnType<typeof transitClient>): void {
  const ctx = (o: { context?: string }) => (o.context === undefined ? {} : { context: o.context });
  t.command('encrypt')
    .argument('<key>')
    .option('--file <path>', 'encrypt this file (default: standard input)')
    .option('--context <text>', 'the context of a derived key')
    .option('--aad <text>', 'associated data, bound to the ciphertext and needed to decrypt it')
    .description('encrypt data from standard input or a file; prints vault:vN:…')
    .action(async (name: string, o: { file?: string; context?: string; aad?: string }, cmd: Command) => {
      const r = await tc(cmd).encrypt(name, await input(io, o.file), {
        ...ctx(o),
        ...(o.aad === undefined ? {} : { associatedData: o.aad }),
      });
      print(io.stdout, formatOf(cmd), r, () => [[r.ciphertext]]);
    });
  t.command('decrypt')
    .argument('<key>')
    .argument('[ciphertext]', 'vault:vN:… (default: read from --file or standard input)')
    .option('--file <path>', 'a file holding the ciphertext')
    .option('--context <text>', 'the context of a derived key')
    .option('--aad <text>', 'the associated data given to encrypt')
    .description('decrypt; writes the plaintext bytes to standard output (--format json: base64)')
    .action(
      async (
        name: string,
        given: string | undefined,
        o: { file?: string; context?: string; aad?: string },
        cmd: Command,
      ) => {
        const ciphertext = given ?? (await ciphertextFrom(io, o.file));
        const p = await tc(cmd).decrypt(name, ciphertext, {
          ...ctx(o),
          ...(o.aad === undefined ? {} : { associatedData: o.aad }),
        });
        if (formatOf(cmd) === 'json')
          io.stdout.write(`${JSON.stringify({ plaintext: p.toString('base64') })}\n`);
        else io.stdout.write(p);
        p.fill(0);
      },
    );
  t.command('rewrap')
    .argument('<key>')
    .argument('[ciphertext]', 'vault:vN:… (default: read from --file or standard input)')
    .option('--file <path>', 'a file holding the ciphertext')
    .option('--context <text>', 'the context of a derived key')
    .description('the same plaintext under the key’s latest version (it never leaves the vault)')
    .action(
      async (
        name: string,
        given: string | undefined,
        o: { file?: string; context?: string },
        cmd: Command,
      ) => {
        const r = await tc(cmd).rewrap(name, given ?? (await ciphertextFrom(io, o.file)), ctx(o));
        print(io.stdout, formatOf(cmd), r, () => [[r.ciphertext]]);
      },
    );
  t.command('datakey')
    .argument('<key>')
    .option('--wrapped', 'only the wrapped key, without its plaintext')
    .option('--bits <n>', '128, 256 or 512', oneOf(['128', '256', '512'] as const, '--bits'), '256')
    .description('a fresh data key for encrypting data locally, wrapped by the named key')
    .action(async (name: string, o: { wrapped?: boolean; bits: '128' | '256' | '512' }, cmd: Command) => {
      const r = await tc(cmd).dataKey(name, { wrapped: o.wrapped === true, bits: Number(o.bits) as 256 });
      const out = { ...r, ...(r.plaintext ? { plaintext: r.plaintext.toString('base64') } : {}) };
      print(io.stdout, formatOf(cmd), out, () =>
        kv({
          Ciphertext: r.ciphertext,
          'Key version': r.key_version,
          ...(out.plaintext ? { Plaintext: out.plaintext } : {}),
        }),
      );
    });
  const hash = oneOf<HashAlgorithm>(HASH_ALGORITHMS, '--hash');
  t.command('sign')
    .argument('<key>')
    .option('--file <path>', 'sign this file (default: standard input)')
    .option('--hash <algorithm>', `one of ${HASH_ALGORITHMS.join(', ')}`, hash, 'sha2-256')
    .option('--pkcs1v15', 'RSA: PKCS#1 v1.5 instead of PSS')
    .description('sign data with a key pair; prints vault:vN:…')
    .action(
      async (name: string, o: { file?: string; hash: HashAlgorithm; pkcs1v15?: boolean }, cmd: Command) => {
        const r = await tc(cmd).sign(name, await input(io, o.file), {
          hash_algorithm: o.hash,
          ...(o.pkcs1v15 ? { signature_algorithm: 'pkcs1v15' as const } : {}),
        });
        print(io.stdout, formatOf(cmd), r, () => [[r.signature]]);
      },
    );
  t.command('verify')
    .argument('<key>')
    .argument('<signature>', 'vault:vN:… from sign (or from hmac, with --hmac)')
    .option('--file <path>', 'the signed data (default: standard input)')
    .option('--hash <algorithm>', `one of ${HASH_ALGORITHMS.join(', ')}`, hash, 'sha2-256')
    .option('--hmac', 'the proof is an HMAC, not a signature')
    .option('--pkcs1v15', 'RSA: PKCS#1 v1.5 instead of PSS')
    .description('check a signature or HMAC; exits 1 when it does not verify')
    .action(
      async (
        name: string,
        proof: string,
        o: { file?: string; hash: HashAlgorithm; hmac?: boolean; pkcs1v15?: boolean },
        cmd: Command,
      ) => {
        const valid = await tc(cmd).verify(
          name,
          await input(io, o.file),
          o.hmac ? { hmac: proof } : { signature: proof },
          { hash_algorithm: o.hash, ...(o.pkcs1v15 ? { signature_algorithm: 'pkcs1v15' as const } : {}) },
        );
        print(io.stdout, formatOf(cmd), { valid }, () => [[valid ? 'valid' : 'NOT valid']]);
        if (!valid) io.exitCode = 1;
      },
    );
  t.command('hmac')
    .argument('<key>')
    .option('--file <path>', 'the data (default: standard input)')
    .option('--hash <algorithm>', `one of ${HASH_ALGORITHMS.join(', ')}`, hash, 'sha2-256')
    .description('an HMAC of data under the key; prints vault:vN:…')
    .action(async (name: string, o: { file?: string; hash: HashAlgorithm }, cmd: Command) => {
      const r = await tc(cmd).hmac(name, await input(io, o.file), { algorithm: o.hash });
      print(io.stdout, formatOf(cmd), r, () => [[r.hmac]]);
    });
}
