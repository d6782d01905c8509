import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { Agent, fetch as undiciFetch } from 'undici';
import { staticKeyFile } from './app.ts';
import { type ServerProcess, startServerProcess } from './process.ts';

/**
 * A self-signed P-256 server certificate for localhost and 127.0.0.1, valid one
 * day, made with openssl in `dir` (`<name>-cert.pem`, `<name>-key.pem`). The
 * certificate is its own CA: give it to clients as `ca`.
 */
export function selfSignedCert(dir: string, name = 'server'): { certFile: string; keyFile: string } {
  const certFile = join(dir, `${name}-cert.pem`);
  const keyFile = join(dir, `${name}-key.pem`);
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-days',
      '1',
      '-subj',
      '/CN=localhost',
      '-addext',
      'subjectAltName=IP:127.0.0.1,DNS:localhost',
      '-keyout',
      keyFile,
      '-out',
      certFile,
    ],
    { stdio: 'ignore' },
  );
  return { certFile, keyFile };
}

export interface TlsVault {
  server: ServerProcess;
  certFile: string;
  /** The vault's certificate, as clients trust it. */
  ca: string;
  auditFile: string;
  root: string;
  /** A call over TLS (the root token or `token`; another dispatcher for mTLS). */
  call(
    method: string,
    path: string,
    body?: unknown,
    opts?: { token?: string; dispatcher?: Agent },
  ): Promise<{ status: number; json: Record<string, unknown> }>;
  /** A call with the root token that must succeed. */
  admin(method: string, path: string, body?: unknown): Promise<Record<string, unknown>>;
  /** The audit file's entries. */
  audit(): Record<string, unknown>[];
}

/**
 * A real `strongroom server` process with TLS (client certificates requested),
 * SQLite, a static seal, a file audit log and workload identity on
 * (`trustDomain`), initialised: for tests of workloads talking mTLS to it.
 */
export async function startTlsVault(
  t: TestContext,
  dir: string,
  trustDomain: string,
  opts: { rateLimit?: { requests_per_second: number; burst: number } } = {},
): Promise<TlsVault> {
  const { certFile, keyFile } = selfSignedCert(dir, 'vault');
  const auditFile = join(dir, 'audit.log');
  const config = join(dir, 'vault.yaml');
  writeFileSync(
    config,
    [
      'listen: 127.0.0.1:0',
      `storage: {sqlite: {path: ${join(dir, 'vault.db')}}}`,
      `seal: {static: {key_file: ${staticKeyFile(t)}}}`,
      `tls: {cert_file: ${certFile}, key_file: ${keyFile}}`,
      `audit: [{file: {path: ${auditFile}}}]`,
      `identity: {trust_domain: ${trustDomain}}`,
      ...(opts.rateLimit ? [`rate_limit: ${JSON.stringify(opts.rateLimit)}`] : []),
      '',
    ].join('\n'),
  );
  const server = await startServerProcess(t, ['--config', config]);
  const ca = readFileSync(certFile, 'utf8');
  const tls = new Agent({ connect: { ca } });
  t.after(() => tls.close());
  const call: TlsVault['call'] = async (method, path, body, opts = {}) => {
    const res = await undiciFetch(server.address + path, {
      method,
      dispatcher: opts.dispatcher ?? tls,
      headers: {
        ...(opts.token ? { authorization: `Bearer ${opts.token}` } : {}),
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await res.text();
    let json: Record<string, unknown> = {};
    try {
      json = JSON.parse(text);
    } catch {}
    return { status: res.status, json };
  };
  const init = await call('POST', '/v1/sys/init', {});
  assert.equal(init.status, 200, JSON.stringify(init.json));
  const root = init.json.root_token as string;
  return {
    server,
    certFile,
    ca,
    auditFile,
    root,
    call,
    async admin(method, path, body) {
      const r = await call(method, path, body, { token: root });
      assert.ok(r.status < 300, `${method} ${path}: ${r.status} ${JSON.stringify(r.json)}`);
      return r.json;
    },
    audit: () =>
      readFileSync(auditFile, 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}
