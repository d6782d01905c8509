import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import type * as api from '../api/bulk.ts';
import { MAX_IMPORT_ENTRIES, type OnConflict } from '../api/bulk.ts';
import type { OutputOf as Out } from '../contract/operation.ts';
import { exportSecrets, importSecrets, StrongroomImportError } from '../sdk/bulk.ts';
import type { ClientOptions } from '../sdk/client.ts';
import { type CliIO, type Format, globals, parseEnvAddress, UsageError } from './context.ts';
import { detectFormat, type ParsedEntry, type ParseIssue, parseSecretsFile } from './formats/index.ts';
import { type ExportFormat, renderExport } from './formats/render.ts';
import { readStdin } from './input.ts';
import { table } from './output.ts';
import { createProgressBar } from './progress.ts';

/**
 * `strongroom import` and `strongroom export` (docs/import-export.md).
 *
 * The global `--format` keeps its meaning for import (the summary: table or
 * json); the file's format is `--input-format` (or its extension). For
 * export, `--format` is the file format: env (the default), json or yaml.
 */
function clientOptions(io: CliIO, cmd: Command): ClientOptions {
  const g = globals(cmd);
  return {
    addr: g.addr ?? io.env.STRONGROOM_ADDR ?? 'http://127.0.0.1:8210',
    token: g.token ?? (io.env.STRONGROOM_TOKEN || undefined),
  };
}

function summaryFormat(cmd: Command): Format {
  const f = globals(cmd).format ?? 'table';
  if (f === 'table' || f === 'json') return f;
  if (['env', 'yaml', 'vault'].includes(f)) {
    throw new UsageError(
      `for import, --format is the summary's format (table or json); give the file's format with --input-format ${f}`,
    );
  }
  throw new UsageError(`--format must be table or json, not ${JSON.stringify(f)}`);
}

const where = (i: ParseIssue) =>
  `${i.line === undefined ? '' : `line ${i.line}: `}${i.name ? `${i.name}: ` : ''}`;

function issueRows(issues: ParseIssue[], limit = 50): string {
  const shown = issues.slice(0, limit).map((i) => `  ${where(i)}${i.message}`);
  if (issues.length > limit)
    shown.push(`  … and ${issues.length - limit} more (--format json lists them all)`);
  return `${shown.join('\n')}\n`;
}

interface ImportOptions {
  inputFormat?: string;
  onConflict: string;
  dryRun?: boolean;
  force?: boolean;
  provider?: string;
  allowEmpty?: boolean;
}

// biome-ignore lint/complexity/noExcessiveLinesPerFunction: registers the import and export subcommands with commander, with their shared progress and summary output
export function bulkCommands(program: Command, io: CliIO): void {
  program
    .command('import')
    .argument('<env-address>', 'PROJECT/ENV')
    .argument('<file>', 'a .env, JSON, YAML or Vault KV export file (- for standard input)')
    .option(
      '--input-format <format>',
      'the file format: env, json, yaml or vault (default: from the extension)',
    )
    .option('--on-conflict <mode>', 'a name that exists with another value: skip, overwrite or fail', 'fail')
    .option('--dry-run', 'show what would change; write nothing')
    .option('--force', "store values that do not look like their provider's key format")
    .option('--provider <provider>', 'the provider of entries that do not name one (e.g. openai)')
    .option('--allow-empty', 'import empty values (refused by default: usually a template line)')
    .description('import secrets from a file in one all-or-nothing write (progress on stderr)')
    .action(async (address: string, file: string, o: ImportOptions, cmd: Command) => {
      const a = parseEnvAddress(address);
      const format = summaryFormat(cmd);
      if (!['skip', 'overwrite', 'fail'].includes(o.onConflict)) {
        throw new UsageError(
          `--on-conflict must be skip, overwrite or fail, not ${JSON.stringify(o.onConflict)}`,
        );
      }
      let fileFormat: ReturnType<typeof detectFormat>;
      try {
        fileFormat = detectFormat(file, o.inputFormat);
      } catch (err) {
        throw new UsageError((err as Error).message);
      }
      let text: string;
      try {
        text =
          file === '-' ? await readStdin(io, 64 * 1024 * 1024) : readFileSync(resolve(io.cwd, file), 'utf8');
      } catch (err) {
        if (err instanceof UsageError) throw err;
        throw new UsageError(
          `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
        );
      }
      const parsed = parseSecretsFile(text, fileFormat);
      const invalid = [...parsed.invalid];
      const entries: ParsedEntry[] = [];
      for (const e of parsed.entries) {
        if (e.value === '' && !o.allowEmpty) {
          invalid.push({
            ...(e.line === undefined ? {} : { line: e.line }),
            name: e.name,
            message: 'the value is empty (pass --allow-empty to import empty values)',
          });
          continue;
        }
        entries.push(o.provider && e.provider === undefined ? { ...e, provider: o.provider } : e);
      }
      invalid.sort((x, y) => (x.line ?? 0) - (y.line ?? 0));
      if (entries.length > MAX_IMPORT_ENTRIES) {
        throw new UsageError(
          `${file} holds ${entries.length} secrets; one import takes at most ${MAX_IMPORT_ENTRIES}: split the file`,
        );
      }
      const report = {
        project: a.project,
        env: a.env,
        file,
        file_format: fileFormat,
        invalid,
        warnings: parsed.warnings,
      };
      if (parsed.warnings.length > 0 && format === 'table') {
        io.stderr.write(`Warnings:\n${issueRows(parsed.warnings)}`);
      }

      const send = async (dryRun: boolean): Promise<Out<typeof api.SecretImport>> => {
        const bar = createProgressBar(io.stderr as NodeJS.WriteStream);
        try {
          return await importSecrets(
            clientOptions(io, cmd),
            a.project,
            a.env,
            {
              secrets: entries.map(({ line: _line, ...e }) => e),
              on_conflict: o.onConflict as OnConflict,
              ...(dryRun ? { dry_run: true } : {}),
              ...(o.force ? { force: true } : {}),
            },
            { onProgress: (p) => bar.update(p.phase, p.done, p.total) },
          );
        } finally {
          bar.stop();
        }
      };

      // an invalid line stops the import before anything is sent; a dry run still shows the plan of the rest
      if (invalid.length > 0 && !o.dryRun) {
        if (format === 'json') {
          io.stdout.write(`${JSON.stringify({ ...report, committed: false, written: 0 }, null, 2)}\n`);
        } else {
          io.stderr.write(
            `Import failed: nothing was written to ${address}.\n${invalid.length} of ${parsed.entries.length + parsed.invalid.length} entries in ${file} cannot be imported:\n${issueRows(invalid)}`,
          );
        }
        throw new ImportFailed(
          `${invalid.length} invalid ${invalid.length === 1 ? 'entry' : 'entries'} in ${file}; fix them and import again`,
        );
      }

      let result: Out<typeof api.SecretImport>;
      try {
        result = await send(o.dryRun === true);
      } catch (err) {
        if (format === 'json') {
          io.stdout.write(
            `${JSON.stringify(
              {
                ...report,
                committed: false,
                written: 0,
                error: {
                  message: (err as Error).message,
                  code: (err as { code?: string }).code,
                  problems: problemsWithLines(err, entries),
                },
              },
              null,
              2,
            )}\n`,
          );
        } else if ((err as { code?: string }).code !== 'incomplete') {
          io.stderr.write(`Import failed: nothing was written to ${address}.\n`);
          const problems = problemsWithLines(err, entries);
          if (problems.length > 0) io.stderr.write(`Why:\n${issueRows(problems)}`);
        }
        throw err;
      }

      if (format === 'json') {
        io.stdout.write(`${JSON.stringify({ ...report, ...result }, null, 2)}\n`);
      } else {
        const c = result.counts;
        const title = result.dry_run
          ? `Dry run: nothing was written to ${address}. An import would:`
          : result.committed
            ? `Imported ${file} into ${address} in one transaction:`
            : `Nothing to write to ${address}:`;
        io.stdout.write(`${title}\n`);
        io.stdout.write(
          table([
            [result.dry_run ? 'create' : 'created', c.create],
            [result.dry_run ? 'update' : 'updated', c.update],
            [result.dry_run ? 'skip' : 'skipped', c.skip],
            ['unchanged', c.unchanged],
            ['invalid', invalid.length],
          ]),
        );
        if (result.dry_run) {
          const changes = result.entries.filter((e) => e.action !== 'create');
          if (changes.length > 0 && changes.length <= 50) {
            io.stdout.write(
              `\n${table([['NAME', 'ACTION', 'VERSION'], ...changes.map((e) => [e.name, e.action, e.version])])}`,
            );
          }
          if (invalid.length > 0)
            io.stdout.write(`\nInvalid (an import would be refused):\n${issueRows(invalid)}`);
        }
      }
      if (invalid.length > 0) {
        throw new ImportFailed(
          `${invalid.length} invalid ${invalid.length === 1 ? 'entry' : 'entries'} in ${file}`,
        );
      }
    });

  program
    .command('export')
    .argument('<env-address>', 'PROJECT/ENV')
    .option('--values', 'include secret values (needs the secret.export permission; audited)')
    .option('--output <file>', 'write to this file (mode 0600 with values) instead of standard output')
    .option('--force', 'overwrite the output file if it exists')
    .description(
      'export an environment as .env, JSON or YAML (--format env|json|yaml; names only unless --values)',
    )
    .action(
      async (address: string, o: { values?: boolean; output?: string; force?: boolean }, cmd: Command) => {
        const a = parseEnvAddress(address);
        const f = globals(cmd).format ?? 'table';
        const format: ExportFormat = f === 'table' ? 'env' : (f as ExportFormat);
        if (!['env', 'json', 'yaml'].includes(format)) {
          throw new UsageError(`--format for export must be env, json or yaml, not ${JSON.stringify(f)}`);
        }
        const r = await exportSecrets(clientOptions(io, cmd), a.project, a.env, {
          values: o.values === true,
        });
        const text = renderExport(r, format);
        if (!o.output) {
          io.stdout.write(text);
          return;
        }
        const path = resolve(io.cwd, o.output);
        try {
          // with values the file is private from its first byte; without --force an existing file is kept
          writeFileSync(path, text, { mode: o.values ? 0o600 : 0o644, flag: o.force ? 'w' : 'wx' });
          if (o.values) chmodSync(path, 0o600);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
            throw new UsageError(`${o.output} exists: pass --force to overwrite it`);
          }
          throw err;
        }
        io.stderr.write(
          `Exported ${r.secrets.length} secrets of ${address} to ${o.output}${o.values ? ' (with values, mode 0600)' : ' (names only)'}\n`,
        );
      },
    );
}

/** Problems from the server, with the file line of each entry. */
function problemsWithLines(err: unknown, entries: ParsedEntry[]): ParseIssue[] {
  if (!(err instanceof StrongroomImportError)) return [];
  return err.problems.map((p) => {
    const line = entries[p.index]?.line;
    return { ...(line === undefined ? {} : { line }), name: p.name, message: p.message };
  });
}

/** A failure already explained on stderr: exit code 1 with a one-line reason. */
class ImportFailed extends Error {}
