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
await import('./strongroom.ts');
