import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { AgentConfigError, parseAgentConfig } from '../config/agent.ts';

const BASE = `vault:
  addrs: ["http://127.0.0.1:8210"]
auth:
  token_file: token
`;

test('an identity section alone is something to do, resolved against the file', () => {
  const cfg = parseAgentConfig(
    `${BASE}identity:
  spiffe_id: spiffe://strongroom.local/ns/demo/sa/api
  socket: run/workload.sock
  ttl: 10m
  files:
    dir: svid
`,
    '/etc/agent',
  );
  assert.deepEqual(cfg.identity, {
    spiffeId: 'spiffe://strongroom.local/ns/demo/sa/api',
    socket: { path: '/etc/agent/run/workload.sock', mode: 0o600 },
    ttlSeconds: 600,
    files: { dir: '/etc/agent/svid' },
  });
});

test('without identity, nothing to do still names identity among the choices', () => {
  assert.throws(() => parseAgentConfig(BASE, '/x'), /nothing to do: .*identity/);
});

const cases: [string, string, RegExp][] = [
  ['a trust domain ID (no path)', 'spiffe_id: spiffe://strongroom.local\n  socket: w.sock', /spiffe_id/],
  ['an uppercase trust domain', 'spiffe_id: spiffe://Strongroom/x\n  socket: w.sock', /spiffe_id/],
  ['a dot segment', 'spiffe_id: spiffe://td/a/../b\n  socket: w.sock', /\. or \.\./],
  ['no socket', 'spiffe_id: spiffe://td/a', /socket/],
  ['a zero ttl', 'spiffe_id: spiffe://td/a\n  socket: w.sock\n  ttl: 0', /ttl/],
  ['a malformed ttl', 'spiffe_id: spiffe://td/a\n  socket: w.sock\n  ttl: soon', /ttl/],
  [
    'a world-writable socket',
    'spiffe_id: spiffe://td/a\n  socket: w.sock\n  socket_mode: "0666"',
    /socket_mode/,
  ],
  ['an unknown key', 'spiffe_id: spiffe://td/a\n  socket: w.sock\n  hint: x', /identity/],
];
for (const [what, body, msg] of cases) {
  test(`identity with ${what} is refused`, () => {
    assert.throws(
      () => parseAgentConfig(`${BASE}identity:\n  ${body}\n`, '/x'),
      (err) => {
        assert.ok(err instanceof AgentConfigError);
        assert.match(err.message, msg);
        return true;
      },
    );
  });
}

test('the Workload API cannot share the local API socket', () => {
  assert.throws(
    () =>
      parseAgentConfig(
        `${BASE}listen:\n  socket: a.sock\nidentity:\n  spiffe_id: spiffe://td/a\n  socket: a.sock\n`,
        '/x',
      ),
    /its own socket/,
  );
});

test('vault.ca_file is read at load, relative to the file; a missing or non-PEM file is refused', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'sr-agent-ca-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const pem = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';
  writeFileSync(join(dir, 'ca.pem'), pem);
  writeFileSync(join(dir, 'not.pem'), 'hello');
  const withCa = (file: string) =>
    `vault:\n  addrs: ["https://vault:8210"]\n  ca_file: ${file}\nauth:\n  token_file: token\nlisten:\n  socket: s.sock\n`;
  assert.equal(parseAgentConfig(withCa('ca.pem'), dir).ca, pem);
  assert.throws(() => parseAgentConfig(withCa('missing.pem'), dir), /\/vault\/ca_file: cannot read/);
  assert.throws(() => parseAgentConfig(withCa('not.pem'), dir), /holds no PEM certificate/);
});
