import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { prng } from '../../../test/fixtures/scan/corpus.ts';
import type { CallInfo } from '../types.ts';
import {
  base64Fragments,
  createOutputFilter,
  secretForms,
  secretPart,
  secretRedactor,
} from './output-filter.ts';

const CALL = { request_id: 'r', trace_id: 't' } as CallInfo;
const KEY = 'sk-proj-Q7vZ3mK9pL2xR8tW4nB6yH1cF5jD0gS-aE_uI3oP7kM2qN9rT4vX8zC6bV1nL5hG0fJ3dK7sA9wE2';
const ANTHROPIC = `sk-ant-api03-${'Ab9_x-Zq7'.repeat(10)}xAA`;

function run(
  text: string,
  chunks: readonly number[],
  opts: Parameters<typeof createOutputFilter>[0] = {},
  secrets = [KEY],
) {
  const f = createOutputFilter(opts).open(CALL, secrets);
  let out = '';
  let at = 0;
  for (const n of chunks) {
    out += f.push(text.slice(at, at + n));
    at += n;
  }
  out += f.push(text.slice(at));
  return out + f.end();
}
const whole = (text: string, opts?: Parameters<typeof createOutputFilter>[0], secrets = [KEY]) =>
  run(text, [], opts, secrets);

describe('output filter: what it redacts', () => {
  const b64 = Buffer.from(KEY).toString('base64');
  const cases: [string, string, string][] = [
    ['the key itself', `here it is: ${KEY}.`, 'here it is: [REDACTED].'],
    ['its hex', `hex ${Buffer.from(KEY).toString('hex')} end`, 'hex [REDACTED] end'],
    ['its upper-case hex', `hex ${Buffer.from(KEY).toString('hex').toUpperCase()} end`, 'hex [REDACTED] end'],
    ['an Anthropic key (known format)', `x ${ANTHROPIC} y`, 'x [REDACTED] y'],
    ['an AWS key id (known format)', 'id AKIAQRSTUVWXYZ234567 ok', 'id [REDACTED] ok'],
    [
      'a generic assignment keeps its name',
      'api_key = "Zq8vN2rTp4LkW9sXbY3mHc7dQ1"',
      'api_key = "[REDACTED]"',
    ],
  ];
  for (const [name, input, want] of cases) test(`redacts ${name}`, () => assert.equal(whole(input), want));

  test('redacts its base64 at every alignment, standard and url-safe', () => {
    for (const pre of ['', 'a', 'ab']) {
      for (const enc of ['base64', 'base64url'] as const) {
        const blob = Buffer.from(`${pre}${KEY}tail`).toString(enc);
        const out = whole(`data: ${blob}\n`);
        assert.ok(!out.includes(base64Fragments(Buffer.from(KEY))[0]!.slice(4, 40)), out);
        assert.match(out, /\[REDACTED\]/);
      }
    }
    assert.equal(whole(`b ${b64}`).includes(b64.slice(0, 40)), false);
  });

  test('redacts configured PII kinds only', () => {
    const text =
      'mail jane@example.com card 4111 1111 1111 1111 ssn 123-45-6789 iban DE89 3704 0044 0532 0130 00';
    assert.equal(whole(text), text);
    assert.equal(
      whole(text, { pii: ['email', 'credit_card', 'us_ssn', 'iban'] }),
      'mail [REDACTED] card [REDACTED] ssn [REDACTED] iban [REDACTED]',
    );
  });

  const negatives = [
    'sk-proj-short',
    'the hash 3f1c2a9e8b7d4c6e9f0a1b2c3d4e5f60 stays',
    'version 1.2.3, order 4111 1111 1111 1112',
    'AKIAIOSFODNN7EXAMPLE is the documented example',
    'a sentence about tokens and keys with no values',
  ];
  for (const n of negatives)
    test(`leaves look-alikes alone: ${n}`, () => assert.equal(whole(n, { pii: ['credit_card'] }), n));

  test('a configured marker replaces the default', () => assert.equal(whole(KEY, { marker: '***' }), '***'));
  test('short secrets are refused (they would redact ordinary words)', () => {
    assert.throws(() => createOutputFilter().open(CALL, ['abc']), TypeError);
  });
  test('secretForms covers raw, base64 (x3, x2 alphabets) and hex', () => {
    const forms = secretForms(KEY);
    assert.ok(forms.includes(KEY));
    assert.ok(forms.includes(Buffer.from(KEY).toString('hex')));
    assert.ok(forms.length >= 6);
  });
});

describe('output filter: streaming', () => {
  test('a key split across two chunks is redacted', () => {
    const text = `before ${KEY} after`;
    for (let i = 1; i < text.length; i++) assert.equal(run(text, [i]), 'before [REDACTED] after');
  });

  test('a key split across SSE events one character at a time is redacted', () => {
    const text = `data: {"delta":"${KEY}"}\n\n`;
    assert.equal(run(text, Array(text.length).fill(1)), 'data: {"delta":"[REDACTED]"}\n\n');
  });

  test('ordinary prose is not held back beyond the last word', () => {
    const f = createOutputFilter({ pii: ['email', 'phone'] }).open(CALL, [KEY]);
    const out = f.push('Hello there, this is a normal sentence. And more');
    assert.equal(out, 'Hello there, this is a normal sentence. And ');
    assert.equal(f.end(), 'more');
  });

  test('property: any chunking gives the same output as one push, and no secret survives', () => {
    const rand = prng(7);
    const pieces = [
      KEY,
      ANTHROPIC,
      Buffer.from(`x${KEY}`).toString('base64'),
      Buffer.from(`xy${KEY}`).toString('base64url'),
      Buffer.from(KEY).toString('hex'),
      'token: "Zq8vN2rTp4LkW9sXbY3mHc7dQ1"',
      'jane.doe@example.org',
      '+44 20 7946 0958',
      '4111-1111-1111-1111',
      ' plain words and punctuation, ',
      'data: {"choices":[{"delta":{"content":"',
      '"}}]}\n\n',
      'é ü 中文 🙂',
      'sk-',
      'keys',
    ];
    const opts = { pii: ['email', 'phone', 'credit_card'] as const };
    for (let round = 0; round < 300; round++) {
      let text = '';
      const n = 1 + Math.floor(rand() * 12);
      for (let i = 0; i < n; i++) text += pieces[Math.floor(rand() * pieces.length)];
      const secrets = [KEY, ANTHROPIC];
      const once = whole(text, { pii: [...opts.pii] }, secrets);
      const chunks: number[] = [];
      for (let left = text.length; left > 0; ) {
        const c = 1 + Math.floor(rand() * (rand() < 0.5 ? 4 : 64));
        chunks.push(c);
        left -= c;
      }
      const streamed = run(text, chunks, { pii: [...opts.pii] }, secrets);
      assert.equal(streamed, once, `round ${round}: ${JSON.stringify(text)} in ${chunks}`);
      for (const secret of [KEY, ANTHROPIC, Buffer.from(KEY).toString('hex')]) {
        assert.ok(
          !streamed.includes(secret),
          `round ${round}: a secret survived: ${JSON.stringify(text)} -> ${JSON.stringify(streamed)}`,
        );
      }
      for (const frag of base64Fragments(Buffer.from(KEY))) assert.ok(!streamed.includes(frag));
    }
  });
});

describe('output filter: one filter reused for many texts (as the gateway does per string of an answer)', () => {
  test('the same secret in two equal texts in a row is redacted both times', () => {
    // a value of no known format: only the literal match of the injected secret catches it
    const plain = 'zq7-house-value-Lm4t9Wv2Rk8s';
    const f = createOutputFilter({}).open(CALL, [KEY, plain]);
    for (const text of [plain, plain, `a ${plain} b`, `a ${plain} b`, KEY, KEY]) {
      const out = f.push(text) + f.end();
      assert.ok(!out.includes(plain) && !out.includes(KEY), `leaked in ${JSON.stringify(out.slice(0, 40))}`);
      assert.match(out, /\[REDACTED\]/);
    }
  });
});

describe('secret redactor: partial and masked key forms (runs of the secret part)', () => {
  const S = KEY.slice('sk-proj-'.length);
  const head = S.slice(0, 4);
  const tail = S.slice(-4);
  const redact = (text: string, secrets = [KEY]) => {
    const f = secretRedactor(secrets);
    return f.push(text) + f.end();
  };

  test('the secret part is what follows the public prefix', () => {
    assert.equal(secretPart(KEY), S);
    assert.equal(secretPart(ANTHROPIC), ANTHROPIC.slice('sk-ant-api03-'.length));
    assert.equal(secretPart('gsk_abcdefghijklmnopqrstuvwxyz012345'), 'abcdefghijklmnopqrstuvwxyz012345');
    assert.equal(
      secretPart('AIzaSyA1b2C3d4E5f6G7h8I9j0KlMnOpQrStUvW'),
      'SyA1b2C3d4E5f6G7h8I9j0KlMnOpQrStUvW',
    );
    // an unknown vendor: leading lowercase words and version tags
    assert.equal(secretPart('acme-live-v2-Zq8vN2rTp4LkW9sXbY3mHc7d'), 'Zq8vN2rTp4LkW9sXbY3mHc7d');
    assert.equal(secretPart('Zq8vN2rTp4LkW9sXbY3mHc7d'), 'Zq8vN2rTp4LkW9sXbY3mHc7d');
  });

  const masked: [string, string, string][] = [
    [
      'OpenAI’s masked form',
      `Incorrect API key provided: sk-proj-${head}****…${tail}.`,
      'Incorrect API key provided: sk-proj-[REDACTED]****…[REDACTED].',
    ],
    ['dots', `key sk-proj-${head}...${tail} refused`, 'key sk-proj-[REDACTED]...[REDACTED] refused'],
    ['the last four alone', `(…${tail})`, '(…[REDACTED])'],
    ['“ends in”', `the key ends in ${tail}`, 'the key ends in [REDACTED]'],
    ['a mask of x', `sk-proj-${head}xxxxxxxx${tail}`, 'sk-proj-[REDACTED]xxxxxxxx[REDACTED]'],
    ['a mask of X', `${head}XXXXXXXX${tail}`, '[REDACTED]XXXXXXXX[REDACTED]'],
    ['six characters inside a word', `zz${S.slice(10, 16)}zz`, 'zz[REDACTED]zz'],
    ['a long run', `part ${S.slice(3, 40)} part`, 'part [REDACTED] part'],
    ['the whole key (the literal wins)', `k=${KEY};`, 'k=[REDACTED];'],
  ];
  for (const [name, text, want] of masked) test(`redacts ${name}`, () => assert.equal(redact(text), want));

  test('keeps 4 or 5 characters of the key inside a longer word, and 3 anywhere', () => {
    for (const text of [`a${head}b and c${S.slice(5, 10)}d`, `${tail.slice(1)} and ${head.slice(0, 3)}`]) {
      assert.equal(redact(text), text);
    }
  });

  test('a secret shorter than 8 characters is redacted as written only', () => {
    assert.equal(redact('x abcdefg and abcd y', ['abcdefg']), 'x [REDACTED] and abcd y');
  });

  test('property: any chunking gives the same output as one push, and no run of 4 of the secret part survives in the masked forms', () => {
    const rand = prng(11);
    const pieces = [
      `sk-proj-${head}****…${tail}`,
      `${head}...${tail}`,
      `…${tail}`,
      `ends in ${tail}.`,
      `sk-proj-${head}xxxxxxxx${tail}`,
      `${head}XXXXXXXX${tail}`,
      S.slice(7, 19),
      KEY,
      ANTHROPIC.slice(20, 40),
      ' plain words, ',
      'x',
      'xxx',
      `a${head}b`,
      '"}\n\ndata: {"delta":"',
      'é 🙂 ',
    ];
    const streamed = (text: string) => {
      const f = secretRedactor([KEY, ANTHROPIC]);
      let out = '';
      for (let at = 0; at < text.length; ) {
        const c = 1 + Math.floor(rand() * (rand() < 0.5 ? 3 : 40));
        out += f.push(text.slice(at, at + c));
        at += c;
      }
      return out + f.end();
    };
    for (let round = 0; round < 400; round++) {
      const chosen = Array.from(
        { length: 1 + Math.floor(rand() * 10) },
        () => pieces[Math.floor(rand() * pieces.length)]!,
      );
      // glued, pieces make longer words (and masks): only the equality is checked
      const glued = chosen.join('');
      assert.equal(
        streamed(glued),
        redact(glued, [KEY, ANTHROPIC]),
        `round ${round}: ${JSON.stringify(glued)}`,
      );
      // apart, every planted form but `a${head}b` (a run inside a longer word) is gone
      const apart = chosen.join(' ');
      const out = streamed(apart);
      assert.equal(out, redact(apart, [KEY, ANTHROPIC]), `round ${round}: ${JSON.stringify(apart)}`);
      const check = out.split(`a${head}b`).join('');
      for (let i = 0; i + 4 <= S.length; i++) {
        assert.ok(
          !check.includes(S.slice(i, i + 4)),
          `round ${round}: ${S.slice(i, i + 4)} in ${JSON.stringify(out)}`,
        );
      }
    }
  });
});

describe('secret redactor: runs inside words — masks of any character, keys spelled out (issue 12, red team L5 and L6)', () => {
  const S = secretPart(KEY);
  const A = secretPart(ANTHROPIC);
  const head = S.slice(0, 4);
  const tail = S.slice(-4);
  const redact = (text: string, secrets = [KEY]) => {
    const f = secretRedactor(secrets);
    return f.push(text) + f.end();
  };
  /** The 4-character runs of `part` that `text` holds. */
  const fragments = (text: string, part = S) => {
    const out: string[] = [];
    for (let i = 0; i + 4 <= part.length; i++)
      if (text.includes(part.slice(i, i + 4))) out.push(part.slice(i, i + 4));
    return out;
  };
  /** leak4.mjs: the secret part in pieces of `n`, each wrapped in a letter that does not extend the run. */
  const spelled = (part: string, n: number, sep = ' ') => {
    const words: string[] = [];
    for (let i = 0; i < part.length; i += n) {
      const c = part.slice(i, i + n);
      const w = [...'qzjvZQJV'].find((x) => !part.includes(x + c) && !part.includes(c + x))!;
      words.push(w + c + w);
    }
    return words.join(sep);
  };

  const masks: [string, string][] = [
    ['a mask of zeros (L6, leak3.mjs #7)', '00000000'],
    ['a mask of two x (L6, leak3.mjs #16)', 'xx'],
    ['a mask of y (L6, leak3.mjs #17)', 'yyyy'],
    ['a mask of one letter', 'q'],
    ['a mask of letters and digits', 'aB3dE5gH7'],
    ['a 60-character mask', 'e'.repeat(60)],
  ];
  for (const [name, mask] of masks) {
    test(`redacts the 4 + 4 real characters around ${name}`, () => {
      assert.equal(redact(`${head}${mask}${tail}`), `[REDACTED]${mask}[REDACTED]`);
      assert.equal(
        redact(`Incorrect API key provided: sk-proj-${head}${mask}${tail}.`),
        `Incorrect API key provided: sk-proj-[REDACTED]${mask}[REDACTED].`,
      );
      assert.equal(
        redact(`{"error":{"message":"bad key sk-proj-${head}${mask}${tail}"}}`),
        `{"error":{"message":"bad key sk-proj-[REDACTED]${mask}[REDACTED]"}}`,
      );
    });
  }
  test('redacts 5 + 5 real characters around a mask, and 4 of the start with 4 of the middle', () => {
    assert.equal(redact(`${S.slice(0, 5)}00${S.slice(-5)}`), '[REDACTED]00[REDACTED]');
    assert.equal(redact(`k=${head}zzzz${S.slice(30, 34)};`), 'k=[REDACTED]zzzz[REDACTED];');
  });

  test('the red team’s L5 answer (leak4.mjs: the secret part in 5-character pieces, each inside a word) keeps none of the key', () => {
    const answer = `codes: ${spelled(S, 5)}`;
    const rebuilt = answer
      .slice('codes: '.length)
      .split(' ')
      .map((w) => w.slice(1, -1))
      .join('');
    assert.equal(rebuilt, S, 'the answer spells the whole key');
    const out = redact(answer);
    assert.deepEqual(fragments(out), []);
    assert.ok(out.startsWith('codes: '));
    // one marker per piece of 4 or more (the last piece is 2 characters: too short to count)
    assert.equal(out.match(/\[REDACTED\]/g)?.length, Math.floor(S.length / 5));
    // in 4-character pieces, glued with no space or with other separators, and for the other key
    for (const text of [spelled(S, 4), spelled(S, 4, ''), spelled(S, 5, ', '), spelled(S, 4, '\n')]) {
      assert.deepEqual(fragments(redact(text)), [], text);
    }
    assert.deepEqual(fragments(redact(spelled(A, 4), [ANTHROPIC]), A), []);
  });

  test('a key spelled out thinly (a piece every 300 characters) keeps at most its first two pieces', () => {
    const filler = ' plain words'.repeat(25);
    const pieces = spelled(S, 4).split(' ');
    const out = redact(pieces.join(filler));
    assert.deepEqual(fragments(out), [pieces[0]!.slice(1, 5), pieces[1]!.slice(1, 5)]);
    // closer together (within 256 characters), the first ones go too
    assert.deepEqual(fragments(redact(pieces.join(' plain words'.repeat(8)))), []);
  });

  test('every form of the red team’s leak3.mjs keeps none of the key', () => {
    const a = S.slice(0, 4);
    const z = S.slice(-4);
    const forms = [
      `sk-proj-${a}****${z}`,
      `${a}…${z}`,
      `ends in ${z}.`,
      `sk-proj-${a}xxxxxxxx${z}`,
      `${a}XXXXXXXX${z}`,
      `sk-proj-${a}••••••${z}`,
      `sk-proj-${a}________${z}`,
      `${a}00000000${z}`,
      `${a}########${z}`,
      `key "${S.slice(0, 5)}...${S.slice(-5)}"`,
      `sk-proj-${a}${'*'.repeat(40)}${z}`,
      `${a}\u200b${S.slice(4, 8)}\u200b${S.slice(8, 12)}`,
      `${a}-${S.slice(4, 8)}-${S.slice(8, 12)}-${S.slice(12, 16)}`,
      `Incorrect API key provided: sk-proj-${S.slice(0, 2)}*********************************${z}`,
      `${a}ııı${z}`,
      `${a}ˣˣˣˣ${z}`,
      `${a}xx${z}`,
      `${a}yyyy${z}`,
    ];
    for (const f of forms) assert.deepEqual(fragments(redact(`bad key ${f}`)), [], f);
  });

  test('one 4- or 5-character run inside a word stays, however often it repeats; so do two in different words', () => {
    // keys made to hold common English 4-grams: a run of them is a coincidence in ordinary text
    const tion = `sk-proj-Q7vZ3mK9tionR8tW4nB6yH1cF5jD0gS-aE_uI3oP7kM2`;
    const text = 'The nation’s information station: a mention of action, fiction and motion.';
    assert.equal(redact(text, [tion]), text);
    const two = `sk-proj-Q7vZ3mK9tionR8tW4nB6yH1ctherjD0gS-aE_uI3oP7kM2`;
    const prose = 'Other nations gather information; another mother mentioned the station.';
    assert.equal(redact(prose, [two]), prose);
    // a third different one in the text makes it a spelling (rule e): the price of the rule
    const three = `sk-proj-Q7vZ3mK9tionR8tW4ntherH1cF5jD0gment_uI3oP7kM2`;
    assert.equal(
      redact('Other nations gather information. The moment...', [three]),
      'O[REDACTED] na[REDACTED]s ga[REDACTED] informa[REDACTED]. The mo[REDACTED]...',
    );
  });

  test('a key spelled out over the texts of one call (strings, choices, streams: filters opened with the call’s array) keeps at most two pieces; another call starts afresh', () => {
    const pieces = spelled(S, 4).split(' ');
    const call = [KEY];
    // one filter reused per string, as the gateway cleans the strings of an answer
    const whole = secretRedactor(call);
    let out = pieces.map((p) => whole.push(`code ${p}`) + whole.end()).join('\n');
    assert.deepEqual(fragments(out), [pieces[0]!.slice(1, 5), pieces[1]!.slice(1, 5)]);
    // one filter per stream (choice, tool call), all of the same call
    const call2 = [KEY];
    out = pieces
      .map((p) => {
        const f = secretRedactor(call2);
        return f.push(`code ${p} `) + f.end();
      })
      .join('\n');
    assert.deepEqual(fragments(out), [pieces[0]!.slice(1, 5), pieces[1]!.slice(1, 5)]);
    // the calls do not share: each gets its first two pieces through
    for (const p of pieces.slice(0, 3)) {
      const f = secretRedactor([KEY]);
      assert.equal(f.push(`code ${p}`) + f.end(), `code ${p}`);
    }
  });

  test('pieces of two different keys do not add up', () => {
    const text = `a${S.slice(0, 4)}b c${S.slice(10, 14)}d e${A.slice(0, 4)}f`;
    assert.equal(redact(text, [KEY, ANTHROPIC]), text);
  });

  test('ordinary text (prose and code, pinned dependencies’ docs and types) passes unchanged for random keys of both formats', () => {
    const files = [
      'node_modules/fastify/docs/Reference/Server.md',
      'node_modules/fastify/docs/Reference/Hooks.md',
      'node_modules/fastify/docs/Reference/TypeScript.md',
      'node_modules/openai/resources/responses/responses.d.ts',
      'node_modules/openai/resources/chat/completions/completions.d.ts',
    ].map((f) => readFileSync(f, 'utf8'));
    const rand = prng(12);
    const b64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    const body = (n: number) => Array.from({ length: n }, () => b64[Math.floor(rand() * 64)]).join('');
    const keys = [KEY, ANTHROPIC];
    for (let i = 0; i < 20; i++) keys.push(`sk-proj-${body(48)}`, `sk-ant-api03-${body(94)}AA`);
    for (const key of keys) {
      for (const text of files) {
        const out = redact(text, [key]);
        if (out !== text) {
          let at = 0;
          while (out[at] === text[at]) at++;
          assert.fail(`${key}: ${JSON.stringify(out.slice(Math.max(0, at - 30), at + 40))}`);
        }
      }
    }
  });

  test('ordinary text is held back only to its last word; a run inside a word holds back the text from it until 256 more characters are in, then goes out unchanged', () => {
    let f = secretRedactor([KEY]);
    assert.equal(
      f.push('Hello there, this is a normal sentence. And more'),
      'Hello there, this is a normal sentence. And ',
    );
    assert.equal(f.end(), 'more');
    f = secretRedactor(['sk-proj-Q7vZ3mK9tionR8tW4nB6yH1cF5jD0gS-aE_uI3oP7kM2']);
    assert.equal(f.push('a mention of '), 'a men');
    const filler = ' and then some more words'.repeat(12);
    let out = 'a men';
    out += f.push(filler.slice(0, 200));
    assert.equal(out, 'a men', 'held while a second or third piece could still come');
    out += f.push(filler.slice(200));
    assert.ok(out.length > 'a mention of '.length, 'released once the window is past');
    out += f.end();
    assert.equal(out, `a mention of ${filler}`);
  });
});

/**
 * The rule of `secretRedactor` read directly from its statement (quadratic, no streaming), for the
 * property test: the filter, in any chunking, must give exactly this.
 */
function referenceRedact(
  text: string,
  secrets: readonly string[],
  seen: string[][] = [],
  marker = '[REDACTED]',
): string {
  const parts = [...new Set(secrets.filter((s) => s.length >= 8).map(secretPart))];
  // rule e's memory (up to 3 different texts per part), carried from the call's earlier texts
  for (let p = 0; p < parts.length; p++) seen[p] ??= [];
  const forms = [...new Set(secrets.flatMap((s) => (s.length < 8 ? [s] : secretForms(s))))];
  const n = text.length;
  const alnum = (i: number) => /[A-Za-z0-9]/.test(text[i] ?? '');
  const space = (ch: string) => ch.charCodeAt(0) <= 32 || ch === '\u0085' || /\s/.test(ch);
  const maskAt = (i: number) => /^(xxx|XXX)/.test(text.slice(i, i + 3));
  const alone = (i: number, len: number) => {
    if (i > 0 && alnum(i - 1) && !(i >= 3 && maskAt(i - 3))) return false;
    for (let m = len; m >= 4; m--) if (i + m === n || !alnum(i + m) || maskAt(i + m)) return true;
    return false;
  };
  // the longest run of a part at each position (the first part at a tie)
  const L: number[] = [];
  const P: number[] = [];
  for (let i = 0; i < n; i++) {
    L[i] = 0;
    P[i] = 0;
    parts.forEach((p, pi) => {
      for (let j = 0; j < p.length; j++) {
        let m = 0;
        while (i + m < n && j + m < p.length && text[i + m] === p[j + m]) m++;
        if (m > L[i]!) {
          L[i] = m;
          P[i] = pi;
        }
      }
    });
  }
  type C = { s: number; e: number; part: number; text: string };
  const cands: C[] = [];
  const red: [number, number][] = [];
  for (let i = 0; i < n; i++) {
    if (L[i]! < 4) continue;
    const c = { s: i, e: i + L[i]!, part: P[i]!, text: text.slice(i, i + L[i]!) };
    if (i > 0 && L[i - 1]! > L[i]!) {
      if (alone(i, L[i]!)) red.push([c.s, c.e]);
      continue;
    }
    cands.push(c);
  }
  for (const c of cands) {
    const same = cands.filter((a) => a !== c && a.part === c.part && a.text !== c.text);
    const memory = seen[c.part]!;
    const before = memory.filter((t) => t !== c.text).length;
    if (memory.length < 3 && !memory.includes(c.text)) memory.push(c.text);
    const pair = same.some((a) => {
      const [x, y] = a.s < c.s ? [a, c] : [c, a];
      if (x.e > y.s) return true;
      return y.s - x.e <= 64 && ![...text.slice(x.e, y.s)].some(space);
    });
    const cluster = same.some((a) =>
      same.some((b) => b.text !== a.text && Math.max(a.s, b.s, c.s) - Math.min(a.s, b.s, c.s) < 256),
    );
    if (c.e - c.s >= 6 || alone(c.s, c.e - c.s) || before >= 2 || pair || cluster) red.push([c.s, c.e]);
  }
  red.sort((a, b) => a[0] - b[0]);
  let out = '';
  let q = 0;
  for (;;) {
    let lit: [number, number] | undefined;
    for (const f of forms) {
      const i = text.indexOf(f, q);
      if (i >= 0 && (!lit || i < lit[0] || (i === lit[0] && i + f.length > lit[1]))) lit = [i, i + f.length];
    }
    let run: [number, number] | undefined;
    const k = red.findIndex((r) => r[1] > q);
    if (k >= 0) {
      let end = red[k]![1];
      for (let j = k + 1; j < red.length && red[j]![0] < end; j++) end = Math.max(end, red[j]![1]);
      run = [Math.max(red[k]![0], q), end];
    }
    const best = !run || (lit && (lit[0] < run[0] || (lit[0] === run[0] && lit[1] >= run[1]))) ? lit : run;
    if (!best) break;
    out += text.slice(q, best[0]) + marker;
    q = best[1];
  }
  return out + text.slice(q);
}

describe('secret redactor: the rule, whatever the chunking', () => {
  const S = secretPart(KEY);
  const A = secretPart(ANTHROPIC);
  test('property: random texts of key pieces, masks, spellings and filler give, in any chunking, exactly what the rule says', () => {
    const rand = prng(13);
    const pick = <T>(xs: readonly T[]) => xs[Math.floor(rand() * xs.length)]!;
    const piece = (part: string, n: number) => {
      const i = Math.floor(rand() * (part.length - n + 1));
      return part.slice(i, i + n);
    };
    const makers: (() => string)[] = [
      () => `${pick(['q', 'z', 'Zq', ''])}${piece(S, pick([4, 4, 5, 6, 9]))}${pick(['q', 'z', '', '-'])}`,
      () => `${piece(S, 4)}${pick(['00000000', 'xx', 'yyyy', 'xxx', 'XXXX', '****', '…', ''])}${piece(S, 4)}`,
      () => `${piece(A, pick([4, 5]))}${pick([' ', 'j', '_'])}`,
      () => ' plain words, and more of them '.repeat(1 + Math.floor(rand() * 12)),
      () => pick([' ', '\n', '"}\n\ndata: {"delta":"', 'é 🙂 ', '\u00a0', 'x', 'xxx', '-', '_', 'tion ']),
      () => (rand() < 0.2 ? KEY : `sk-proj-${S.slice(0, 4)}****${S.slice(-4)}`),
    ];
    for (let round = 0; round < 300; round++) {
      let text = '';
      const count = 1 + Math.floor(rand() * 24);
      for (let i = 0; i < count; i++) text += pick(makers)();
      const want = referenceRedact(text, [KEY, ANTHROPIC]);
      // each filter opened with an array of its own: no memory of another call
      const once = secretRedactor([KEY, ANTHROPIC]);
      assert.equal(once.push(text) + once.end(), want, `round ${round}, one push: ${JSON.stringify(text)}`);
      const call = [KEY, ANTHROPIC];
      const f = secretRedactor(call);
      let out = '';
      const small = rand() < 0.3;
      for (let at = 0; at < text.length; ) {
        const c = small ? 1 + Math.floor(rand() * 3) : 1 + Math.floor(rand() * 80);
        out += f.push(text.slice(at, at + c));
        at += c;
      }
      out += f.end();
      assert.equal(out, want, `round ${round}, streamed: ${JSON.stringify(text)}`);
      // reused (end() forgets the text) and opened again for the same call: rule e remembers the
      // pieces the call showed, as the reference does when given the same memory
      const seen: string[][] = [];
      referenceRedact(text, [KEY, ANTHROPIC], seen);
      const other = pick(makers)() + pick(makers)();
      const again = referenceRedact(other, [KEY, ANTHROPIC], seen);
      assert.equal(f.push(other) + f.end(), again, `round ${round}, reused: ${JSON.stringify(other)}`);
      const g = secretRedactor(call);
      assert.equal(
        g.push(text) + g.end(),
        referenceRedact(text, [KEY, ANTHROPIC], seen),
        `round ${round}, a second filter of the call`,
      );
    }
  });
});
