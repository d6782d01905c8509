import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Command } from 'commander';
import { signModel, verifyModel } from '../sdk/models/sign.ts';
import { transitClient } from '../sdk/transit.ts';
import { type CliIO, clientFor, formatOf, UsageError } from './context.ts';
import { kv, print } from './output.ts';

const collect = (v: string, prev: string[] = []) => [...prev, v];

/** `transit/NAME` → NAME; anything else is not a transit key. */
function transitKey(spec: string): string | undefined {
  return spec.startsWith('transit/') ? spec.slice('transit/'.length) : undefined;
}

/** `strongroom model …` (docs/models.md): signatures of model directories in the OpenSSF format. */
export function modelCommands(program: Command, io: CliIO): void {
  const m = program.command('model').description('sign and verify models (OpenSSF model signing v1.0)');

  m.command('sign')
    .argument('<dir>', 'the model directory')
    .requiredOption(
      '--key <transit/NAME>',
      'an ecdsa-p256/p384/p521 transit key: it signs, and never leaves the vault',
    )
    .option('--signature <file>', 'where to write the signature (default DIR/model.sig)')
    .option('--name <name>', 'the model’s name in the signature (default the directory’s name)')
    .option(
      '--ignore <path>',
      'leave this file or folder out (repeatable; .git and model.sig are always left out)',
      collect,
    )
    .option('--allow-symlinks', 'follow symbolic links that stay inside the directory')
    .description('hash every file (on every core) and have the vault sign the manifest')
    .action(
      async (
        dir: string,
        o: { key: string; signature?: string; name?: string; ignore?: string[]; allowSymlinks?: boolean },
        cmd: Command,
      ) => {
        const key = transitKey(o.key);
        if (!key) throw new UsageError('--key must name a transit key: transit/NAME');
        const out = o.signature ?? join(dir, 'model.sig');
        const bundle = await signModel(transitClient(clientFor(io, cmd).request), dir, key, {
          signatureFile: out,
          ...(o.name ? { name: o.name } : {}),
          ...(o.ignore ? { ignore: o.ignore } : {}),
          ...(o.allowSymlinks ? { allowSymlinks: true } : {}),
        });
        await writeFile(out, `${JSON.stringify(bundle, null, 2)}\n`);
        const files = (
          JSON.parse(Buffer.from(bundle.dsseEnvelope.payload, 'base64').toString()) as {
            predicate: { resources: unknown[] };
          }
        ).predicate.resources.length;
        print(io.stdout, formatOf(cmd), { signature: out, files }, () =>
          kv({ Signature: out, Files: files }),
        );
      },
    );

  m.command('verify')
    .argument('<dir>', 'the model directory')
    .option('--signature <file>', 'the signature (default DIR/model.sig)')
    .requiredOption(
      '--key <pem|transit/NAME>',
      'a public key (PEM file) allowed to have signed, or a transit key (its public keys); repeatable',
      collect,
    )
    .description('check a model against its signature: exits 1 naming the first file that differs')
    .action(async (dir: string, o: { signature?: string; key: string[] }, cmd: Command) => {
      const allowed: string[] = [];
      for (const k of o.key) {
        const name = transitKey(k);
        if (name) {
          const info = await transitClient(clientFor(io, cmd).request).readKey(name);
          for (const v of Object.values(info.keys)) allowed.push((v as { public_key: string }).public_key);
        } else allowed.push(await readFile(k, 'utf8'));
      }
      const r = await verifyModel(dir, o.signature ?? join(dir, 'model.sig'), allowed);
      print(io.stdout, formatOf(cmd), r, () =>
        r.ok
          ? kv({ Verified: true, Model: r.model, Files: r.files })
          : kv({ Verified: false, Reason: r.reason }),
      );
      if (!r.ok) io.exitCode = 1;
    });
}
