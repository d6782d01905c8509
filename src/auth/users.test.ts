import assert from 'node:assert/strict';
import { argon2Sync, randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { generate } from 'otplib';
import { isStrongroomError } from '../errors/errors.ts';
import {
  ARGON2_PARAMS,
  hashPassword,
  needsRehash,
  type PasswordHash,
  passwordProblem,
  verifyPassword,
} from './password.ts';
import { newRecoveryCode, newTotpSecret, normalizeRecoveryCode, verifyTotp } from './totp.ts';
import { checkRoles, normalizeUsername } from './users.ts';

test('usernames normalise one way: NFKC, trimmed, inner whitespace collapsed, lower case', () => {
  const cases: [string, string][] = [
    ['alice', 'alice'],
    ['Alice', 'alice'],
    ['  alice  ', 'alice'],
    ['ＡＬＩＣＥ', 'alice'],
    ['Ａlice', 'alice'],
    ['mary \t  jane', 'mary jane'],
    ['mary\u3000jane', 'mary jane'], // ideographic space
    ['ﬁona', 'fiona'], // ligature
    ['Ⅻ', 'xii'], // roman numeral
    ['josé', 'josé'],
    ['jose\u0301', 'josé'], // decomposed accent
    ['ÅSA', 'åsa'],
  ];
  for (const [input, want] of cases) {
    assert.equal(normalizeUsername(input), want, JSON.stringify(input));
    assert.equal(normalizeUsername(normalizeUsername(input)), want, 'idempotent');
  }
});

test('usernames with control, zero-width or private-use characters, or of the wrong length, are refused', () => {
  for (const bad of [
    '',
    '   ',
    'a\u0000b',
    'a\u0007b',
    'al\u200bice',
    'al\u200dice',
    'a\ue000',
    'x'.repeat(65),
    '\u202eevil',
  ]) {
    assert.throws(
      () => normalizeUsername(bad),
      (e) => isStrongroomError(e, 'invalid_name'),
      JSON.stringify(bad),
    );
  }
  assert.equal(normalizeUsername('x'.repeat(64)).length, 64);
});

test('argon2id hashes store their parameters and verify only the right password', async () => {
  const h = await hashPassword('correct horse battery staple');
  assert.equal(h.alg, 'argon2id');
  assert.deepEqual({ m: h.m, t: h.t, p: h.p }, { m: 19_456, t: 2, p: 1 });
  assert.equal(Buffer.from(h.salt, 'base64').length, 16);
  assert.equal(Buffer.from(h.hash, 'base64').length, 32);
  assert.equal(await verifyPassword('correct horse battery staple', h), true);
  assert.equal(await verifyPassword('correct horse battery stapl', h), false);
  // the same password gets a fresh salt each time
  assert.notEqual((await hashPassword('correct horse battery staple')).hash, h.hash);
  assert.equal(needsRehash(h), false);
  assert.equal(needsRehash({ ...h, m: ARGON2_PARAMS.m / 2 }), true);
  // a hash made with other (older) parameters verifies with the parameters stored beside it
  const salt = randomBytes(16);
  const params = {
    message: 'older params',
    nonce: salt,
    parallelism: 1,
    tagLength: 32,
    memory: 8192,
    passes: 1,
  };
  const older: PasswordHash = {
    alg: 'argon2id',
    v: 19,
    m: 8192,
    t: 1,
    p: 1,
    salt: salt.toString('base64'),
    hash: argon2Sync('argon2id', params).toString('base64'),
  };
  assert.equal(await verifyPassword('older params', older), true);
  assert.equal(await verifyPassword('newer params', older), false);
  assert.equal(needsRehash(older), true);
});

test('passwords are compared after NFKC: composed and decomposed accents are one password', async () => {
  const h = await hashPassword('crème brûlée à la carte');
  assert.equal(await verifyPassword('cre\u0300me bru\u0302le\u0301e a\u0300 la carte', h), true);
});

test('password policy: 12 to 1024 characters, not containing the username', () => {
  assert.match(passwordProblem('short')!, /at least 12/);
  assert.match(passwordProblem('ééééééééééé')!, /at least 12/); // 11 characters
  assert.equal(passwordProblem('twelve chars'), undefined);
  assert.match(passwordProblem('x'.repeat(1025))!, /at most 1024/);
  assert.match(passwordProblem('my name is Margaret!', 'margaret')!, /username/);
  assert.equal(passwordProblem('a long enough passphrase', 'bob'), undefined);
});

test('TOTP accepts the current step and one either side, and never a step at or before the last one used', async () => {
  const secret = newTotpSecret();
  const now = Date.UTC(2026, 0, 1, 12, 0, 0);
  const at = (s: number) => generate({ secret, epoch: Math.floor(now / 1000) + s });
  const step = Math.floor(now / 30_000);
  assert.equal(await verifyTotp(secret, await at(0), now), step);
  assert.equal(await verifyTotp(secret, await at(-30), now), step - 1);
  assert.equal(await verifyTotp(secret, await at(30), now), step + 1);
  assert.equal(await verifyTotp(secret, await at(-90), now), undefined);
  assert.equal(await verifyTotp(secret, await at(90), now), undefined);
  assert.equal(await verifyTotp(secret, await at(0), now, step), undefined);
  assert.equal(await verifyTotp(secret, await at(30), now, step), step + 1);
  assert.equal(await verifyTotp(secret, 'abcdef', now), undefined);
});

test('recovery codes carry 80 random bits and are matched ignoring case and dashes', () => {
  const codes = Array.from({ length: 100 }, newRecoveryCode);
  assert.equal(new Set(codes).size, 100);
  for (const c of codes) assert.match(c, /^[0-9a-hjkmnp-tv-z]{4}(-[0-9a-hjkmnp-tv-z]{4}){3}$/);
  assert.equal(normalizeRecoveryCode(' AB12-cd34 EF56-gh78 '), 'ab12cd34ef56gh78');
});

test('roles are deduplicated and sorted; root is never a user or app role', () => {
  assert.deepEqual(checkRoles(['developer', 'admin', 'developer']), ['admin', 'developer']);
  assert.throws(
    () => checkRoles(['root']),
    (e) => isStrongroomError(e, 'validation_failed'),
  );
  assert.throws(
    () => checkRoles(['Admin']),
    (e) => isStrongroomError(e, 'validation_failed'),
  );
});
