import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import pg from 'pg';
import { stringify } from 'yaml';
import { generateToken } from '../../src/crypto/token.ts';
import { tempDir } from '../helpers/app.ts';
import { postgresSkipReason, postgresTestUrl, uniqueTable } from '../helpers/postgres.ts';
import { type ServerProcess, startServerProcess } from '../helpers/process.ts';

/**
 * Canaries: distinctive secret values, a root token and unseal key shares go
 * through a real server process (logging at debug, the most it can), including
 * requests that fail while carrying a canary. Afterwards every byte the server
 * left behind (database files or table, and its complete stdout/stderr) is
 * searched for them, raw and encoded. Nothing may be found.
 */

const PROJECT = 'canary';
const ENV = 'dev';
const hex = (bytes: number) => randomBytes(bytes).toString('hex');

type StorageSection = { sqlite: { path: string } } | { postgres: { url: string; table: string } };

interface Reply {
  status: number;
  text: string;
  json: Record<string, unknown> | undefined;
}

async function send(
  server: ServerProcess,
  method: string,
  path: string,
  opts: {
    token?: string;
    body?: unknown;
    raw?: string;
    contentType?: string;
    headers?: Record<string, string>;
  } = {},
): Promise<Reply> {
  const body = opts.raw ?? (opts.body === undefined ? undefined : JSON.stringify(opts.body));
  const res = await fetch(`${server.address}${path}`, {
    method,
    headers: {
      ...(opts.token === undefined ? {} : { authorization: `Bearer ${opts.token}` }),
      ...(body === undefined ? {} : { 'content-type': opts.contentType ?? 'application/json' }),
      ...opts.headers,
    },
    ...(body === undefined ? {} : { body }),
  });
  const text = await res.text();
  let json: Reply['json'];
  try {
    json = JSON.parse(text) as Reply['json'];
  } catch {
    json = undefined;
  }
  return { status: res.status, text, json };
}

const secretUrl = (name: string, suffix = '') => `/v1/secrets/${PROJECT}/${ENV}/${name}${suffix}`;
const errorCode = (r: Reply) => (r.json?.error as { code?: string } | undefined)?.code;

/** A named string that must never be found at rest or in the logs. */
interface Needle {
  label: string;
  bytes: Buffer;
}

/**
 * The forms in which `secret` could leak: raw UTF-8, JSON-escaped, hex (both
 * cases) and base64/base64url at each of the three byte alignments it could
 * have inside a larger encoded buffer.
 */
function encodings(label: string, secret: string | Buffer): Needle[] {
  const raw = typeof secret === 'string' ? Buffer.from(secret, 'utf8') : secret;
  const forms = new Map<string, Buffer>();
  forms.set(`${label} (raw)`, raw);
  if (typeof secret === 'string') {
    const escaped = JSON.stringify(secret).slice(1, -1);
    forms.set(`${label} (JSON-escaped)`, Buffer.from(escaped));
    const ascii = escaped.replace(
      /[\u0080-\uffff]/g,
      (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
    );
    forms.set(`${label} (JSON \\u-escaped)`, Buffer.from(ascii));
  }
  forms.set(`${label} (hex)`, Buffer.from(raw.toString('hex')));
  forms.set(`${label} (HEX)`, Buffer.from(raw.toString('hex').toUpperCase()));
  for (let skip = 0; skip < 3; skip++) {
    const part = raw.subarray(skip);
    const whole = Math.floor(part.byteLength / 3) * 3; // the characters that depend on `part` only
    forms.set(`${label} (base64, offset ${skip})`, Buffer.from(part.subarray(0, whole).toString('base64')));
    forms.set(
      `${label} (base64url, offset ${skip})`,
      Buffer.from(part.subarray(0, whole).toString('base64url')),
    );
  }
  return [...forms].map(([l, bytes]) => ({ label: l, bytes }));
}

interface Corpus {
  label: string;
  bytes: Buffer;
}

function search(corpora: Corpus[], needles: Needle[]): string[] {
  const found: string[] = [];
  for (const n of needles)
    assert.ok(n.bytes.byteLength >= 16, `the needle ${n.label} is long enough to mean something`);
  for (const c of corpora) {
    for (const n of needles) {
      const at = c.bytes.indexOf(n.bytes);
      if (at >= 0) found.push(`${n.label} found in ${c.label} at byte ${at}`);
    }
  }
  return found;
}

interface Exercised {
  /** Every secret that must never be found at rest or in a log. */
  needles: Needle[];
  /** Request ids of the failing requests that carried canaries (to show they were logged). */
  failedRequestIds: string[];
  /** Storage keys that must be present (stored in clear by design). */
  expectedKeys: string[];
  requests: number;
}

/**
 * Initialises and unseals a Shamir server, writes canary secrets, reads them
 * every way the API allows, and sends failing requests that carry canaries.
 */
async function exercise(server: ServerProcess): Promise<Exercised> {
  let requests = 0;
  const call = (method: string, path: string, opts?: Parameters<typeof send>[3]) => {
    requests++;
    return send(server, method, path, opts);
  };

  const canary = {
    openai: `sk-proj-CANARY${hex(24)}`,
    openai2: `sk-proj-CANARY2${hex(24)}`,
    unicode: `ключ-CANARY-🔑-${hex(12)}-ünïcødé-密钥`,
    big: `sk-ant-CANARY${hex(30 * 1024)}`, // 60 KiB of random hex
    unknownField: `sk-proj-CANARY-field-${hex(16)}`,
    malformed: `sk-proj-CANARY-badjson-${hex(16)}`,
    bogusToken: `sk-proj-CANARY-token-${hex(16)}`,
    wellFormedToken: generateToken('srt'),
    vaultHeader: `sk-proj-CANARY-xvault-${hex(16)}`,
    tooLong: `sk-proj-CANARY-toolong-${hex(33 * 1024)}`,
    wrongType: `sk-proj-CANARY-media-${hex(16)}`,
    unsealKey: `CANARY${hex(20)}`,
    metadata: `sk-proj-CANARY-meta-${hex(16)}`,
    password: `pw-CANARY-${hex(16)}`,
    wrongPassword: `pw-CANARY-wrong-${hex(16)}`,
  };
  assert.ok(canary.big.length >= 60 * 1024 && canary.big.length <= 64 * 1024);
  const failedRequestIds: string[] = [];
  const mustFail = (r: Reply, status: number, code: string, what: string, carried: string[]) => {
    assert.equal(r.status, status, `${what} answers ${status}: ${r.text}`);
    assert.equal(errorCode(r), code, `${what}: ${r.text}`);
    for (const c of carried) {
      assert.equal(r.text.includes(c), false, `the error body of ${what} does not echo the canary`);
      assert.equal(
        r.text.includes(c.slice(-16)),
        false,
        `the error body of ${what} does not echo part of the canary`,
      );
    }
    const requestId = (r.json?.error as { request_id?: string } | undefined)?.request_id;
    assert.ok(requestId, `${what} names its request id`);
    failedRequestIds.push(requestId);
  };

  // init (Shamir 3/2) and unseal, after a canary that is not a valid share
  const init = await call('POST', '/v1/sys/init', { body: { secret_shares: 3, secret_threshold: 2 } });
  assert.equal(init.status, 200, init.text);
  const {
    root_token: token,
    keys,
    keys_base64,
  } = init.json as { root_token: string; keys: string[]; keys_base64: string[] };
  assert.equal(keys.length, 3);
  mustFail(
    await call('POST', '/v1/sys/unseal', { body: { key: canary.unsealKey } }),
    400,
    'invalid_unseal_key',
    'an unseal with a canary key',
    [canary.unsealKey],
  );
  assert.equal((await call('POST', '/v1/sys/unseal', { body: { key: keys[0] } })).status, 200);
  const unsealed = await call('POST', '/v1/sys/unseal', { body: { key: keys_base64[1] } });
  assert.equal((unsealed.json as { sealed: boolean }).sealed, false, unsealed.text);

  assert.equal((await call('POST', '/v1/projects', { token, body: { name: PROJECT } })).status, 201);

  // writes
  const put = async (name: string, value: string, metadata?: Record<string, string>) => {
    const r = await call('PUT', secretUrl(name), {
      token,
      body: { value, ...(metadata ? { metadata } : {}) },
    });
    assert.equal(r.status, 200, r.text);
    for (const c of Object.values(canary))
      assert.equal(r.text.includes(c), false, 'a write response echoes no value');
    return (r.json as { version: number }).version;
  };
  assert.equal(await put('OPENAI_API_KEY', canary.openai), 1);
  assert.equal(await put('OPENAI_API_KEY', canary.openai2, { note: canary.metadata }), 2);
  assert.equal(await put('UNICODE_KEY', canary.unicode), 1);
  assert.equal(await put('BIG_KEY', canary.big), 1);

  // reads: the canaries do round-trip, so the searches below cannot pass vacuously
  const read = async (name: string, expected: string, version?: number) => {
    const r = await call('GET', secretUrl(name, version === undefined ? '' : `?version=${version}`), {
      token,
    });
    assert.equal(r.status, 200, r.text);
    assert.equal((r.json as { value: string }).value, expected, `${name} round-trips exactly`);
  };
  await read('OPENAI_API_KEY', canary.openai2);
  await read('OPENAI_API_KEY', canary.openai, 1);
  await read('UNICODE_KEY', canary.unicode);
  await read('BIG_KEY', canary.big);

  const list = await call('GET', `/v1/secrets/${PROJECT}/${ENV}`, { token });
  assert.equal(list.status, 200, list.text);
  assert.deepEqual(
    (list.json as { secrets: { name: string }[] }).secrets.map((s) => s.name),
    ['BIG_KEY', 'OPENAI_API_KEY', 'UNICODE_KEY'],
  );
  const history = await call('GET', secretUrl('OPENAI_API_KEY', '/versions'), { token });
  assert.equal(history.status, 200, history.text);
  for (const r of [list, history]) {
    for (const c of [canary.openai, canary.openai2, canary.unicode, canary.big]) {
      assert.equal(r.text.includes(c), false, 'listings and histories never carry values');
    }
  }
  const rollback = await call('POST', secretUrl('OPENAI_API_KEY', '/rollback'), {
    token,
    body: { version: 1 },
  });
  assert.equal(rollback.status, 200, rollback.text);
  assert.equal((rollback.json as { version: number }).version, 3);
  await read('OPENAI_API_KEY', canary.openai);

  assert.equal((await call('DELETE', secretUrl('UNICODE_KEY'), { token })).status, 200);
  assert.equal(errorCode(await call('GET', secretUrl('UNICODE_KEY'), { token })), 'secret_deleted');
  assert.equal((await call('POST', secretUrl('UNICODE_KEY', '/restore'), { token })).status, 200);
  await read('UNICODE_KEY', canary.unicode);

  // failing requests that carry canaries
  mustFail(
    await call('PUT', secretUrl('OPENAI_API_KEY'), {
      token,
      body: { value: 'harmless', comment: canary.unknownField },
    }),
    400,
    'unknown_field',
    'a PUT with an unknown field',
    [canary.unknownField],
  );
  mustFail(
    await call('PUT', secretUrl('OPENAI_API_KEY'), { token, raw: `{"value": "${canary.malformed}", ` }),
    400,
    'invalid_json',
    'a PUT of malformed JSON',
    [canary.malformed],
  );
  mustFail(
    await call('PUT', secretUrl('OPENAI_API_KEY'), { token: canary.bogusToken, body: { value: 'harmless' } }),
    401,
    'invalid_token',
    'a PUT with a canary as its token',
    [canary.bogusToken],
  );
  mustFail(
    await call('GET', secretUrl('OPENAI_API_KEY'), { token: canary.wellFormedToken }),
    401,
    'invalid_token',
    'a GET with a well-formed but unknown token',
    [canary.wellFormedToken],
  );
  mustFail(
    await call('GET', secretUrl('OPENAI_API_KEY'), { headers: { 'x-vault-token': canary.vaultHeader } }),
    401,
    'invalid_token',
    'a GET with a canary in X-Vault-Token',
    [canary.vaultHeader],
  );
  mustFail(
    await call('PUT', secretUrl('OPENAI_API_KEY'), { token, body: { value: canary.tooLong } }),
    400,
    'validation_failed',
    'a PUT of a value over 64 KiB',
    [canary.tooLong],
  );
  mustFail(
    await call('PUT', secretUrl('OPENAI_API_KEY'), {
      token,
      raw: `value=${canary.wrongType}`,
      contentType: 'text/plain',
    }),
    415,
    'unsupported_media_type',
    'a PUT of text/plain',
    [canary.wrongType],
  );
  mustFail(
    await call('PUT', secretUrl('OPENAI_API_KEY'), {
      token,
      body: { value: canary.tooLong.slice(0, 100), cas: 99 },
    }),
    409,
    'cas_mismatch',
    'a PUT with a stale check-and-set',
    [canary.tooLong.slice(0, 100)],
  );
  // the refused writes changed nothing
  await read('OPENAI_API_KEY', canary.openai);

  // people and machines: a password, a wrong password, an app's client secret and the tokens they get
  const issued: string[] = [];
  const userMade = await call('POST', '/v1/auth/users', {
    token,
    body: { username: 'alice', password: canary.password, roles: ['developer'] },
  });
  assert.equal(userMade.status, 201, userMade.text);
  const login = await call('POST', '/v1/auth/login', {
    body: { username: 'Alice', password: canary.password },
  });
  assert.equal(login.status, 200, login.text);
  issued.push((login.json as { auth: { client_token: string } }).auth.client_token);
  mustFail(
    await call('POST', '/v1/auth/login', { body: { username: 'alice', password: canary.wrongPassword } }),
    401,
    'invalid_credentials',
    'a login with a canary as the wrong password',
    [canary.wrongPassword],
  );
  const appMade = await call('POST', '/v1/auth/apps', {
    token,
    body: { name: 'canary-app', roles: ['app'], scope: { paths: [`${PROJECT}/${ENV}`] } },
  });
  assert.equal(appMade.status, 201, appMade.text);
  const { client_id, client_secret } = appMade.json as { client_id: string; client_secret: string };
  issued.push(client_secret);
  const appLogin = await call('POST', '/v1/auth/app/login', { body: { client_id, client_secret } });
  assert.equal(appLogin.status, 200, appLogin.text);
  const appToken = (appLogin.json as { auth: { client_token: string } }).auth.client_token;
  issued.push(appToken);
  const appRead = await call('GET', secretUrl('OPENAI_API_KEY'), { token: appToken });
  assert.equal((appRead.json as { value: string }).value, canary.openai, appRead.text);
  const child = await call('POST', '/v1/auth/token/create', {
    token,
    body: { roles: ['developer'], ttl: '10m' },
  });
  issued.push((child.json as { auth: { client_token: string } }).auth.client_token);
  const revoked = await call('POST', '/v1/auth/token/revoke', { token, body: { token: issued.at(-1) } });
  assert.equal(revoked.status, 200, revoked.text);

  const needles: Needle[] = [];
  for (const [name, value] of Object.entries(canary)) {
    needles.push(...encodings(`canary ${name}`, value));
    // the random core alone, in case a prefix or suffix was cut off on the way
    const core = /[0-9a-f]{32,}/.exec(value)?.[0];
    if (core) needles.push({ label: `canary ${name} (random part)`, bytes: Buffer.from(core.slice(0, 32)) });
  }
  for (let i = 0; i < 4; i++) {
    const at = Math.floor((canary.big.length - 64) * Math.random());
    needles.push({
      label: `canary big (64 chars at ${at})`,
      bytes: Buffer.from(canary.big.slice(at, at + 64)),
    });
  }
  for (const [i, v] of issued.entries()) needles.push(...encodings(`issued credential ${i + 1}`, v));
  needles.push(...encodings('root token', token));
  needles.push({
    label: 'root token body',
    bytes: Buffer.from(token.slice('srt_'.length, 'srt_'.length + 43)),
  });
  for (const [i, share] of keys.entries()) {
    const raw = Buffer.from(share, 'hex');
    needles.push(...encodings(`unseal share ${i + 1}`, raw));
    needles.push({
      label: `unseal share ${i + 1} (as printed, base64)`,
      bytes: Buffer.from(keys_base64[i]!),
    });
  }
  return {
    needles,
    failedRequestIds,
    expectedKeys: [
      `logical/kv/data/${PROJECT}/${ENV}/BIG_KEY/0000000001`,
      `logical/kv/data/${PROJECT}/${ENV}/OPENAI_API_KEY/0000000003`,
      `logical/kv/meta/${PROJECT}/${ENV}/UNICODE_KEY`,
    ],
    requests,
  };
}

test('the needles find a secret hidden in any of the encodings searched for (so a clean search means something)', () => {
  const secret = `ключ-CANARY-🔑-${hex(12)}`;
  const needles = encodings('probe', secret);
  const raw = Buffer.from(secret);
  const hidden: Corpus[] = [
    { label: 'JSON', bytes: Buffer.from(JSON.stringify({ value: secret })) },
    { label: 'hex', bytes: Buffer.from(`x${raw.toString('hex')}y`) },
    { label: 'HEX', bytes: Buffer.from(`\\x${raw.toString('hex').toUpperCase()}`) },
  ];
  for (let pad = 0; pad < 3; pad++) {
    const inside = Buffer.concat([randomBytes(pad), raw, randomBytes(2)]);
    hidden.push({ label: `base64 after ${pad} bytes`, bytes: Buffer.from(inside.toString('base64')) });
    hidden.push({ label: `base64url after ${pad} bytes`, bytes: Buffer.from(inside.toString('base64url')) });
  }
  for (const c of hidden) assert.notDeepEqual(search([c], needles), [], `the ${c.label} form is found`);
  assert.deepEqual(search([{ label: 'noise', bytes: randomBytes(1 << 16) }], needles), []);
});

function writeConfig(dir: string, storage: StorageSection): string {
  const path = join(dir, 'strongroom.yaml');
  writeFileSync(
    path,
    stringify({ listen: '127.0.0.1:0', storage, seal: { shamir: {} }, log_level: 'debug', access_log: true }),
  );
  return path;
}

async function startDebugServer(t: TestContext, configPath: string): Promise<ServerProcess> {
  // startServerProcess sets STRONGROOM_LOG_LEVEL=info, which beats the file: ask for debug here too
  return startServerProcess(t, ['--config', configPath, '--listen', '127.0.0.1:0'], {
    STRONGROOM_LOG_LEVEL: 'debug',
  });
}

/** The server's complete output, with checks that it is the debug log of these very requests. */
function logCorpus(server: ServerProcess, ex: Exercised): Corpus {
  const out = server.output();
  assert.match(out, /strongroom server listening/);
  for (const id of ex.failedRequestIds)
    assert.ok(out.includes(id), `the log covers the failing request ${id}`);
  return { label: 'the server stdout/stderr', bytes: Buffer.from(out, 'utf8') };
}

function dirCorpus(dir: string, when: string): Corpus[] {
  const corpora: Corpus[] = [];
  for (const name of readdirSync(dir, { recursive: true }) as string[]) {
    const path = join(dir, name);
    if (statSync(path).isFile()) corpora.push({ label: `${name} (${when})`, bytes: readFileSync(path) });
  }
  return corpora;
}

test('no canary, token or key share is ever found in the SQLite files or the server log', async (t) => {
  const began = Date.now();
  const dir = tempDir(t, 'strongroom-canary-');
  const dataDir = join(dir, 'data');
  const configPath = writeConfig(dir, { sqlite: { path: join(dataDir, 'strongroom.db') } });
  const server = await startDebugServer(t, configPath);
  const ex = await exercise(server);

  // the live files (with the WAL before its checkpoint), then the files the clean shutdown leaves
  const live = dirCorpus(dataDir, 'while running');
  assert.ok(
    live.some((c) => c.label.startsWith('strongroom.db-wal')),
    `the running server has a WAL file: ${live.map((c) => c.label).join(', ')}`,
  );
  await server.stop();
  const after = dirCorpus(dataDir, 'after shutdown');
  const db = after.find((c) => c.label.startsWith('strongroom.db '));
  assert.ok(db, 'the database file exists');
  assert.ok(
    db.bytes.byteLength >= 60 * 1024,
    `the database file is not trivially small (${db.bytes.byteLength} bytes)`,
  );
  const everything = [...live, ...after];
  // positive control: keys are stored in clear, so the search does find what is there
  for (const key of ex.expectedKeys) {
    assert.ok(
      everything.some((c) => c.bytes.includes(Buffer.from(key))),
      `the search finds the storage key ${key}`,
    );
  }
  const corpora = [...everything, logCorpus(server, ex)];
  // the audit log records what metadata a write set (metadata is not secret; values are, and are HMAC'd)
  const audit = corpora.filter((c) => c.label.startsWith('audit.log'));
  assert.ok(audit.length > 0, 'the server wrote its audit log beside the data');
  const secretNeedles = ex.needles.filter((n) => !n.label.startsWith('canary metadata'));
  assert.deepEqual(search(audit, secretNeedles), []);
  assert.deepEqual(
    search(
      corpora.filter((c) => !c.label.startsWith('audit.log')),
      ex.needles,
    ),
    [],
  );
  // positive control: the audit log did record the requests, by HMAC
  assert.ok(
    audit.some((c) => c.bytes.includes(Buffer.from('hmac-sha256:'))),
    'secret values appear in the audit log as HMACs',
  );
  const bytes = corpora.reduce((n, c) => n + c.bytes.byteLength, 0);
  t.diagnostic(
    `${ex.requests} requests; ${ex.needles.length} needles searched in ${corpora.length} corpora ` +
      `(${corpora.map((c) => `${c.label}: ${c.bytes.byteLength} B`).join(', ')}; ${bytes} B in all) in ${Date.now() - began} ms: nothing found`,
  );
});

const pgUrl = await postgresTestUrl();

test('no canary, token or key share is ever found in the PostgreSQL table or the server log', {
  skip: pgUrl === undefined ? postgresSkipReason() : false,
}, async (t) => {
  const began = Date.now();
  const url = pgUrl!;
  const table = await uniqueTable(url, t);
  const configPath = writeConfig(tempDir(t, 'strongroom-canary-'), { postgres: { url, table } });
  const server = await startDebugServer(t, configPath);
  const ex = await exercise(server);
  await server.stop();

  const client = new pg.Client({ connectionString: url });
  await client.connect();
  let rows: { key: string; value: Buffer; text: string }[];
  try {
    rows = (await client.query(`SELECT key, value, value::text AS text FROM "${table}" ORDER BY key`)).rows;
  } finally {
    await client.end();
  }
  const keys: Corpus = { label: `${table} keys`, bytes: Buffer.from(rows.map((r) => r.key).join('\n')) };
  const values: Corpus = { label: `${table} values`, bytes: Buffer.concat(rows.map((r) => r.value)) };
  const text: Corpus = {
    label: `${table} values as text`,
    bytes: Buffer.from(rows.map((r) => r.text).join('\n')),
  };
  assert.ok(
    values.bytes.byteLength >= 60 * 1024,
    `the table is not trivially small (${values.bytes.byteLength} bytes of values)`,
  );
  for (const key of ex.expectedKeys)
    assert.ok(keys.bytes.includes(Buffer.from(key)), `the search finds the storage key ${key}`);
  const corpora = [keys, values, text, logCorpus(server, ex)];
  assert.deepEqual(search(corpora, ex.needles), []);
  t.diagnostic(
    `${ex.requests} requests; ${rows.length} rows; ${ex.needles.length} needles searched in ` +
      `${corpora.map((c) => `${c.label}: ${c.bytes.byteLength} B`).join(', ')} in ${Date.now() - began} ms: nothing found`,
  );
});
