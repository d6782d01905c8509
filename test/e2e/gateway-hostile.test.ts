import assert from 'node:assert/strict';
import { randomInt } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { test } from 'node:test';
import Anthropic from '@anthropic-ai/sdk';
import { context, propagation, TraceFlags, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  type ReadableSpan,
  SimpleSpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import type OpenAI from 'openai';
import type { EchoField, EchoKeyMode, KeyEcho, UpstreamFake } from '../fakes/openai-upstream.ts';
import { type GatewaySetup, startGatewaySetup } from '../helpers/gateway.ts';

/**
 * The gateway under a hostile provider, end to end (issue 12, "Must show"): several hundred mixed
 * calls — chat completions plain and streamed (n = 1 and 2, with and without tool calls), the
 * Responses API plain and streamed, Anthropic messages plain and streamed — through the official
 * `openai` and `@anthropic-ai/sdk` clients, chosen by a seeded PRNG (`HOSTILE_SEED` replays a run),
 * in front of fakes that echo the key they received in every text-bearing field each API has, cut
 * at every position, one character a piece or whole, as is or in its masked forms, base64-encoded
 * in the answer, in error bodies and in in-stream error events. Afterwards no run of 4 characters
 * of a key's secret part (nor the key, nor its base64 or hex) may show in what any client received
 * (raw bytes and what the SDKs returned), in the server log, the audit file, the metrics or the
 * spans the gateway recorded; and each call must have ended as the fake meant it to (an answer,
 * the injected status, an in-stream error), so the test cannot pass by everything failing.
 *
 * The spans checked are every span of the process: the gateway's (one per call, in the call's own
 * trace: each call sends its `traceparent`), and the client spans the Anthropic SDK records itself.
 * A failure names the call (its index, API, field, split, form, knobs and the seed) and the place.
 */

// Traces: what the binary registers (src/server/telemetry.ts), with spans kept in memory. Before
// the gateway starts, so its tracer records here.
const spans = new InMemorySpanExporter();
trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(spans)] }));
propagation.setGlobalPropagator(new W3CTraceContextPropagator());
context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());

const CALLS = 600;

// ---------------------------------------------------------------------------
// the seeded PRNG and the keys
// ---------------------------------------------------------------------------

/** mulberry32: small, fast, good enough to choose calls. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Upper-case letters that are not hex digits, nor the `T`/`Z` of timestamps. */
const NOT_HEX = 'GHIJKLMNOPQRSUVWXY';
const B64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

/**
 * Keys whose every 4-character run of the secret part holds an upper-case letter of NOT_HEX (as in
 * gateway-streams.test.ts), so no run can show by chance in hex ids, hashes, numbers, timestamps or
 * the lower-case JSON around answers: where one shows, the key leaked (or it is inside a random
 * identifier of the fakes: see `identifierSpans`). Drawn from the seed, so a run replays exactly.
 */
function testKeys(rnd: () => number): { openai: string; anthropic: string } {
  const pick = (s: string) => s[Math.floor(rnd() * s.length)]!;
  const body = (n: number) => {
    let out = '';
    for (let i = 0; i < n; i++) out += i % 3 === 0 ? pick(NOT_HEX) : pick(B64URL);
    return out;
  };
  return { openai: `sk-proj-${body(48)}`, anthropic: `sk-ant-api03-${body(94)}AA` };
}

/** The secret part of a key: what follows its public prefix (as `secretPart` in output-filter.ts). */
function secretPartOf(key: string): string {
  const prefix = /^(sk-ant-api03-|sk-proj-)/.exec(key)?.[1];
  assert.ok(prefix, 'a key of the fakes');
  return key.slice(prefix.length);
}

// ---------------------------------------------------------------------------
// the calls
// ---------------------------------------------------------------------------

type Api = 'chat' | 'responses' | 'messages';
type Kind = `${Api} ${'plain' | 'stream'}`;
const KINDS: Kind[] = [
  'chat plain',
  'chat stream',
  'responses plain',
  'responses stream',
  'messages plain',
  'messages stream',
];

/** The fields each API's fake echoes in (plain answers: the text only; see EchoField). */
const FIELDS: Record<Kind, EchoField[]> = {
  'chat plain': ['text'],
  'chat stream': [
    'text',
    'refusal',
    'logprobs',
    'reasoning',
    'reasoning_content',
    'tool_calls',
    'function_call',
    'audio_transcript',
  ],
  'responses plain': ['text'],
  'responses stream': [
    'text',
    'refusal',
    'logprobs',
    'function_call_arguments',
    'reasoning_summary',
    'reasoning_text',
  ],
  'messages plain': ['text'],
  'messages stream': ['text', 'thinking', 'input_json'],
};
const SPLITS = ['every', 'chars', 'whole'] as const;
const FORMS = ['key', 'masked'] as const;
const ECHO_KEYS: EchoKeyMode[] = ['whole', 'split', 'base64'];
/** Statuses the careless provider answers with, its message quoting the key. */
const FAIL_STATUSES: Record<Api, number[]> = {
  chat: [400, 401, 429, 500, 503],
  responses: [400, 401, 429, 500, 503],
  messages: [400, 401, 429, 500, 529],
};
const REPLIES = [
  'Sure.',
  'Here is the config you asked for, line by line, with nothing left out.',
  'Use `curl -H "Authorization: Bearer $KEY"` and keep the key out of your shell history.',
  'ünïcödé — “quotes” and emoji 🔑 too',
];

interface Plan {
  i: number;
  kind: Kind;
  model: string;
  n: 1 | 2;
  /** Chat streams: tool calls per choice. */
  tools: 0 | 2 | 3;
  /** Streams: the SDK's stream helper (`.stream()`, events then the final object) or `create({stream: true})`. */
  sdk: 'helper' | 'raw';
  honorN: boolean;
  echo: KeyEcho | undefined;
  echoKey: EchoKeyMode;
  fail: number | undefined;
  streamFailure: { afterEvents: number; mode: 'error' | 'reset' } | undefined;
  usage: { input: number; output: number } | undefined;
  reply: string | undefined;
}

function describe(p: Plan, seed: number): string {
  const parts = [`call #${p.i} (seed ${seed}): ${p.kind}`, p.model];
  if (p.kind.startsWith('chat')) parts.push(`n=${p.n}${p.honorN ? ' honored' : ''}`);
  if (p.tools) parts.push(`${p.tools} tool calls`);
  if (p.kind.endsWith('stream')) parts.push(`sdk ${p.sdk}`);
  if (p.echo) parts.push(`keyEcho ${p.echo.field}/${p.echo.split}/${p.echo.form}`);
  if (p.echoKey !== 'none') parts.push(`echoKey ${p.echoKey}`);
  if (p.fail) parts.push(`fail ${p.fail}`);
  if (p.streamFailure)
    parts.push(`streamFailure ${p.streamFailure.mode} after ${p.streamFailure.afterEvents}`);
  if (p.usage) parts.push(`usage ${p.usage.input}/${p.usage.output}`);
  if (p.reply) parts.push(`reply ${JSON.stringify(p.reply.slice(0, 12))}…`);
  return parts.join(', ');
}

/** How the call must end: an answer, the injected status, or an error in the stream. */
function expected(p: Plan): string {
  if (p.fail) return `http ${p.fail}`;
  if (p.streamFailure) return 'stream error';
  return 'ok';
}

/** Whether the echo reaches the client (so the answer or error must show the marker). */
function echoed(p: Plan): boolean {
  if (p.fail) return true;
  if (p.streamFailure) return p.streamFailure.mode === 'error';
  return (p.echo !== undefined && FIELDS[p.kind].includes(p.echo.field)) || p.echoKey !== 'none';
}

/** The calls: every field × split × form, echoKey, failure and in-stream failure first, then random ones; shuffled. */
function planCalls(rnd: () => number, total: number): Plan[] {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
  const chance = (p: number) => rnd() < p;
  const base = (kind: Kind): Plan => {
    const api = kind.split(' ')[0] as Api;
    const stream = kind.endsWith('stream');
    const n = api === 'chat' && chance(0.5) ? 2 : 1;
    return {
      i: 0,
      kind,
      model:
        api === 'messages'
          ? pick(['claude-sonnet-5-5', 'claude-haiku-5-5'])
          : pick(['gpt-4o', 'gpt-4o-mini']),
      n,
      tools: kind === 'chat stream' ? pick([0, 0, 2, 3] as const) : 0,
      sdk: stream ? pick(['helper', 'raw'] as const) : 'raw',
      honorN: n === 2 || chance(0.5),
      echo: undefined,
      echoKey: 'none',
      fail: undefined,
      streamFailure: undefined,
      usage: chance(0.2)
        ? { input: 1 + Math.floor(rnd() * 500), output: 1 + Math.floor(rnd() * 500) }
        : undefined,
      reply: chance(0.15) ? pick(REPLIES) : undefined,
    };
  };
  const withEcho = (p: Plan, field: EchoField, split: KeyEcho['split'], form: KeyEcho['form']): Plan => {
    const out = { ...p, echo: { field, split, form } };
    if (field === 'function_call') out.tools = 0; // legacy function_call and tool calls do not mix
    return out;
  };
  const randomEcho = (p: Plan) => withEcho(p, pick(FIELDS[p.kind]), pick(SPLITS), pick(FORMS));
  const plans: Plan[] = [];
  for (const kind of KINDS) {
    const api = kind.split(' ')[0] as Api;
    const stream = kind.endsWith('stream');
    for (const field of FIELDS[kind])
      for (const split of SPLITS)
        for (const form of FORMS) plans.push(withEcho(base(kind), field, split, form));
    for (const echoKey of ECHO_KEYS) plans.push({ ...base(kind), echoKey });
    for (const fail of FAIL_STATUSES[api])
      for (const form of FORMS) plans.push({ ...withEcho(base(kind), 'text', pick(SPLITS), form), fail });
    if (stream) {
      for (const form of FORMS) {
        plans.push({
          ...withEcho(base(kind), pick(FIELDS[kind]), pick(SPLITS), form),
          streamFailure: { afterEvents: 1 + Math.floor(rnd() * 4), mode: 'error' },
        });
      }
      plans.push({ ...randomEcho(base(kind)), streamFailure: { afterEvents: 2, mode: 'reset' } });
    }
    plans.push(base(kind), base(kind));
  }
  while (plans.length < total) {
    const kind = pick(KINDS);
    const api = kind.split(' ')[0] as Api;
    let p = base(kind);
    const r = rnd();
    if (r < 0.65) p = randomEcho(p);
    else if (r < 0.78) p.echoKey = pick(ECHO_KEYS);
    else if (r < 0.88) p = { ...randomEcho(p), fail: pick(FAIL_STATUSES[api]) };
    else if (r < 0.96 && kind.endsWith('stream'))
      p = { ...randomEcho(p), streamFailure: { afterEvents: 1 + Math.floor(rnd() * 6), mode: 'error' } };
    if (p.echo && chance(0.2)) p.echoKey = pick(ECHO_KEYS);
    plans.push(p);
  }
  for (let i = plans.length - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1));
    [plans[i], plans[j]] = [plans[j]!, plans[i]!];
  }
  return plans.map((p, i) => ({ ...p, i }));
}

// ---------------------------------------------------------------------------
// what the clients received
// ---------------------------------------------------------------------------

/** A response a client received: status, headers, the whole body (streams included), once read. */
interface Received {
  status: number;
  headers: string;
  body: string;
  done: Promise<void>;
}

/** A `fetch` for the official clients that keeps every response's bytes (tee'd: the client reads one branch). */
function recordingFetch(into: Received[]): typeof fetch {
  return async (input, init) => {
    const res = await fetch(input, init);
    const entry: Received = {
      status: res.status,
      headers: JSON.stringify([...res.headers.entries()]),
      body: '',
      done: Promise.resolve(),
    };
    into.push(entry);
    if (!res.body) return res;
    const [a, b] = res.body.tee();
    entry.done = (async () => {
      const dec = new TextDecoder();
      for await (const chunk of b) entry.body += dec.decode(chunk, { stream: true });
      entry.body += dec.decode();
    })().catch(() => {});
    return new Response(a, { status: res.status, statusText: res.statusText, headers: res.headers });
  };
}

const messages = [{ role: 'user' as const, content: 'one two three' }];

interface Outcome {
  /** 'ok', 'http <status>', 'stream error', or 'threw <message>' (no status: not an API error). */
  outcome: string;
  /** Everything the SDK handed back (results, events, error messages and bodies), as JSON. */
  sdk: string;
}

function errorText(err: unknown): string {
  const e = err as { message?: unknown; error?: unknown };
  let own = '';
  try {
    own = JSON.stringify(err);
  } catch {}
  return `${String(e.message)}\n${JSON.stringify(e.error)}\n${own}`;
}

/** Makes the call as a client would; an error is an outcome (its text is what the SDK handed back). */
async function call(p: Plan, openai: OpenAI, anthropic: Anthropic, traceparent: string): Promise<Outcome> {
  const opts = { headers: { traceparent } };
  const got: unknown[] = [];
  const out = (outcome: string): Outcome => ({ outcome, sdk: JSON.stringify(got) });
  try {
    switch (p.kind) {
      case 'chat plain': {
        got.push(await openai.chat.completions.create({ model: p.model, messages, n: p.n }, opts));
        return out('ok');
      }
      case 'chat stream': {
        const body = {
          model: p.model,
          messages,
          n: p.n,
          ...(p.echo?.field === 'logprobs' ? { logprobs: true } : {}),
        };
        if (p.sdk === 'helper') {
          const s = openai.chat.completions.stream(body, opts);
          for await (const chunk of s) got.push(chunk);
          got.push(await s.finalChatCompletion());
        } else {
          for await (const chunk of await openai.chat.completions.create({ ...body, stream: true }, opts))
            got.push(chunk);
        }
        return out('ok');
      }
      case 'responses plain': {
        got.push(await openai.responses.create({ model: p.model, input: 'one two three' }, opts));
        return out('ok');
      }
      case 'responses stream': {
        const events: { type: string }[] = [];
        if (p.sdk === 'helper') {
          const s = openai.responses.stream({ model: p.model, input: 'one two three' }, opts);
          for await (const e of s) events.push(e);
          got.push(...events, await s.finalResponse());
        } else {
          for await (const e of await openai.responses.create(
            { model: p.model, input: 'one two three', stream: true },
            opts,
          ))
            events.push(e);
          got.push(...events);
        }
        // a Responses stream carries a failure as an event the client yields
        if (events.some((e) => e.type === 'error' || e.type === 'response.failed'))
          return out('stream error');
        return out(events.some((e) => e.type === 'response.completed') ? 'ok' : 'stream error');
      }
      case 'messages plain': {
        got.push(await anthropic.messages.create({ model: p.model, max_tokens: 4096, messages }, opts));
        return out('ok');
      }
      case 'messages stream': {
        const body = { model: p.model, max_tokens: 4096, messages };
        if (p.sdk === 'helper') {
          const s = anthropic.messages.stream(body, opts);
          for await (const e of s) got.push(e);
          got.push(await s.finalMessage());
        } else {
          for await (const e of await anthropic.messages.create({ ...body, stream: true }, opts)) got.push(e);
        }
        return out('ok');
      }
    }
  } catch (err) {
    got.push(errorText(err));
    const status = (err as { status?: unknown }).status;
    if (typeof status === 'number') return out(`http ${status}`);
    // an in-stream error: thrown as an APIError with no status, or (the Responses stream helper) as the
    // error event's payload itself
    if (p.kind.endsWith('stream') && !(err instanceof TypeError)) return out('stream error');
    return out(`threw ${err instanceof Error ? `${err.name}: ${err.message}` : String(err)}`);
  }
}

// ---------------------------------------------------------------------------
// finding key fragments
// ---------------------------------------------------------------------------

/**
 * Where random identifiers sit in a line (ids, accessors, signatures, request-id headers, the
 * provenance chain) and the marker: a run of a key found only inside one of them is a coincidence,
 * not an echo (the keys' whole forms are checked everywhere, identifiers included).
 */
function identifierSpans(line: string): [number, number][] {
  const out: [number, number][] = [];
  const patterns = [
    /"(?:id|[a-z_.]*[._]id|[a-z]+Id|[a-zA-Z]*ID|accessor|signature|system_fingerprint|[a-z_]*hash|hmac)"\s*:\s*"([^"]*)"/dg,
    /\["[a-z-]*(?:request-id|-id)","([^"]*)"\]/dg,
    /x-strongroom-provenance"?[,:]?\s*"?([A-Za-z0-9_.~+/=-]+)/dg,
    /(\[REDACTED\])/dg,
  ];
  for (const re of patterns)
    for (const m of line.matchAll(re)) {
      const at = m.indices?.[1];
      if (at) out.push(at);
    }
  return out;
}

interface Fragment {
  key: string;
  /** Offset in the text. */
  at: number;
  message: string;
}

class Scanner {
  readonly grams = new Map<string, { name: string; i: number }>();
  readonly forms: { name: string; form: string }[] = [];
  /** Runs of a key found only inside random identifiers (ignored), with a sample of where. */
  ignored = 0;
  readonly ignoredSamples: string[] = [];

  constructor(keys: Record<string, string>, oldKeys: string[]) {
    for (const [name, key] of Object.entries(keys)) {
      const secret = secretPartOf(key);
      for (let i = 0; i + 4 <= secret.length; i++) this.grams.set(secret.slice(i, i + 4), { name, i });
      this.forms.push(
        ...keyForms(key).map((form) => ({
          name: `the ${name} key (${form === key ? 'whole' : 'encoded'})`,
          form,
        })),
      );
    }
    for (const key of oldKeys)
      this.forms.push(...keyForms(key).map((form) => ({ name: 'a key the vault held first', form })));
  }

  /** Every key fragment in `text` (at most `limit`), each with its context. */
  scan(text: string, limit = 3): Fragment[] {
    const found: Fragment[] = [];
    const context = (at: number) => `…${text.slice(Math.max(0, at - 40), at + 44).replaceAll('\n', '⏎')}…`;
    for (const { name, form } of this.forms) {
      const at = text.indexOf(form);
      if (at >= 0) found.push({ key: name, at, message: `${name} in full: ${context(at)}` });
    }
    let lineStart = 0;
    while (lineStart <= text.length && found.length < limit) {
      let lineEnd = text.indexOf('\n', lineStart);
      if (lineEnd < 0) lineEnd = text.length;
      const line = text.slice(lineStart, lineEnd);
      let ids: [number, number][] | undefined;
      for (let at = 0; at + 4 <= line.length; at++) {
        const hit = this.grams.get(line.slice(at, at + 4));
        if (!hit) continue;
        ids ??= identifierSpans(line);
        if (ids.some(([a, b]) => at >= a && at + 4 <= b)) {
          this.ignored++;
          if (this.ignoredSamples.length < 3) this.ignoredSamples.push(context(lineStart + at));
          continue;
        }
        found.push({
          key: hit.name,
          at: lineStart + at,
          message: `characters ${hit.i}–${hit.i + 3} of the ${hit.name} key's secret part: ${context(lineStart + at)}`,
        });
        if (found.length >= limit) break;
        at += 3;
      }
      lineStart = lineEnd + 1;
    }
    return found;
  }
}

/** The forms of a key that must never show: as is, base64 (standard, url-safe), hex. */
function keyForms(key: string): string[] {
  const b = Buffer.from(key);
  return [
    key,
    b.toString('base64').replace(/=+$/, ''),
    b.toString('base64url'),
    b.toString('hex'),
    b.toString('hex').toUpperCase(),
  ];
}

/** The line of `text` around offset `at`. */
function lineAt(text: string, at: number): string {
  const end = text.indexOf('\n', at);
  return text.slice(text.lastIndexOf('\n', at) + 1, end < 0 ? text.length : end);
}

/** The index of the last entry of `starts` not after `at` (which call a place belongs to). */
function owner(starts: readonly number[], at: number): number {
  let lo = 0;
  for (let k = 0; k < starts.length; k++) if (starts[k]! <= at) lo = k;
  return lo;
}

function spanText(s: ReadableSpan): string {
  return JSON.stringify({
    name: s.name,
    attributes: s.attributes,
    events: s.events.map((e) => ({ name: e.name, attributes: e.attributes })),
    status: s.status,
    links: s.links.map((l) => l.attributes),
    resource: s.resource.attributes,
  });
}

// ---------------------------------------------------------------------------
// the run
// ---------------------------------------------------------------------------

test(`${CALLS} mixed calls (plain, streamed, tool calls, n = 2, both providers) with a provider echoing the key in every field, split, form and encoding leave no 4 characters of a key's secret part at the clients, in the log, the audit file, the metrics or the spans`, async (t) => {
  const seed = process.env.HOSTILE_SEED ? Number(process.env.HOSTILE_SEED) : randomInt(2 ** 31);
  assert.ok(Number.isSafeInteger(seed), 'HOSTILE_SEED: an integer');
  console.log(`gateway-hostile: seed ${seed} (HOSTILE_SEED=${seed} replays this run)`);
  t.diagnostic(`seed ${seed}`);
  const rnd = prng(seed);
  const started = performance.now();

  const s: GatewaySetup = await startGatewaySetup(t);
  const oldKeys = s.secrets();
  const keys = testKeys(rnd);
  for (const [fake, key, name] of [
    [s.openaiFake, keys.openai, 'OPENAI_API_KEY'],
    [s.anthropicFake, keys.anthropic, 'ANTHROPIC_API_KEY'],
  ] as const) {
    fake.setKey(key);
    const r = await s.vault('PUT', `/v1/secrets/llm/dev/${name}`, { value: key });
    assert.ok(r.status < 300, `storing ${name}: ${r.status}`);
  }
  assert.deepEqual(s.secrets(), [keys.openai, keys.anthropic], 'every key the vault holds for the gateway');
  const scanner = new Scanner({ OpenAI: keys.openai, Anthropic: keys.anthropic }, oldKeys);

  // the scanner finds a planted run, but inside an identifier; and the whole key, wherever it is
  const planted = secretPartOf(keys.anthropic).slice(40, 44);
  assert.equal(scanner.scan(`{"text":"a${planted}b"}`).length, 1, 'a planted run is found');
  assert.equal(scanner.scan(`{"id":"a${planted}b"}`).length, 0, 'a run inside an identifier is not');
  assert.ok(scanner.scan(`{"id":"${keys.openai}"}`).length > 0, 'a whole key is found anywhere');
  scanner.ignored = 0;
  scanner.ignoredSamples.length = 0;

  const token = await s.appToken();
  const received: Received[] = [];
  const openai = s.openai(token, undefined, { fetch: recordingFetch(received) });
  const anthropic = new Anthropic({
    baseURL: s.gw,
    apiKey: token,
    maxRetries: 0,
    fetch: recordingFetch(received),
  });

  const plans = planCalls(rnd, CALLS);
  const traceIds = plans.map(
    (p) => `5eed${(seed >>> 0).toString(16).padStart(8, '0')}${p.i.toString(16).padStart(20, '0')}`,
  );
  const problems: string[] = [];
  const report = (p: Plan | undefined, where: string, f: Fragment) =>
    problems.push(`${p ? describe(p, seed) : `(seed ${seed})`}\n    ${where} holds ${f.message}`);
  const mismatches: string[] = [];
  const tally = new Map<string, number>();
  const count = (k: string) => tally.set(k, (tally.get(k) ?? 0) + 1);
  const logStarts: number[] = [];
  const auditStarts: number[] = [];
  const fileSize = () => {
    try {
      return statSync(s.auditFile).size;
    } catch {
      return 0;
    }
  };

  for (const p of plans) {
    for (const f of [s.openaiFake, s.anthropicFake]) f.reset();
    const fake: UpstreamFake = p.kind.startsWith('messages') ? s.anthropicFake : s.openaiFake;
    fake.keyEcho = p.echo;
    fake.echoKey = p.echoKey;
    fake.honorN = p.honorN;
    fake.toolCalls = p.tools;
    fake.usage = p.usage;
    fake.reply = p.reply;
    if (p.fail) fake.fail = { status: p.fail, times: 1 };
    fake.streamFailure = p.streamFailure;
    logStarts.push(s.logs().length);
    auditStarts.push(fileSize());
    const from = received.length;

    // each call in its own trace: the W3C header for the openai client, the active context for the
    // Anthropic one (it records its own client span, under the active one, and injects that)
    const parent = { traceId: traceIds[p.i]!, spanId: '00f067aa0ba902b7', traceFlags: TraceFlags.SAMPLED };
    const { outcome, sdk } = await context.with(trace.setSpanContext(context.active(), parent), () =>
      call(p, openai, anthropic, `00-${parent.traceId}-${parent.spanId}-01`),
    );
    await Promise.all(received.slice(from).map((r) => r.done));
    const where = describe(p, seed);

    count(`${p.kind} ${outcome}`);
    if (outcome !== expected(p))
      mismatches.push(`${where}\n    ended "${outcome}", expected "${expected(p)}"`);
    if (echoed(p) && !sdk.includes('[REDACTED]'))
      mismatches.push(
        `${where}\n    the echo did not reach the client redacted (no [REDACTED] in what the SDK returned)`,
      );
    for (const f of scanner.scan(sdk)) report(p, 'what the SDK returned', f);
    if (received.length === from) mismatches.push(`${where}\n    no response was recorded`);
    for (const [k, r] of received.slice(from).entries()) {
      for (const f of scanner.scan(`${r.headers}\n${r.body}`))
        report(p, `the raw response ${k + 1} (status ${r.status}) the client received`, f);
      r.body = ''; // checked: free it
    }
  }

  // the records of the last calls may land after their answer
  await new Promise((r) => setTimeout(r, 300));
  const logs = s.logs();
  for (const f of scanner.scan(logs, 20)) {
    const line = lineAt(logs, f.at);
    const byTrace = traceIds.findIndex((id) => line.includes(id));
    report(plans[byTrace >= 0 ? byTrace : owner(logStarts, f.at)], 'the server log', f);
  }
  const auditText = readFileSync(s.auditFile, 'utf8');
  const auditBytes = Buffer.from(auditText);
  for (const f of scanner.scan(auditText, 20)) {
    const line = lineAt(auditText, f.at);
    const byTrace = traceIds.findIndex((id) => line.includes(id));
    const byteAt = Buffer.byteLength(auditText.slice(0, f.at));
    report(plans[byTrace >= 0 ? byTrace : owner(auditStarts, byteAt)], 'the audit file', f);
  }
  assert.ok(auditBytes.length > 0);
  const metrics = await s.vault<string>('GET', '/v1/sys/metrics');
  assert.equal(metrics.status, 200);
  assert.equal(typeof metrics.json, 'string');
  for (const f of scanner.scan(metrics.json, 20)) report(undefined, 'the metrics', f);
  const finished = spans.getFinishedSpans();
  const spanCalls = new Set<number>();
  for (const sp of finished) {
    const byTrace = traceIds.indexOf(sp.spanContext().traceId);
    if (byTrace >= 0 && sp.name.startsWith('gateway ')) spanCalls.add(byTrace);
    for (const f of scanner.scan(spanText(sp)))
      report(byTrace >= 0 ? plans[byTrace] : undefined, `the span "${sp.name}"`, f);
  }

  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  const mix = [...tally].sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) => `${k}: ${v}`);
  const echoes = plans.filter((p) => p.echo).length;
  console.log(
    [
      `gateway-hostile: ${plans.length} calls in ${seconds} s (seed ${seed}); ${echoes} with keyEcho, ` +
        `${plans.filter((p) => p.echoKey !== 'none').length} with echoKey, ${plans.filter((p) => p.fail).length} upstream failures, ` +
        `${plans.filter((p) => p.streamFailure).length} in-stream failures, ${plans.filter((p) => p.n === 2).length} with n = 2 ` +
        `(${plans.filter((p) => p.n === 2 && p.kind === 'chat stream').length} streamed), ` +
        `${plans.filter((p) => p.tools > 0).length} with tool calls; ${finished.length} spans, ${logs.length} log chars, ` +
        `${auditBytes.length} audit bytes, ${metrics.json.length} metrics chars; ${scanner.ignored} runs only inside ` +
        `random identifiers (ignored)${scanner.ignoredSamples.length ? `, e.g. ${scanner.ignoredSamples.join(' ')}` : ''}`,
      ...mix.map((l) => `  ${l}`),
    ].join('\n'),
  );

  assert.ok(
    problems.length === 0,
    `key fragments found (seed ${seed}, ${problems.length} places):\n${problems.slice(0, 40).join('\n')}`,
  );
  assert.ok(
    mismatches.length === 0,
    `calls that did not end as the fake meant (seed ${seed}, ${mismatches.length}):\n${mismatches.slice(0, 40).join('\n')}`,
  );
  // the gateway's spans were recorded, one in each call's trace, so checking them checked something
  assert.equal(
    spanCalls.size,
    plans.length,
    `gateway spans in the traces of ${spanCalls.size} of ${plans.length} calls`,
  );
});
