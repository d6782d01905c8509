import { dirname } from 'node:path';
import type { ServerConfig } from '../config/config.ts';

/** What `npm start` prints: where the server is, the root token and what to try next. */
export function printDevBanner(
  out: NodeJS.WritableStream,
  address: string,
  token: string,
  config: Readonly<ServerConfig>,
): void {
  const storage = 'sqlite' in config.storage ? config.storage.sqlite.path : Object.keys(config.storage)[0];
  const folder = 'sqlite' in config.storage ? dirname(config.storage.sqlite.path) : 'storage';
  const bar = '!'.repeat(78);
  out.write(
    `
${bar}
!!  WARNING: DEVELOPMENT MODE. DO NOT USE IT FOR REAL CREDENTIALS.
!!  The unseal key is stored in a file next to the data and the server unseals
!!  itself: anyone who can read that folder can read every secret.
!!  See docs/production.md to run a sealed production server.
${bar}

Strongroom dev server is listening on ${address}
  storage:    ${storage}
  root token: ${token}   (new on every start; the previous one is revoked)

In another terminal:

  export STRONGROOM_ADDR=${address}
  export STRONGROOM_TOKEN=${token}
  npx strongroom project create demo
  printf '%s' "sk-your-openai-key" | npx strongroom secret put demo/dev/OPENAI_API_KEY
  npx strongroom secret get demo/dev/OPENAI_API_KEY
  npx strongroom secret list demo/dev

Stop with Ctrl-C; the data stays in ${folder} (delete that folder to start afresh).
`,
  );
}
