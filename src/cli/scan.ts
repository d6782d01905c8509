import { relative, resolve, sep } from 'node:path';
import type { Command } from 'commander';
import { gitRepositoryOf, scanGitHistory } from '../scan/git.ts';
import {
  type ImportPlan,
  type ImportReport,
  type ImportTarget,
  importSucceeded,
  importWarnings,
  planImport,
  readKeys,
  renderImportJson,
  renderImportTable,
  type SecretResult,
} from '../scan/import.ts';
import { render, type ScanFormat } from '../scan/report.ts';
import { type AllowList, type Finding, readAllowList, type ScanStats, scanPaths } from '../scan/scan.ts';
import { StrongroomApiError, type StrongroomClient } from '../sdk/client.ts';
import { type CliIO, clientFor, globals, parseEnvAddress, UsageError } from './context.ts';
import { createProgressBar } from './progress.ts';

/** The progress bar only appears on a terminal and for trees big enough to take a moment. */
const PROGRESS_MIN_FILES = 500;

export function scanCommand(program: Command, io: CliIO): void {
  program
    .command('scan')
    .argument('[paths...]', 'files or folders to scan (default: the current folder)')
    .option('--git', 'also scan every blob in the whole git history (all refs), reporting the commit')
    .option('--allow <file>', 'allow-list: fingerprints, rule:ID or path globs, one a line')
    .option(
      '--import <project/env>',
      'move every key found into this environment as new secrets (with their provider), then print how to replace each occurrence',
    )
    .option('--overwrite', 'with --import: replace a secret of the same name that holds a different value')
    .option('--dry-run', 'with --import: show the plan (and what is already in the vault) without writing')
    .description(
      'find hard-coded LLM API keys and other credentials; --format table, json or sarif; exits 1 when anything is found ' +
        '(with --import: 0 when every key found is now in the vault)',
    )
    .action(async (paths: string[], o: ScanOptions, cmd: Command) => {
      // --format is the program's global option (it is parsed wherever it appears); scan adds sarif.
      const format = (globals(cmd).format ?? 'table') as ScanFormat;
      if (format !== 'table' && format !== 'json' && format !== 'sarif')
        throw new UsageError(`--format must be table, json or sarif, not ${JSON.stringify(format)}`);
      if ((o.overwrite || o.dryRun) && o.import === undefined)
        throw new UsageError(
          `${o.overwrite ? '--overwrite' : '--dry-run'} only applies with --import PROJECT/ENV`,
        );
      if (o.import !== undefined && format === 'sarif')
        throw new UsageError('--import reports as table or json, not sarif');
      const target = o.import === undefined ? undefined : parseEnvAddress(o.import);
      let allow: AllowList | undefined;
      try {
        allow = o.allow ? readAllowList(o.allow, io.cwd) : undefined;
      } catch (err) {
        throw new UsageError((err as Error).message);
      }
      const stderr = io.stderr as NodeJS.WritableStream & { isTTY?: boolean };
      const bar = stderr.isTTY ? createProgressBar(stderr) : undefined;
      const progress = (phase: string) => (done: number, total: number) => {
        if (bar && total >= PROGRESS_MIN_FILES) bar.update(phase, done, total);
      };

      let tree: ReturnType<typeof scanPaths>;
      try {
        tree = scanPaths(paths, {
          cwd: io.cwd,
          ...(allow ? { allow } : {}),
          onProgress: progress('scanning'),
        });
      } catch (err) {
        bar?.stop();
        throw new UsageError((err as Error).message);
      }
      const findings: Finding[] = [...tree.findings];
      let blobs: number | undefined;
      let repositories: string[] | undefined;
      // history findings → the top folder of the repository they come from (for --import)
      const historyRoot = new Map<Finding, string>();
      if (o.git) {
        // the history of the repository that holds each PATH, never the one the command runs in
        // (issue 13 item 9); the whole history, whatever subfolder names it (docs/scan.md#--git-the-whole-history)
        repositories = [];
        for (const p of paths.length ? paths : ['.']) {
          const abs = resolve(io.cwd, p);
          const root = gitRepositoryOf(abs, io.env);
          if (root === undefined) {
            bar?.stop();
            throw new UsageError(`--git: ${abs} is not inside a git repository`);
          }
          if (!repositories.includes(root)) repositories.push(root);
        }
        blobs = 0;
        // a key still in the working tree is reported there; history adds what is only in old commits
        const current = new Set(findings.map((f) => `${f.fingerprint} ${f.file}`));
        const seen = new Set<string>();
        for (const root of repositories) {
          const history = await scanGitHistory(root, {
            ...(allow ? { allow } : {}),
            onProgress: progress('history'),
            env: io.env,
            relativeTo: io.cwd,
          }).catch((err: Error) => {
            bar?.stop();
            throw err;
          });
          blobs += history.stats.blobs;
          for (const f of history.findings) {
            const k = `${f.fingerprint} ${f.file}`;
            if (current.has(k) || seen.has(k)) continue;
            seen.add(k);
            historyRoot.set(f, root);
            findings.push(f);
          }
        }
      }
      bar?.stop();
      const stats = {
        ...tree.stats,
        ...(blobs === undefined ? {} : { blobs }),
        ...(repositories === undefined ? {} : { repositories }),
      };
      if (target) {
        await importFindings(io, cmd, findings, historyRoot, target, stats, {
          format: format as 'table' | 'json',
          dryRun: o.dryRun === true,
          overwrite: o.overwrite === true,
        });
        return;
      }
      io.stdout.write(render(format, findings, stats));
      io.exitCode = findings.length > 0 ? 1 : 0;
    });
}

interface ScanOptions {
  git?: boolean;
  allow?: string;
  import?: string;
  overwrite?: boolean;
  dryRun?: boolean;
}

/** `scan --import`: reads the keys back (in memory), plans the secrets, writes them, reports. */
async function importFindings(
  io: CliIO,
  cmd: Command,
  findings: Finding[],
  historyRoot: ReadonlyMap<Finding, string>,
  target: ImportTarget,
  stats: ScanStats & { blobs?: number; repositories?: string[] },
  opts: { format: 'table' | 'json'; dryRun: boolean; overwrite: boolean },
): Promise<void> {
  const { values, findings: named } = readAllKeys(findings, historyRoot, io.cwd);
  const plan = planImport(named, target);
  let secrets: SecretResult[];
  try {
    secrets = plan.secrets.length === 0 ? [] : await writePlan(clientFor(io, cmd), plan, values, opts);
  } finally {
    values.clear();
  }
  const report: ImportReport = { target, dryRun: opts.dryRun, secrets, skipped: plan.skipped, scan: stats };
  io.stdout.write(opts.format === 'json' ? renderImportJson(report) : renderImportTable(report));
  for (const w of importWarnings(report)) io.stderr.write(`${w}\n`);
  io.exitCode = importSucceeded(report) ? 0 : 1;
}

/**
 * `readKeys` for findings from several places: working-tree ones from the folder the scan runs in,
 * history ones from their own repository (git reads `commit:path` relative to its top folder), each
 * finding keeping the path it was reported with.
 */
function readAllKeys(
  findings: readonly Finding[],
  historyRoot: ReadonlyMap<Finding, string>,
  cwd: string,
): ReturnType<typeof readKeys> {
  const values = new Map<string, string>();
  const out: ReturnType<typeof readKeys>['findings'] = new Array(findings.length);
  const groups = new Map<string, number[]>();
  for (const [i, f] of findings.entries()) {
    const root = historyRoot.get(f) ?? '';
    groups.set(root, [...(groups.get(root) ?? []), i]);
  }
  for (const [root, indexes] of groups) {
    const list = indexes.map((i) => {
      const f = findings[i]!;
      return root === '' ? f : { ...f, file: relative(root, resolve(cwd, f.file)).split(sep).join('/') };
    });
    const read = readKeys(list, root === '' ? cwd : root);
    for (const [k, v] of read.values) if (!values.has(k)) values.set(k, v);
    read.values.clear();
    for (const [j, g] of read.findings.entries())
      out[indexes[j]!] = { ...g, file: findings[indexes[j]!]!.file };
  }
  return { values, findings: out };
}

const apiCode = (err: unknown): string | undefined =>
  err instanceof StrongroomApiError ? err.code : undefined;

/**
 * One secret at a time: read what is stored under the name (to compare, never to print), then
 * create it with `cas: 0` (so a secret created meanwhile is not clobbered), or with `--overwrite`
 * replace a different value with `cas` set to the version just read.
 */
async function writePlan(
  client: StrongroomClient,
  plan: ImportPlan,
  values: ReadonlyMap<string, string>,
  opts: { dryRun: boolean; overwrite: boolean },
): Promise<SecretResult[]> {
  const { project, env } = plan.target;
  const results: SecretResult[] = [];
  for (const s of plan.secrets) {
    const address = `${project}/${env}/${s.name}`;
    const value = values.get(s.fingerprint);
    const done = (r: Omit<SecretResult, keyof typeof s>) => results.push({ ...s, ...r });
    if (value === undefined) {
      const at = s.occurrences[0]!;
      done({
        status: 'failed',
        message: `could not read the key again at ${at.file}:${at.line} (did the file change since the scan?); run the scan again`,
      });
      continue;
    }
    let step: 'secret.read' | 'secret.write' = 'secret.read';
    const read = async () => {
      step = 'secret.read';
      try {
        return await client.getSecret(project, env, s.name);
      } catch (err) {
        if (apiCode(err) === 'secret_not_found') return undefined;
        throw err;
      }
    };
    const fields = { ...(s.provider ? { provider: s.provider } : {}), force: true };
    try {
      let existing = await read();
      if (existing === undefined) {
        if (opts.dryRun) {
          done({ status: 'would_create' });
          continue;
        }
        try {
          step = 'secret.write';
          const first = s.occurrences[0]!;
          const w = await client.putSecret(project, env, s.name, value, {
            ...fields,
            cas: 0,
            metadata: {
              imported_by: 'strongroom scan',
              found_at: `${first.file}:${first.line}${first.commit ? ` (commit ${first.commit.slice(0, 12)})` : ''}`,
            },
          });
          done({ status: 'created', version: w.version });
          continue;
        } catch (err) {
          if (apiCode(err) !== 'cas_mismatch') throw err;
          // created meanwhile by someone else: compare with what is there now
          existing = await read();
          if (existing === undefined) throw err;
        }
      }
      if (existing.value === value) {
        done({ status: 'already_in_vault', version: existing.version });
      } else if (!opts.overwrite) {
        done({
          status: 'conflict',
          message: `${address} already holds a different value (version ${existing.current_version}); it was left alone: pass --overwrite to replace it, or rename one of them`,
        });
      } else if (opts.dryRun) {
        done({ status: 'would_overwrite' });
      } else {
        step = 'secret.write';
        try {
          const w = await client.putSecret(project, env, s.name, value, {
            ...fields,
            cas: existing.current_version,
          });
          done({ status: 'overwritten', version: w.version });
        } catch (err) {
          if (apiCode(err) !== 'cas_mismatch') throw err;
          done({
            status: 'failed',
            message: `${address} changed while importing (it is no longer at version ${existing.current_version}); run the import again`,
          });
        }
      }
    } catch (err) {
      const code = apiCode(err);
      if (code === 'project_not_found') {
        throw new Error(
          `project ${JSON.stringify(project)} does not exist: create it with \`strongroom project create ${project}\` (it gets dev, staging and prod), then run the import again`,
        );
      }
      if (code === 'environment_not_found') {
        throw new Error(
          `environment ${JSON.stringify(env)} does not exist in project ${JSON.stringify(project)}: add it with \`strongroom project add-env ${project} ${env}\`, then run the import again`,
        );
      }
      if (err instanceof StrongroomApiError && err.status === 403) {
        done({
          status: 'failed',
          message: `permission denied: the token may not ${step} ${address}; importing needs the secret.read and secret.write permissions on ${project}/${env} (server: ${err.message})`,
        });
        continue;
      }
      if (code === 'secret_deleted') {
        done({
          status: 'failed',
          message: `${address} was deleted: restore it (\`strongroom secret restore ${address}\`) or destroy it (\`strongroom secret delete ${address} --destroy --yes\`), then run the import again`,
        });
        continue;
      }
      if (err instanceof StrongroomApiError && err.status >= 400 && err.status < 500 && err.status !== 401) {
        // e.g. a validation error on this one secret: report it and go on (messages never hold values)
        done({ status: 'failed', message: `${err.message} (${err.code})` });
        continue;
      }
      throw err; // unreachable, unauthenticated, sealed, 5xx: nothing else will work either
    }
  }
  return results;
}
