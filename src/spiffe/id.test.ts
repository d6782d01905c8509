import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { SpiffeError } from './errors.ts';
import { isMemberOf, isSpiffeId, parseSpiffeId, parseTrustDomain, trustDomainId } from './id.ts';

describe('parseSpiffeId', () => {
  const valid: [string, string, string][] = [
    ['spiffe://example.org', 'example.org', ''],
    ['spiffe://example.org/workload', 'example.org', '/workload'],
    ['spiffe://a-b_c.0/ns/Prod/sa/web-1.x_y', 'a-b_c.0', '/ns/Prod/sa/web-1.x_y'],
    ['spiffe://td/...', 'td', '/...'],
    ['spiffe://td/.a/a./..b', 'td', '/.a/a./..b'],
    [
      `spiffe://td/${'x'.repeat(2048 - 'spiffe://td/'.length)}`,
      'td',
      `/${'x'.repeat(2048 - 'spiffe://td/'.length)}`,
    ],
  ];
  for (const [s, td, path] of valid) {
    test(`accepts ${s.slice(0, 60)}`, () => {
      const id = parseSpiffeId(s);
      assert.equal(id.trustDomain, td);
      assert.equal(id.path, path);
      assert.equal(id.toString(), s);
      assert.equal(JSON.stringify({ id }), JSON.stringify({ id: s }));
    });
  }

  const invalid: [string, string, RegExp][] = [
    ['', 'empty', /scheme/],
    ['example.org/workload', 'no scheme', /scheme/],
    ['SPIFFE://example.org/w', 'uppercase scheme', /lowercase "spiffe"/],
    ['Spiffe://example.org/w', 'mixed-case scheme', /lowercase "spiffe"/],
    ['https://example.org/w', 'another scheme', /scheme/],
    ['spiffe:/example.org/w', 'one slash', /scheme/],
    ['spiffe://', 'no trust domain', /trust domain is missing/],
    ['spiffe:///w', 'empty trust domain', /trust domain is missing/],
    ['spiffe://Example.org/w', 'uppercase trust domain', /lowercase/],
    ['spiffe://example.org:443/w', 'port', /port/],
    ['spiffe://example.org:/w', 'empty port', /port/],
    ['spiffe://user@example.org/w', 'userinfo', /userinfo/],
    ['spiffe://user:pw@example.org/w', 'userinfo with password', /port|userinfo/],
    ['spiffe://exa%6Dple.org/w', 'percent-encoded trust domain', /percent/],
    ['spiffe://[::1]/w', 'IP literal', /character/],
    ['spiffe://example.org/w%20x', 'percent-encoded path', /percent/],
    ['spiffe://example.org/a b', 'space', /character/],
    ['spiffe://example.org/é', 'non-ASCII', /character/],
    ['spiffe://example.org/', 'trailing slash on the trust domain', /trailing/],
    ['spiffe://example.org/w/', 'trailing slash', /trailing/],
    ['spiffe://example.org//w', 'empty segment', /empty path segments/],
    ['spiffe://example.org/./w', 'dot segment', /dot segments/],
    ['spiffe://example.org/w/..', 'dot-dot segment', /dot segments/],
    ['spiffe://example.org/w?x=1', 'query', /query/],
    ['spiffe://example.org?x=1', 'query on the trust domain', /character/],
    ['spiffe://example.org/w#f', 'fragment', /fragment/],
    ['spiffe://example.org#f', 'fragment on the trust domain', /character/],
    [`spiffe://td/${'x'.repeat(2049 - 'spiffe://td/'.length)}`, 'over 2048 bytes', /2048 bytes/],
    [`spiffe://${'a'.repeat(256)}/w`, 'trust domain over 255 bytes', /255 bytes/],
  ];
  for (const [s, what, message] of invalid) {
    test(`rejects ${what}`, () => {
      assert.throws(
        () => parseSpiffeId(s),
        (err: unknown) =>
          err instanceof SpiffeError && err.code === 'invalid_spiffe_id' && message.test(err.message),
      );
      assert.equal(isSpiffeId(s), false);
    });
  }

  test('a long hostile input is truncated in the message', () => {
    assert.throws(
      () => parseSpiffeId(`spiffe://td/${'x'.repeat(3000)}`),
      (err: unknown) => err instanceof SpiffeError && err.message.length < 200,
    );
  });
});

describe('parseTrustDomain, trustDomainId and isMemberOf', () => {
  test('a bare name or a SPIFFE ID gives the trust domain', () => {
    assert.equal(parseTrustDomain('example.org'), 'example.org');
    assert.equal(parseTrustDomain('spiffe://example.org'), 'example.org');
    assert.equal(parseTrustDomain('spiffe://example.org/x'), 'example.org');
    assert.equal(trustDomainId('example.org').toString(), 'spiffe://example.org');
  });
  for (const bad of ['', 'Example.org', 'example.org:80', 'a@b', 'spiffe://EXAMPLE.org', 'a/b']) {
    test(`parseTrustDomain rejects ${JSON.stringify(bad)}`, () => {
      assert.throws(
        () => parseTrustDomain(bad),
        (e: unknown) => e instanceof SpiffeError && e.code === 'invalid_trust_domain',
      );
    });
  }
  const membership: [string, string, boolean][] = [
    ['spiffe://example.org/w', 'example.org', true],
    ['spiffe://example.org/w', 'spiffe://example.org', true],
    ['spiffe://example.org', 'example.org', true],
    ['spiffe://example.org/w', 'example.com', false],
    ['spiffe://sub.example.org/w', 'example.org', false],
    ['spiffe://example.org.evil/w', 'example.org', false],
    ['spiffe://Example.org/w', 'example.org', false],
    ['spiffe://example.org/w', 'Example.org', false],
  ];
  for (const [id, td, expected] of membership) {
    test(`${id} ${expected ? 'is' : 'is not'} a member of ${td}`, () => {
      assert.equal(isMemberOf(id, td), expected);
      if (isSpiffeId(id)) assert.equal(isMemberOf(parseSpiffeId(id), td), expected);
    });
  }
});
