import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { test } from 'node:test';
import type { FastifyReply } from 'fastify';
import { ERROR_CODES, type ErrorCode, StrongroomError } from '../errors/errors.ts';
import { HTTP_STATUS } from '../errors/http-status.ts';
import { END_MESSAGES } from './call-guard.ts';
import { GATEWAY_ERROR_CODES, refusalCode, sendError, statusOf } from './error-answers.ts';

const UNION: readonly string[] = ERROR_CODES;
const HERE = import.meta.dirname;
/** The vault's side of the gateway port lives in the composition root; its codes reach gateway callers too. */
const VAULT_SIDE = join(HERE, '..', 'assemble', 'gateway-vault');

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) return sources(p);
    return p.endsWith('.ts') && !p.endsWith('.test.ts') ? [p] : [];
  });
}

/**
 * Where the gateway's source names a code it answers with or throws: refusals, error answers and
 * events, stage refusals, the errors it makes. The typecheck holds each to the union; this test
 * also keeps the list of the gateway's codes whole.
 */
const CODE_SITES: readonly { re: RegExp; only?: string }[] = [
  { re: /\bsendError\(\s*reply,\s*[\w.]+,\s*'([a-z_]+)'/g },
  { re: /\brefuse\(\s*(?:r,\s*)?'([a-z_]+)'/g },
  // the stream's error events (signing.ts has a `fail` of its own, for provenance reasons)
  { re: /\bfail\(\s*'([a-z_]+)'/g, only: 'relay-stream.ts' },
  { re: /\bnew (?:StrongroomError|StageRequestError)\(\s*'([a-z_]+)'/g },
  { re: /\bnew StageRefusal\(\s*[^,]+,\s*'([a-z_]+)'/g },
  { re: /\bsuper\(\s*'([a-z_]+)'/g },
  { re: /\b(?:code|refusal): '([a-z_]+)'/g },
];

function namedCodes(): Map<string, string[]> {
  const found = new Map<string, string[]>();
  for (const file of [...sources(HERE), ...sources(VAULT_SIDE)]) {
    const text = readFileSync(file, 'utf8');
    const where = relative(HERE, file);
    for (const { re, only } of CODE_SITES) {
      if (only && where !== only) continue;
      for (const m of text.matchAll(re)) {
        found.set(m[1]!, [...(found.get(m[1]!) ?? []), where]);
      }
    }
  }
  return found;
}

test('every code of the gateway is in the closed union and has its status in the one map', () => {
  for (const code of GATEWAY_ERROR_CODES) {
    assert.ok(UNION.includes(code), `${code} is not in ERROR_CODES`);
    const status = HTTP_STATUS[code];
    assert.ok(Number.isInteger(status) && status >= 400 && status <= 599, `${code} has no error status`);
    assert.equal(statusOf(code), status);
  }
  assert.equal(new Set(GATEWAY_ERROR_CODES).size, GATEWAY_ERROR_CODES.length, 'listed once each');
});

test('every code the gateway source answers with or throws is in the union, with a status', () => {
  const found = namedCodes();
  assert.ok(found.size >= 20, `the scan found only ${found.size} codes: has the source changed shape?`);
  const missing = [...found].filter(
    ([code]) => !UNION.includes(code) || HTTP_STATUS[code as ErrorCode] === undefined,
  );
  assert.deepEqual(missing, []);
});

test('every code the gateway answers on its own is listed among its codes', () => {
  const own: readonly string[] = GATEWAY_ERROR_CODES;
  // codes thrown in the vault's side of the port (src/assemble/gateway-vault/, and remote-vault.ts, its client)
  // reach callers through the gateway's refusals too: they are checked above; these are the gateway's
  const vaultSide = new Set([
    ...['local-vault.ts', 'vault-service.ts', 'provider-keys.ts'].map((f) =>
      relative(HERE, join(VAULT_SIDE, f)),
    ),
    'remote-vault.ts',
  ]);
  const unlisted = [...namedCodes()]
    .filter(([code, where]) => !own.includes(code) && where.some((w) => !vaultSide.has(w)))
    .map(([code, where]) => `${code} (${[...new Set(where)].join(', ')})`);
  assert.deepEqual(unlisted, []);
});

test('each way a call ends early is a code of the union, with its status', () => {
  const expected: Record<keyof typeof END_MESSAGES, number> = {
    client_closed: 499,
    call_timeout: 504,
    credential_revoked: 401,
    vault_unavailable: 503,
  };
  for (const [how, status] of Object.entries(expected)) {
    assert.ok(UNION.includes(how));
    assert.equal(HTTP_STATUS[how as ErrorCode], status);
  }
  assert.deepEqual(Object.keys(END_MESSAGES).sort(), Object.keys(expected).sort());
});

/** A reply that keeps what the gateway set on it. */
function fakeReply() {
  const sent: { status?: number; type?: string; headers: Record<string, string>; body?: unknown } = {
    headers: {},
  };
  const reply = {
    code(s: number) {
      sent.status = s;
      return reply;
    },
    type(t: string) {
      sent.type = t;
      return reply;
    },
    header(k: string, v: string) {
      sent.headers[k] = v;
      return reply;
    },
    send(b: unknown) {
      sent.body = b;
      return reply;
    },
  };
  return { reply: reply as unknown as FastifyReply, sent };
}

test('an error answer takes its status from the one map, in the caller API format', () => {
  for (const code of GATEWAY_ERROR_CODES) {
    const openai = fakeReply();
    sendError(openai.reply, 'openai', code, 'no', 7);
    assert.equal(openai.sent.status, HTTP_STATUS[code]);
    assert.equal(openai.sent.type, 'application/json');
    assert.equal(openai.sent.headers['retry-after'], '7');
    const o = openai.sent.body as { error: { code: string; message: string; param: null } };
    assert.equal(o.error.code, code);
    assert.equal(o.error.message, 'no');

    const anthropic = fakeReply();
    sendError(anthropic.reply, 'anthropic', code, 'no');
    assert.equal(anthropic.sent.status, HTTP_STATUS[code]);
    assert.equal(anthropic.sent.headers['retry-after'], undefined);
    const a = anthropic.sent.body as { type: string; error: { type: string; message: string } };
    assert.equal(a.type, 'error');
    assert.equal(a.error.message, `no (${code})`);
  }
});

test('a refusal the vault names more precisely is answered with that code when the union holds it', () => {
  const priced = new StrongroomError('permission_denied', 'no price', {
    details: { refusal: 'model_not_priced' },
  });
  assert.equal(refusalCode(priced), 'model_not_priced');
  assert.equal(statusOf(refusalCode(priced)), 403);
  const unknown = new StrongroomError('permission_denied', 'x', { details: { refusal: 'not_a_code' } });
  assert.equal(refusalCode(unknown), 'permission_denied');
  assert.equal(refusalCode(new StrongroomError('rate_limited', 'slow down')), 'rate_limited');
});
