/**
 * A minimal DER (X.690) reader and writer: just what the SPIFFE layer needs to
 * read certificate extensions and CSRs and to write leaf certificates.
 * node:crypto exposes neither key usage bits nor extension criticality, and a
 * general ASN.1 library costs about a millisecond per certificate, where this
 * costs a few µs. The reader is bounds-checked and throws DerError on
 * anything unexpected: callers must fail closed.
 */

export class DerError extends Error {
  override readonly name = 'DerError';
}

export const Tag = {
  boolean: 0x01,
  integer: 0x02,
  bitString: 0x03,
  octetString: 0x04,
  null: 0x05,
  oid: 0x06,
  utf8String: 0x0c,
  printableString: 0x13,
  ia5String: 0x16,
  utcTime: 0x17,
  generalizedTime: 0x18,
  sequence: 0x30,
  set: 0x31,
} as const;

export const OID = {
  subjectKeyIdentifier: '2.5.29.14',
  keyUsage: '2.5.29.15',
  subjectAltName: '2.5.29.17',
  basicConstraints: '2.5.29.19',
  nameConstraints: '2.5.29.30',
  authorityKeyIdentifier: '2.5.29.35',
  extKeyUsage: '2.5.29.37',
  anyExtendedKeyUsage: '2.5.29.37.0',
  serverAuth: '1.3.6.1.5.5.7.3.1',
  clientAuth: '1.3.6.1.5.5.7.3.2',
  organizationName: '2.5.4.10',
  extensionRequest: '1.2.840.113549.1.9.14',
  ecdsaWithSha256: '1.2.840.10045.4.3.2',
  ecdsaWithSha384: '1.2.840.10045.4.3.3',
  ecdsaWithSha512: '1.2.840.10045.4.3.4',
  sha256WithRsa: '1.2.840.113549.1.1.11',
  sha384WithRsa: '1.2.840.113549.1.1.12',
  sha512WithRsa: '1.2.840.113549.1.1.13',
  ed25519: '1.3.101.112',
} as const;

// ---------------------------------------------------------------- reading

export interface Tlv {
  readonly tag: number;
  /** offset of the tag byte */
  readonly offset: number;
  /** first byte of the value */
  readonly start: number;
  /** one past the last byte of the value */
  readonly end: number;
}

/** Reads one TLV at `pos`, which must end by `limit`. */
export function readTlv(buf: Uint8Array, pos: number, limit: number): Tlv {
  if (pos + 2 > limit) throw new DerError('truncated');
  const tag = buf[pos]!;
  if ((tag & 0x1f) === 0x1f) throw new DerError('high tag numbers are not supported');
  let len = buf[pos + 1]!;
  let start = pos + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    // X.690 §10.1: definite, minimal lengths only
    if (n === 0 || n > 4) throw new DerError('unsupported length encoding');
    if (start + n > limit) throw new DerError('truncated');
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + buf[start + i]!;
    if (len < 0x80) throw new DerError('non-minimal length');
    start += n;
  }
  const end = start + len;
  if (end > limit) throw new DerError('a length runs past its container');
  return { tag, offset: pos, start, end };
}

/** Reads the single TLV that must fill `buf` exactly (no trailing bytes). */
export function readWhole(buf: Uint8Array): Tlv {
  const t = readTlv(buf, 0, buf.length);
  if (t.end !== buf.length) throw new DerError('trailing bytes after the structure');
  return t;
}

/** The TLVs inside a constructed TLV. */
export function children(buf: Uint8Array, parent: Tlv): Tlv[] {
  const out: Tlv[] = [];
  for (let pos = parent.start; pos < parent.end; ) {
    const t = readTlv(buf, pos, parent.end);
    out.push(t);
    pos = t.end;
  }
  return out;
}

/** Asserts that `t` exists and has `tag`. */
export function expectTag(t: Tlv | undefined, tag: number, what: string): Tlv {
  if (!t || t.tag !== tag) throw new DerError(`expected ${what}`);
  return t;
}

/** The single TLV inside an OCTET STRING or explicit tag. */
export function inner(buf: Uint8Array, t: Tlv): Tlv {
  const c = readTlv(buf, t.start, t.end);
  if (c.end !== t.end) throw new DerError('trailing bytes inside a wrapper');
  return c;
}

/** Decodes an OBJECT IDENTIFIER value (X.690 §8.19) to dotted form. */
export function decodeOid(buf: Uint8Array, t: Tlv): string {
  if (t.end <= t.start) throw new DerError('empty OID');
  const parts: number[] = [];
  let v = 0;
  for (let i = t.start; i < t.end; i++) {
    const b = buf[i]!;
    v = v * 128 + (b & 0x7f);
    if (v > 2 ** 40) throw new DerError('OID arc too large');
    if ((b & 0x80) === 0) {
      if (parts.length === 0) {
        const first = v < 40 ? 0 : v < 80 ? 1 : 2;
        parts.push(first, v - first * 40);
      } else parts.push(v);
      v = 0;
    } else if (i === t.end - 1) throw new DerError('truncated OID');
  }
  return parts.join('.');
}

/** An IA5String (7-bit ASCII) value. */
export function readAscii(buf: Uint8Array, t: Tlv): string {
  let s = '';
  for (let i = t.start; i < t.end; i++) {
    const c = buf[i]!;
    if (c > 0x7f) throw new DerError('a non-ASCII byte in an IA5String');
    s += String.fromCharCode(c);
  }
  return s;
}

/** A UTCTime or GeneralizedTime in the RFC 5280 §4.1.2.5 profile (UTC, seconds, "Z") as ms since the epoch. */
export function readTime(buf: Uint8Array, t: Tlv): number {
  const s = readAscii(buf, t);
  const m =
    t.tag === Tag.utcTime
      ? /^(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(s)
      : t.tag === Tag.generalizedTime
        ? /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(s)
        : null;
  if (!m) throw new DerError('bad time');
  let year = Number(m[1]);
  if (t.tag === Tag.utcTime) year += year < 50 ? 2000 : 1900;
  return Date.UTC(year, Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6]));
}

/** A BOOLEAN value (X.690 §11.1: DER TRUE is 0xff). */
export function readBoolean(buf: Uint8Array, t: Tlv): boolean {
  if (t.end - t.start !== 1) throw new DerError('bad BOOLEAN');
  return buf[t.start] !== 0;
}

/** The raw bytes of a whole TLV (tag, length and value). */
export function rawTlv(buf: Uint8Array, t: Tlv): Buffer {
  return Buffer.from(buf.buffer, buf.byteOffset + t.offset, t.end - t.offset);
}

/** The value bytes of a TLV. */
export function valueBytes(buf: Uint8Array, t: Tlv): Buffer {
  return Buffer.from(buf.buffer, buf.byteOffset + t.start, t.end - t.start);
}

// ---------------------------------------------------------------- writing

function lengthBytes(n: number): number[] {
  if (n < 0x80) return [n];
  const out: number[] = [];
  for (let x = n; x > 0; x = Math.floor(x / 256)) out.unshift(x & 0xff);
  return [0x80 | out.length, ...out];
}

/** A TLV with the given tag around the concatenated contents. */
export function tlv(tag: number, ...contents: Uint8Array[]): Buffer {
  const body = Buffer.concat(contents);
  return Buffer.concat([Buffer.from([tag, ...lengthBytes(body.length)]), body]);
}

export const seq = (...contents: Uint8Array[]): Buffer => tlv(Tag.sequence, ...contents);
export const set = (...contents: Uint8Array[]): Buffer => tlv(Tag.set, ...contents);
export const octetString = (content: Uint8Array): Buffer => tlv(Tag.octetString, content);
export const bool = (v: boolean): Buffer => tlv(Tag.boolean, Buffer.from([v ? 0xff : 0]));
export const utf8 = (s: string): Buffer => tlv(Tag.utf8String, Buffer.from(s, 'utf8'));
/** [n] EXPLICIT (constructed) */
export const explicit = (n: number, content: Uint8Array): Buffer => tlv(0xa0 | n, content);
/** [n] IMPLICIT on a primitive value */
export const implicit = (n: number, value: Uint8Array): Buffer => tlv(0x80 | n, value);

/** A non-negative INTEGER from big-endian magnitude bytes (minimal, with a 0x00 when the high bit is set). */
export function unsignedInteger(magnitude: Uint8Array): Buffer {
  let i = 0;
  while (i < magnitude.length - 1 && magnitude[i] === 0) i++;
  const m = magnitude.subarray(i);
  return tlv(Tag.integer, m[0]! & 0x80 ? Buffer.concat([Buffer.from([0]), m]) : m);
}

export function smallInteger(n: number): Buffer {
  if (!Number.isInteger(n) || n < 0 || n > 127) throw new RangeError('smallInteger: 0..127');
  return tlv(Tag.integer, Buffer.from([n]));
}

/** A BIT STRING with no unused bits. */
export function bitString(bytes: Uint8Array): Buffer {
  return tlv(Tag.bitString, Buffer.from([0]), bytes);
}

const oidCache = new Map<string, Buffer>();

/** An OBJECT IDENTIFIER from dotted form (encodings are memoised: the same few OIDs recur in every certificate). */
export function oid(dotted: string): Buffer {
  let enc = oidCache.get(dotted);
  if (!enc) {
    enc = encodeOid(dotted);
    if (oidCache.size < 256) oidCache.set(dotted, enc);
  }
  return enc;
}

function encodeOid(dotted: string): Buffer {
  const arcs = dotted.split('.').map(Number);
  if (arcs.length < 2 || arcs.some((a) => !Number.isSafeInteger(a) || a < 0))
    throw new RangeError(`bad OID ${dotted}`);
  const out: number[] = [];
  const push = (v: number) => {
    const bytes = [v & 0x7f];
    for (let x = Math.floor(v / 128); x > 0; x = Math.floor(x / 128)) bytes.unshift(0x80 | (x & 0x7f));
    out.push(...bytes);
  };
  push(arcs[0]! * 40 + arcs[1]!);
  for (const a of arcs.slice(2)) push(a);
  return tlv(Tag.oid, Buffer.from(out));
}

/** RFC 5280 §4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050; always UTC, whole seconds. */
export function time(ms: number): Buffer {
  const iso = new Date(ms).toISOString(); // YYYY-MM-DDTHH:MM:SS.sssZ
  const year = Number(iso.slice(0, 4));
  const digits = iso.slice(0, 19).replace(/[-:T]/g, '');
  if (year >= 1950 && year < 2050) return tlv(Tag.utcTime, Buffer.from(`${digits.slice(2)}Z`, 'ascii'));
  return tlv(Tag.generalizedTime, Buffer.from(`${digits}Z`, 'ascii'));
}
