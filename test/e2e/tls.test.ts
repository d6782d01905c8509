import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { test } from 'node:test';
import { staticKeyFile, tempDir } from '../helpers/app.ts';
import { startServerProcess } from '../helpers/process.ts';
import { selfSignedCert } from '../helpers/tls.ts';

function get(
  url: string,
  ca: Buffer,
  minVersion?: 'TLSv1.2',
): Promise<{ status: number; body: string; protocol: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { ca, ...(minVersion ? { maxVersion: minVersion } : {}) }, (res) => {
      const protocol = (res.socket as import('node:tls').TLSSocket).getProtocol() ?? '';
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () =>
        resolve({
          status: res.statusCode!,
          body,
          protocol,
        }),
      );
    });
    req.on('error', reject);
    req.end();
  });
}

test('with tls configured the server speaks only HTTPS, with the configured certificate', async (t) => {
  const dir = tempDir(t);
  const { certFile: cert, keyFile: key } = selfSignedCert(dir);
  const config = join(dir, 'strongroom.yaml');
  writeFileSync(
    config,
    [
      'listen: 127.0.0.1:0',
      `storage: {sqlite: {path: ${join(dir, 'sr.db')}}}`,
      `seal: {static: {key_file: ${staticKeyFile(t)}}}`,
      `tls: {cert_file: ${cert}, key_file: ${key}, min_version: TLSv1.3}`,
    ].join('\n'),
  );
  const server = await startServerProcess(t, ['--config', config]);
  assert.match(server.address, /^https:\/\/127\.0\.0\.1:\d+$/);
  const ca = execFileSync('cat', [cert]);
  const res = await get(`${server.address}/v1/sys/seal-status`, ca);
  assert.equal(res.status, 200);
  assert.equal(res.protocol, 'TLSv1.3');
  assert.equal(JSON.parse(res.body).initialized, false);
  // TLS 1.2 is refused when min_version is TLSv1.3
  await assert.rejects(get(`${server.address}/v1/sys/seal-status`, ca, 'TLSv1.2'));
  // plain HTTP on the TLS port gets no answer it could trust
  const plain = await fetch(`${server.address.replace('https', 'http')}/v1/sys/seal-status`).then(
    (r) => r.status,
    () => 'refused',
  );
  assert.notEqual(plain, 200);
});
