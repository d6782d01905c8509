import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isStrongroomError } from '../errors/errors.ts';
import { addressAllowed, parseCidr } from './apps.ts';

test('address ranges parse as CIDR or single addresses', () => {
  assert.deepEqual(parseCidr('10.0.0.0/8'), { address: '10.0.0.0', prefix: 8, family: 'ipv4' });
  assert.deepEqual(parseCidr('192.0.2.7'), { address: '192.0.2.7', prefix: 32, family: 'ipv4' });
  assert.deepEqual(parseCidr('2001:db8::/32'), { address: '2001:db8::', prefix: 32, family: 'ipv6' });
  assert.deepEqual(parseCidr('::1'), { address: '::1', prefix: 128, family: 'ipv6' });
  for (const bad of [
    '10.0.0.0/33',
    '10.0.0/8',
    'example.com',
    '10.0.0.0/8/8',
    '::/129',
    '10.0.0.0/-1',
    '10.0.0.0/x',
    '',
  ]) {
    assert.throws(
      () => parseCidr(bad),
      (e) => isStrongroomError(e, 'validation_failed'),
      bad,
    );
  }
});

test('an address is allowed when a range holds it (IPv4-mapped IPv6 counts as IPv4)', () => {
  const ranges = ['10.0.0.0/8', '2001:db8::/32'];
  assert.equal(addressAllowed([], '198.51.100.1'), true);
  assert.equal(addressAllowed(ranges, '10.255.0.1'), true);
  assert.equal(addressAllowed(ranges, '::ffff:10.0.0.1'), true);
  assert.equal(addressAllowed(ranges, '2001:db8:ffff::1'), true);
  assert.equal(addressAllowed(ranges, '11.0.0.1'), false);
  assert.equal(addressAllowed(ranges, '2001:db9::1'), false);
  assert.equal(addressAllowed(ranges, 'not-an-address'), false);
  assert.equal(addressAllowed(['0.0.0.0/0'], '203.0.113.9'), true);
});
