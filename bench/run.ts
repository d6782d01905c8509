// Runs every bench/*.ts (except this file) in sequence, each in its own
// process with the Node running this one, and exits non-zero if any failed.
//   npm run bench                 all of them
//   node bench/run.ts barrier     only those whose file name contains "barrier"
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readdirSync } from 'node:fs';
import { basename, join } from 'node:path';

const DIR = import.meta.dirname;
const PER_BENCH_LIMIT_MS = 15 * 60_000;
const filters = process.argv.slice(2);

const files = readdirSync(DIR)
  .filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts') && f !== basename(import.meta.filename))
  .filter((f) => filters.length === 0 || filters.some((x) => f.includes(x)))
  .sort();

if (files.length === 0) {
  process.stderr.write(`no bench file matches ${filters.join(' ')}\n`);
  process.exit(2);
}

const results: { file: string; code: number | string; seconds: number }[] = [];
for (const file of files) {
  process.stdout.write(`\n=== ${file} ===\n`);
  const t0 = Date.now();
  const child = spawn(process.execPath, [join(DIR, file)], { stdio: 'inherit' });
  const timer = setTimeout(() => {
    process.stderr.write(`${file}: over ${PER_BENCH_LIMIT_MS / 60_000} min, killing it\n`);
    child.kill('SIGTERM');
    setTimeout(() => child.kill('SIGKILL'), 10_000).unref();
  }, PER_BENCH_LIMIT_MS);
  const [code, signal] = (await once(child, 'exit')) as [number | null, NodeJS.Signals | null];
  clearTimeout(timer);
  results.push({ file, code: code ?? signal ?? 'unknown', seconds: (Date.now() - t0) / 1000 });
}

process.stdout.write('\n=== summary ===\n');
for (const r of results)
  process.stdout.write(
    `${r.code === 0 ? 'ok  ' : 'FAIL'}  ${r.file}  (${r.seconds.toFixed(0)} s${r.code === 0 ? '' : `, exit ${r.code}`})\n`,
  );
process.exitCode = results.every((r) => r.code === 0) ? 0 : 1;
