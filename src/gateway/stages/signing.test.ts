import assert from 'node:assert/strict';
import { createPrivateKey } from 'node:crypto';
import { before, describe, test } from 'node:test';
import { createTestCa, type TestCa, type TestSvid } from '../../../test/fixtures/mtls-ca.ts';
import { parsePemCertificates } from '../../spiffe/index.ts';
import { bundlesFromCertificates } from '../../spiffe/svid-source.ts';
import type { ProvenanceLink } from '../types.ts';
import {
  decodeProvenanceHeader,
  encodeProvenanceHeader,
  ProvenanceError,
  type StageKey,
  signStage,
  verifyChain,
  verifyStage,
} from './signing.ts';

const TD = 'stages.test';
const FIREWALL = `spiffe://${TD}/stage/firewall`;
const FILTER = `spiffe://${TD}/stage/filter`;
const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const BODY = Buffer.from('{"messages":[{"role":"user","content":"hello"}]}');

let ca: TestCa;
let other: TestCa;
let fw: StageKey;
let filter: StageKey;
let bundles: ReturnType<typeof bundlesFromCertificates>;
const keyOf = (s: TestSvid): StageKey => ({
  privateKey: createPrivateKey(s.privateKey),
  chain: parsePemCertificates(s.chain),
});

before(async () => {
  ca = await createTestCa(TD);
  other = await createTestCa('other.test');
  fw = keyOf(await ca.issue(FIREWALL));
  filter = keyOf(await ca.issue(FILTER));
  bundles = bundlesFromCertificates(ca.pem + other.pem, TD);
});

const sign = (over: Partial<Parameters<typeof signStage>[0]> = {}) =>
  signStage({ body: BODY, stage: 'firewall', spiffeId: FIREWALL, traceId: TRACE, key: fw, ...over });
const verify = (link: ProvenanceLink, over: Partial<Parameters<typeof verifyStage>[1]> = {}) =>
  verifyStage(link, { body: BODY, traceId: TRACE, bundles, now: Date.now(), ...over });
const refused = (reason: string) => (err: unknown) => {
  assert.ok(err instanceof ProvenanceError, String(err));
  assert.equal(err.code, 'provenance_invalid');
  assert.equal(err.reason, reason);
  return true;
};

describe('stage provenance: signing and verification', () => {
  test('a link is a compact JWS with a detached payload and an x5c header', async () => {
    const link = await sign();
    const [h, p, s] = link.jws.split('.');
    assert.equal(p, '');
    assert.ok(s);
    const header = JSON.parse(Buffer.from(h!, 'base64url').toString());
    assert.equal(header.alg, 'ES256');
    assert.equal(header.typ, 'strongroom-provenance+jws');
    assert.equal(header.x5c.length, 1);
    const v = await verify(link);
    assert.deepEqual([v.stage, v.spiffeId], ['firewall', FIREWALL]);
  });

  test('one flipped byte of the body is refused', async () => {
    const link = await sign();
    const body = Buffer.from(BODY);
    body[10]! ^= 0x01;
    await assert.rejects(verify(link, { body }), refused('signature_mismatch'));
  });

  test('a wrong trace id is refused', async () => {
    await assert.rejects(
      verify(await sign(), { traceId: 'ffffffffffffffffffffffffffffffff' }),
      refused('signature_mismatch'),
    );
  });

  test('a broken prev link is refused', async () => {
    const first = await sign();
    const second = await sign({ stage: 'filter', spiffeId: FILTER, key: filter, prev: first.jws });
    await verify(second, { prev: first.jws });
    const other = await sign({ traceId: TRACE, body: 'something else' });
    await assert.rejects(verify(second, { prev: other.jws }), refused('signature_mismatch'));
    await assert.rejects(verify(second, { prev: null }), refused('signature_mismatch'));
  });

  test('a renamed stage or a claimed signer other than the certificate is refused', async () => {
    const link = await sign();
    await assert.rejects(verify({ ...link, stage: 'filter' }), refused('signature_mismatch'));
    await assert.rejects(verify({ ...link, spiffe_id: FILTER }), refused('wrong_signer'));
  });

  test('a leaf from another trust domain is refused (and is not vouched for by ours)', async () => {
    const foreign = keyOf(await other.issue(`spiffe://other.test/stage/firewall`));
    const link = await sign({ key: foreign, spiffeId: 'spiffe://other.test/stage/firewall' });
    await assert.rejects(
      verify(link, { bundles: bundlesFromCertificates(ca.pem, TD) }),
      refused('untrusted'),
    );
    // a certificate for our trust domain's ID signed by the other CA
    const forged = await signStage({
      body: BODY,
      stage: 'firewall',
      spiffeId: FIREWALL,
      traceId: TRACE,
      key: foreign,
    });
    await assert.rejects(verify(forged), refused('wrong_signer'));
  });

  test('an expired leaf is refused', async () => {
    const old = keyOf(await ca.issue(FIREWALL, { ttlSeconds: 60, now: Date.now() - 30 * 60_000 }));
    const link = await sign({ key: old, now: Date.now() - 29 * 60_000 });
    await assert.rejects(verify(link), refused('expired'));
  });

  test('alg none, HS256 and an attached payload are refused', async () => {
    const link = await sign();
    const [h, , s] = link.jws.split('.');
    const header = JSON.parse(Buffer.from(h!, 'base64url').toString());
    for (const alg of ['none', 'HS256', 'ES384']) {
      const forged = Buffer.from(JSON.stringify({ ...header, alg })).toString('base64url');
      await assert.rejects(
        verify({ ...link, jws: `${forged}..${alg === 'none' ? '' : s}` }),
        (err: ProvenanceError) => {
          assert.equal(err.code, 'provenance_invalid');
          return true;
        },
      );
    }
    await assert.rejects(verify({ ...link, jws: `${h}.e30.${s}` }), refused('malformed'));
  });

  test('a signer the verifier does not expect is refused', async () => {
    await assert.rejects(
      verify(await sign(), { expectSpiffeId: (id) => id === FILTER }),
      refused('unexpected_signer'),
    );
  });

  test('missing or malformed links are refused with provenance_invalid', async () => {
    for (const bad of [
      undefined,
      null,
      {},
      { stage: 'x', spiffe_id: FIREWALL, jws: 'a.b' },
      { stage: 'x', spiffe_id: FIREWALL, jws: '..' },
    ]) {
      await assert.rejects(
        verify(bad as unknown as ProvenanceLink),
        (err: ProvenanceError) => err.code === 'provenance_invalid',
      );
    }
  });
});

describe('stage provenance: one link that vouches for the request (decision 0017)', () => {
  const REQUEST = '{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}';
  const header = (link: ProvenanceLink) =>
    JSON.parse(Buffer.from(link.jws.split('.')[0]!, 'base64url').toString()) as Record<string, unknown>;

  test('the request digest is in the signed header; the verifier checks it when it holds the request', async () => {
    const link = await sign({ request: REQUEST });
    const v = await verify(link, { request: REQUEST });
    assert.equal(v.requestSha256, header(link).req);
    // without the request the digest is returned for the caller to compare
    assert.equal((await verify(link)).requestSha256, v.requestSha256);
    await assert.rejects(verify(link, { request: `${REQUEST} ` }), refused('request_mismatch'));
    // a link that vouches for no request does not pass for one that does
    await assert.rejects(verify(await sign(), { request: REQUEST }), refused('no_request'));
  });

  test('a req swapped, added or stripped in the header breaks the signature', async () => {
    const link = await sign({ request: REQUEST });
    const s = link.jws.split('.')[2];
    const hd = header(link);
    const other = await sign({ request: 'another request' });
    const reencode = (o: Record<string, unknown>) => Buffer.from(JSON.stringify(o)).toString('base64url');
    const swapped = { ...link, jws: `${reencode({ ...hd, req: header(other).req })}..${s}` };
    await assert.rejects(verify(swapped, { request: 'another request' }), refused('signature_mismatch'));
    const { req: _req, ...stripped } = hd;
    await assert.rejects(
      verify({ ...link, jws: `${reencode(stripped)}..${s}` }),
      refused('signature_mismatch'),
    );
    await assert.rejects(
      verify({ ...link, jws: `${reencode({ ...hd, req: 'x' })}..${s}` }),
      refused('malformed'),
    );
  });

  test('verifyChain checks the request against the last link only', async () => {
    const first = await sign();
    const last = await signStage({
      body: BODY,
      stage: 'filter',
      spiffeId: FILTER,
      traceId: TRACE,
      prev: first.jws,
      key: filter,
      request: REQUEST,
    });
    const v = await verifyChain([first, last], {
      bodies: BODY,
      traceId: TRACE,
      bundles,
      now: Date.now(),
      request: REQUEST,
    });
    assert.equal(v.length, 2);
    await assert.rejects(
      verifyChain([first, last], {
        bodies: BODY,
        traceId: TRACE,
        bundles,
        now: Date.now(),
        request: 'other',
      }),
      refused('request_mismatch'),
    );
  });
});

describe('stage provenance: chains and the header', () => {
  test('verifyChain checks every link and their order', async () => {
    const a = await sign();
    const b = await sign({ stage: 'filter', spiffeId: FILTER, key: filter, prev: a.jws });
    const verified = await verifyChain([a, b], { bodies: BODY, traceId: TRACE, bundles, now: Date.now() });
    assert.deepEqual(
      verified.map((v) => v.spiffeId),
      [FIREWALL, FILTER],
    );
    await assert.rejects(
      verifyChain([b, a], { bodies: BODY, traceId: TRACE, bundles, now: Date.now() }),
      ProvenanceError,
    );
    await assert.rejects(
      verifyChain([b], { bodies: BODY, traceId: TRACE, bundles, now: Date.now() }),
      ProvenanceError,
    );
    await assert.rejects(
      verifyChain([], { bodies: BODY, traceId: TRACE, bundles, now: Date.now() }),
      ProvenanceError,
    );
  });

  test('the header round-trips, and refuses junk and oversize values', async () => {
    const a = await sign();
    assert.deepEqual(decodeProvenanceHeader(encodeProvenanceHeader([a])), [a]);
    for (const v of ['', '!!!', Buffer.from('{}').toString('base64url'), 'A'.repeat(70_000)]) {
      assert.throws(() => decodeProvenanceHeader(v), ProvenanceError);
    }
  });
});
