import assert from 'node:assert/strict';
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
