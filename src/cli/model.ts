import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Command } from 'commander';
import { decryptModel, encryptModel, fetchModel, type Progress } from '../sdk/models/encrypt.ts';
import { signModel, signModelWithSvid, verifyModel } from '../sdk/models/sign.ts';
import { transitClient } from '../sdk/transit.ts';
import { type CliIO, clientFor, formatOf, UsageError } from './context.ts';
import { kv, print } from './output.ts';
import { createProgressBar } from './progress.ts';
import { loadOsv } from './sbom.ts';

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
    .option(
      '--key <transit/NAME>',
      'an ecdsa-p256/p384/p521 transit key: it signs, and never leaves the vault',
    )
    .option('--svid <cert.pem>', 'or sign with a workload’s X.509-SVID: its certificate chain (PEM)…')
    .option('--svid-key <key.pem>', '…and its private key (PEM), as the agent writes them')
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
        o: {
          key?: string;
          svid?: string;
          svidKey?: string;
          signature?: string;
          name?: string;
          ignore?: string[];
          allowSymlinks?: boolean;
        },
        cmd: Command,
      ) => {
        if ((o.key === undefined) === (o.svid === undefined)) {
          throw new UsageError(
            'sign with --key transit/NAME or with --svid CERT --svid-key KEY, one of them',
          );
        }
        const out = o.signature ?? join(dir, 'model.sig');
        const options = {
          signatureFile: out,
          ...(o.name ? { name: o.name } : {}),
          ...(o.ignore ? { ignore: o.ignore } : {}),
          ...(o.allowSymlinks ? { allowSymlinks: true } : {}),
        };
        let bundle: Awaited<ReturnType<typeof signModel>>;
        if (o.svid) {
          if (!o.svidKey) throw new UsageError('--svid needs --svid-key');
          bundle = await signModelWithSvid(
            dir,
            { certificates: await readFile(o.svid, 'utf8'), privateKey: await readFile(o.svidKey, 'utf8') },
            options,
          );
        } else {
          const key = transitKey(o.key!);
          if (!key) throw new UsageError('--key must name a transit key: transit/NAME');
          bundle = await signModel(transitClient(clientFor(io, cmd).request), dir, key, options);
        }
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

  cryptCommands(m, io);
  policyCommand(m, io);
  m.command('verify')
    .argument('<dir>', 'the model directory')
    .option('--signature <file>', 'the signature (default DIR/model.sig)')
    .option(
      '--key <pem|transit/NAME>',
      'a public key (PEM file) allowed to have signed, or a transit key (its public keys); repeatable',
      collect,
    )
    .option(
      '--trust-bundle <pem>',
      'CA certificates (a SPIFFE trust bundle) for signatures made with an SVID',
    )
    .option(
      '--signer <spiffe-id>',
      'with --trust-bundle: a SPIFFE ID allowed to sign (a trailing * matches a prefix); repeatable',
      collect,
    )
    .description('check a model against its signature: exits 1 naming the first file that differs')
    .action(
      async (
        dir: string,
        o: { signature?: string; key?: string[]; trustBundle?: string; signer?: string[] },
        cmd: Command,
      ) => {
        if (!o.key && !o.trustBundle)
          throw new UsageError('give --key (public keys) or --trust-bundle (for SVID signatures)');
        if (o.signer && !o.trustBundle) throw new UsageError('--signer goes with --trust-bundle');
        const allowed: string[] = [];
        for (const k of o.key ?? []) {
          const name = transitKey(k);
          if (name) {
            const info = await transitClient(clientFor(io, cmd).request).readKey(name);
            for (const v of Object.values(info.keys)) allowed.push((v as { public_key: string }).public_key);
          } else allowed.push(await readFile(k, 'utf8'));
        }
        const r = await verifyModel(dir, o.signature ?? join(dir, 'model.sig'), {
          keys: allowed,
          ...(o.trustBundle ? { anchors: await readFile(o.trustBundle, 'utf8') } : {}),
          ...(o.signer ? { spiffeIds: o.signer } : {}),
        });
        print(io.stdout, formatOf(cmd), r, () =>
          r.ok
            ? kv({ Verified: true, Model: r.model, Signer: r.signer, Files: r.files })
            : kv({ Verified: false, Reason: r.reason }),
        );
        if (!r.ok) io.exitCode = 1;
      },
    );
}

/** `model encrypt|decrypt|fetch`: files in parallel, a progress bar on stderr. */
function cryptCommands(m: Command, io: CliIO): void {
  const progress = (): { onProgress: Progress; stop(): void } => {
    const bar = createProgressBar(io.stderr as NodeJS.WritableStream & { isTTY?: boolean });
    return {
      onProgress: (p) => bar.update('files', p.files, p.of),
      stop: () => bar.stop(),
    };
  };

  m.command('encrypt')
    .argument('<dir>', 'the model directory (sign it first: model.sig is copied along)')
    .requiredOption(
      '--key <transit/NAME>',
      'the customer-managed transit key (aes256-gcm96) that wraps each file’s data key',
    )
    .requiredOption('--out <dir>', 'where the encrypted model goes')
    .option('--chunk-size <bytes>', 'bytes per AES-GCM chunk (default 1 MiB)')
    .description(
      'encrypt every file (a fresh data key each, chunked AES-256-GCM, files in parallel on every core)',
    )
    .action(async (dir: string, o: { key: string; out: string; chunkSize?: string }, cmd: Command) => {
      const key = transitKey(o.key);
      if (!key) throw new UsageError('--key must name a transit key: transit/NAME');
      const chunk = o.chunkSize === undefined ? undefined : Number(o.chunkSize);
      if (chunk !== undefined && (!Number.isInteger(chunk) || chunk < 4096 || chunk > 64 * 1024 * 1024)) {
        throw new UsageError('--chunk-size is from 4096 to 67108864 bytes');
      }
      const p = progress();
      const r = await encryptModel(transitClient(clientFor(io, cmd).request), dir, key, o.out, {
        onProgress: p.onProgress,
        ...(chunk ? { chunkSize: chunk } : {}),
      }).finally(() => p.stop());
      print(io.stdout, formatOf(cmd), r, () => kv({ Model: r.model, Files: r.files.length, Out: o.out }));
    });

  m.command('decrypt')
    .argument('<dir>', 'an encrypted model')
    .requiredOption('--out <dir>', 'where the plaintext files go')
    .description(
      'decrypt with the transit key itself (needs transit.decrypt on it; consumers use model fetch)',
    )
    .action(async (dir: string, o: { out: string }, cmd: Command) => {
      const p = progress();
      const r = await decryptModel(transitClient(clientFor(io, cmd).request), dir, o.out, {
        onProgress: p.onProgress,
      }).finally(() => p.stop());
      print(io.stdout, formatOf(cmd), { model: r.model, files: r.files.length }, () =>
        kv({ Model: r.model, Files: r.files.length }),
      );
    });

  m.command('fetch')
    .argument('<dir>', 'an encrypted model (with its model.sig)')
    .requiredOption('--policy <name>', 'the model policy the vault checks it against')
    .requiredOption('--out <dir>', 'where the plaintext files go')
    .description(
      'verify, then unwrap: the vault checks signature, digests and formats before it releases the keys',
    )
    .action(async (dir: string, o: { policy: string; out: string }, cmd: Command) => {
      const p = progress();
      const r = await fetchModel(clientFor(io, cmd).request, dir, o.policy, o.out, {
        onProgress: p.onProgress,
      }).finally(() => p.stop());
      print(io.stdout, formatOf(cmd), r, () => kv({ Model: r.model, Files: r.files, Lease: r.lease_id }));
    });
}

/** `model policy write`: which transit key, signers and formats a model may have. */
function policyCommand(m: Command, io: CliIO): void {
  const pol = m.command('policy').description('which key, signers and formats a model may have');
  pol
    .command('write')
    .argument('<name>')
    .requiredOption('--key <transit/NAME>', 'the transit key that wraps the model’s data keys')
    .option(
      '--signer <pem|transit/NAME>',
      'a public key allowed to sign (PEM file, or a transit key’s); repeatable',
      collect,
    )
    .option('--trust-bundle <pem>', 'CA certificates (a SPIFFE trust bundle) for models signed with an SVID')
    .option(
      '--spiffe-id <id>',
      'with --trust-bundle: a SPIFFE ID allowed to sign (a trailing * matches a prefix); repeatable',
      collect,
    )
    .option('--model <name>', 'the model’s name as its signature gives it (default: the policy’s name)')
    .option('--allow-pickle', 'accept pickle-based files (they can run code when loaded)')
    .option('--lease-ttl <seconds>', 'how long a release’s lease lasts (default 3600)')
    .option(
      '--sbom-fail-on <severity>',
      'the SBOM gate: refuse a model whose signed SBOM has an advisory at or above (low, medium, high, critical)',
    )
    .option('--sbom-file <name>', 'the SBOM file in the model (default sbom.cdx.json)')
    .action(
      async (
        name: string,
        o: {
          key: string;
          signer?: string[];
          trustBundle?: string;
          spiffeId?: string[];
          allowPickle?: boolean;
          model?: string;
          leaseTtl?: string;
          sbomFailOn?: string;
          sbomFile?: string;
        },
        cmd: Command,
      ) => {
        const key = transitKey(o.key);
        if (!key) throw new UsageError('--key must name a transit key: transit/NAME');
        const c = clientFor(io, cmd);
        const signers: string[] = [];
        for (const s of o.signer ?? []) {
          const t = transitKey(s);
          if (t) {
            for (const v of Object.values((await transitClient(c.request).readKey(t)).keys)) {
              signers.push((v as { public_key: string }).public_key);
            }
          } else signers.push(await readFile(s, 'utf8'));
        }
        const r = await c.request<{ name: string; key: string; signers: string[] }>(
          'PUT',
          `/v1/models/${encodeURIComponent(name)}`,
          {
            key,
            signers,
            ...(o.trustBundle ? { trust_bundle: await readFile(o.trustBundle, 'utf8') } : {}),
            ...(o.spiffeId ? { spiffe_ids: o.spiffeId } : {}),
            ...(o.allowPickle ? { allow_pickle: true } : {}),
            ...(o.model ? { model: o.model } : {}),
            ...(o.leaseTtl ? { lease_ttl: Number(o.leaseTtl) } : {}),
            ...(o.sbomFailOn
              ? { sbom: { fail_on: o.sbomFailOn, ...(o.sbomFile ? { file: o.sbomFile } : {}) } }
              : {}),
          },
        );
        print(io.stdout, formatOf(cmd), r, () =>
          kv({ Policy: r.name, Key: r.key, Signers: r.signers.length }),
        );
      },
    );

  m.command('advisories')
    .command('load')
    .requiredOption('--osv <path>', 'an OSV export: a directory of advisory JSON files, or OSV’s all.zip')
    .description('load OSV advisories (npm and PyPI) into the vault, for the SBOM gate of model releases')
    .action(async (o: { osv: string }, cmd: Command) => {
      const all = await loadOsv(o.osv);
      const c = clientFor(io, cmd);
      let packages = 0;
      for (let n = 0; n < all.length; n += 1000) {
        const r = await c.request<{ packages: number }>('POST', '/v1/models/advisories', {
          advisories: all.slice(n, n + 1000),
        });
        packages += r.packages;
      }
      print(io.stdout, formatOf(cmd), { advisories: all.length, packages }, () =>
        kv({ Advisories: all.length, 'Package entries': packages }),
      );
    });
}
