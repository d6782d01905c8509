#!/usr/bin/env node
// Entry point guard: plain JavaScript that every Node version can parse, so an
// old Node prints a clear message instead of failing on TypeScript syntax.
const major = Number(process.versions.node.split('.')[0]);
if (!(major >= 24)) {
  process.stderr.write(
    `strongroom needs Node.js 24 or newer; this is Node.js ${process.versions.node}.\n` +
      "Run it through npm so the project's pinned Node 24 is used: `npm install` once, then `npx strongroom ...` or `npm start`.\n",
  );
  process.exit(1);
}
// Node keeps the type-stripped, compiled modules in a cache (in the OS temp folder, no data of
// ours): every later start of the CLI, server or agent skips that work.
const { enableCompileCache } = await import('node:module');
enableCompileCache?.();
// The server, gateway and agent hold keys: their process is re-executed in place (same pid) with no
// signal that opens an inspector and with core dumps off (src/lib/hardening.ts, docs/production.md).
// Other commands start as they are, for speed.
const hardening = await import('../src/lib/hardening.ts');
if (hardening.isHardenedRole(process.argv.slice(2))) {
  if (!process.execArgv.includes(hardening.DISABLE_SIGUSR1) && typeof process.execve === 'function') {
    const { existsSync } = await import('node:fs');
    const { file, args } = hardening.hardenedExec({
      execPath: process.execPath,
      execArgv: process.execArgv,
      argv: process.argv,
      shell: existsSync('/bin/sh') ? '/bin/sh' : undefined,
    });
    process.execve(file, args, process.env);
  }
  // where the process could not be re-executed (no execve): a listener replaces Node's SIGUSR1 handler
  process.on('SIGUSR1', () => {});
}
await import('./strongroom.ts');
