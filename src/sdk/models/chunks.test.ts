import assert from 'node:assert/strict';
import { createHash, createSecretKey, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { test } from 'node:test';
import { DecryptStream, EncryptStream } from './chunks.ts';

const CHUNK = 1024;
const key = createSecretKey(randomBytes(32));

async function encrypt(plain: Buffer, path = 'w.safetensors'): Promise<Buffer> {
  const out: Buffer[] = [];
  const e = new EncryptStream(key, path, CHUNK);
  e.on('data', (c: Buffer) => out.push(c));
  await pipeline(Readable.from([plain.subarray(0, 700), plain.subarray(700)]), e);
  return Buffer.concat(out);
}

/** Decrypts, collecting what reached the consumer before any error. */
async function decrypt(enc: Buffer, path: string, sha256?: string): Promise<{ got: Buffer; error?: Error }> {
  const got: Buffer[] = [];
  const d = new DecryptStream(key, path, sha256);
  d.on('data', (c: Buffer) => got.push(c));
  try {
    await pipeline(Readable.from([enc]), d);
    return { got: Buffer.concat(got) };
  } catch (error) {
    return { got: Buffer.concat(got), error: error as Error };
  }
}

test('the chunk format round-trips any size, an empty file and an exact multiple of the chunk size included', async () => {
  for (const size of [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK, 3 * CHUNK + 17]) {
    const plain = randomBytes(size);
    const r = await decrypt(
      await encrypt(plain),
      'w.safetensors',
      createHash('sha256').update(plain).digest('hex'),
    );
    assert.equal(r.error, undefined, `${size}: ${r.error?.message}`);
    assert.ok(r.got.equals(plain), `${size} bytes`);
  }
});

test('a stream whose plaintext is not the expected one never delivers its last chunk, and fails', async () => {
  const plain = randomBytes(3 * CHUNK + 5);
  const r = await decrypt(await encrypt(plain), 'w.safetensors', '0'.repeat(64));
  assert.match(r.error!.message, /is not the signed one/);
  assert.ok(r.got.length <= 3 * CHUNK, 'the last chunk was withheld');
});

test('chunks moved, repeated, dropped, a file renamed, or bytes appended do not decrypt', async () => {
  const plain = randomBytes(3 * CHUNK + 5);
  const enc = await encrypt(plain);
  const head = enc.subarray(0, 12);
  const rec = (n: number) => enc.subarray(12 + n * (CHUNK + 16), 12 + (n + 1) * (CHUNK + 16));
  const cases: Array<[string, Buffer, string]> = [
    ['reordered', Buffer.concat([head, rec(1), rec(0), rec(2), rec(3)]), 'w.safetensors'],
    ['duplicated', Buffer.concat([head, rec(0), rec(0), rec(1), rec(2), rec(3)]), 'w.safetensors'],
    ['last chunk dropped', Buffer.concat([head, rec(0), rec(1), rec(2)]), 'w.safetensors'],
    ['cut inside a chunk', enc.subarray(0, enc.length - 3), 'w.safetensors'],
    ['appended', Buffer.concat([enc, Buffer.from('x')]), 'w.safetensors'],
    ['renamed', enc, 'other.safetensors'],
  ];
  for (const [what, bytes, path] of cases) {
    const r = await decrypt(bytes, path);
    assert.ok(r.error, `${what} decrypted`);
  }
});
