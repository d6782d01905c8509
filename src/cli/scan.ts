import type { Command } from 'commander';
import { scanGitHistory } from '../scan/git.ts';
import { render, type ScanFormat } from '../scan/report.ts';
import { type AllowList, type Finding, readAllowList, scanPaths } from '../scan/scan.ts';
import { type CliIO, globals, UsageError } from './context.ts';
import { createProgressBar } from './progress.ts';

/** The progress bar only appears on a terminal and for trees big enough to take a moment. */
const PROGRESS_MIN_FILES = 500;

export function scanCommand(program: Command, io: CliIO): void {
  program
    .command('scan')
    .argument('[paths...]', 'files or folders to scan (default: the current folder)')
    .option('--git', 'also scan every blob in the whole git history (all refs), reporting the commit')
    .option('--allow <file>', 'allow-list: fingerprints, rule:ID or path globs, one a line')
    .description(
      'find hard-coded LLM API keys and other credentials; --format table, json or sarif; exits 1 when anything is found',
    )
    .action(async (paths: string[], o: { git?: boolean; allow?: string }, cmd: Command) => {
      // --format is the program's global option (it is parsed wherever it appears); scan adds sarif.
      const format = (globals(cmd).format ?? 'table') as ScanFormat;
      if (format !== 'table' && format !== 'json' && format !== 'sarif')
        throw new UsageError(`--format must be table, json or sarif, not ${JSON.stringify(format)}`);
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
      let findings: Finding[] = tree.findings;
      let blobs: number | undefined;
      if (o.git) {
        const history = await scanGitHistory(io.cwd, {
          ...(allow ? { allow } : {}),
          onProgress: progress('history'),
        }).catch((err: Error) => {
          bar?.stop();
          throw /not inside a git repository/.test(err.message) ? new UsageError(err.message) : err;
        });
        blobs = history.stats.blobs;
        // a key still in the working tree is reported there; history adds what is only in old commits
        const current = new Set(findings.map((f) => `${f.fingerprint} ${f.file}`));
        const seen = new Set<string>();
        const older = history.findings.filter((f) => {
          const k = `${f.fingerprint} ${f.file}`;
          if (
            current.has(k) ||
            current.has(`${f.fingerprint} ${f.file.split('/').join('\\')}`) ||
            seen.has(k)
          )
            return false;
          seen.add(k);
          return true;
        });
        findings = [...findings, ...older];
      }
      bar?.stop();
      io.stdout.write(render(format, findings, { ...tree.stats, ...(blobs === undefined ? {} : { blobs }) }));
      io.exitCode = findings.length > 0 ? 1 : 0;
    });
}
