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
await import('./strongroom.ts');
