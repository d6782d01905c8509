import { randomBytes } from 'node:crypto';
import { crc32 as zlibCrc32 } from 'node:zlib';
import { constantTimeEqual } from './random.ts';

/**
 * Strongroom tokens: `srt_` (`srs_` app secrets, `srv_` gateway virtual keys) + 43 chars of base64url (256 random bits) + `_` + 6 chars of checksum.
 * The checksum (CRC-32 of prefix+body, base62) lets scanners recognise a real token
 * without a server round trip, like GitHub's token format. It is not a security control.
 */
export const TOKEN_PREFIXES = { root: 'srt', service: 'srs', virtual_key: 'srv', wrapping: 'srw' } as const;
const BODY_CHARS = 43;
const CHECK_CHARS = 6;
const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
const TOKEN_RE = /^(sr[a-z])_([A-Za-z0-9_-]{43})_([0-9A-Za-z]{6})$/;

/** CRC-32 (IEEE 802.3, as zlib and GitHub's token checksums use it) of the UTF-8 bytes; native. */
const crc32 = (data: string): number => zlibCrc32(data);

function base62(n: number, width: number): string {
  let out = '';
  let v = n;
  for (let i = 0; i < width; i++) {
    out = BASE62[v % 62] + out;
    v = Math.floor(v / 62);
  }
  return out;
}

function checksum(prefix: string, body: string): string {
  return base62(crc32(`${prefix}_${body}`), CHECK_CHARS);
}

export function generateToken(prefix: string = TOKEN_PREFIXES.root): string {
  if (!/^sr[a-z]$/.test(prefix)) throw new TypeError('token prefix must match sr[a-z]');
  const body = randomBytes(32).toString('base64url');
  if (body.length !== BODY_CHARS) throw new TypeError('unexpected token body length');
  return `${prefix}_${body}_${checksum(prefix, body)}`;
}

/** True when the string has the shape and a valid checksum of a Strongroom token. */
export function isWellFormedToken(token: string): boolean {
  const m = TOKEN_RE.exec(token);
  if (!m) return false;
  return constantTimeEqual(checksum(m[1]!, m[2]!), m[3]!);
}
