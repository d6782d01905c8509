import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  commandOf,
  hardenedExec,
  inspectorFlags,
  inspectorRequest,
  isHardenedRole,
  splitNodeOptions,
} from './hardening.ts';

test('the command is the first word that is not an option or a global option value', () => {
  const cases: [string[], string | undefined][] = [
    [['server', '--dev'], 'server'],
    [['--format', 'json', 'server'], 'server'],
    [['--addr', 'http://x', '--token', 't', 'agent'], 'agent'],
    [['--token=server', 'secret', 'get', 'a/b/C'], 'secret'],
    [['--', 'gateway'], 'gateway'],
    [['--help'], undefined],
  ];
  for (const [args, want] of cases) assert.equal(commandOf(args), want, args.join(' '));
  assert.equal(isHardenedRole(['gateway', '--config', 'g.yaml']), true);
  assert.equal(isHardenedRole(['scan', 'server']), false);
});

test('inspector flags in every spelling, and none among other flags', () => {
  assert.deepEqual(
    inspectorFlags([
      '--inspect',
      '--inspect=0',
      '--inspect-brk=9',
      '--inspect_brk',
      '--inspect-wait',
      '--inspect-port=1',
      '--debug-port=2',
      '--inspect-brk-node',
    ]),
    [
      '--inspect',
      '--inspect=0',
      '--inspect-brk=9',
      '--inspect_brk',
      '--inspect-wait',
      '--inspect-port=1',
      '--debug-port=2',
      '--inspect-brk-node',
    ],
  );
  assert.deepEqual(
    inspectorFlags([
      '--inspector-nope',
      '--max-old-space-size=4',
      '--inspect-publish-uid=http',
      '--disable-sigusr1',
    ]),
    [],
  );
  assert.deepEqual(splitNodeOptions(' --a  "--inspect-port=0" "--title=a b" '), [
    '--a',
    '--inspect-port=0',
    '--title=a b',
  ]);
  assert.equal(
    inspectorRequest({ execArgv: [], nodeOptions: '--max-old-space-size=512', active: false }),
    undefined,
  );
  assert.equal(
    inspectorRequest({ execArgv: [], nodeOptions: '', active: true }),
    'an inspector that is already open',
  );
});

test('the hardened re-execution keeps the pid (sh execs node), adds --disable-sigusr1 and passes arguments as argv', () => {
  const { file, args } = hardenedExec({
    execPath: '/n/node',
    execArgv: ['--max-old-space-size=64'],
    argv: ['/n/node', '/b/strongroom.js', 'server', '$(touch /tmp/x)'],
    shell: '/bin/sh',
  });
  assert.equal(file, '/bin/sh');
  assert.deepEqual(args, [
    '/bin/sh',
    '-c',
    'ulimit -c 0; exec "$0" "$@"',
    '/n/node',
    '--max-old-space-size=64',
    '--disable-sigusr1',
    '/b/strongroom.js',
    'server',
    '$(touch /tmp/x)',
  ]);
});
