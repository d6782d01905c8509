import { quote, SpiffeError } from './errors.ts';

/**
 * DNS SANs an X.509-SVID may carry besides its SPIFFE ID (X509-SVID.md §2),
 * checked as SPIRE's x509util.ValidateLabel and CheckForWildcardOverlap do
 * (pkg/common/x509util/dns.go): RFC 1123 labels, a wildcard only as the
 * whole leftmost label, and no wildcard that covers another requested name.
 */

const LABEL = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;
const MAX_NAME = 253;

/** Returns why `name` is not an acceptable DNS SAN, or undefined when it is. */
function dnsNameProblem(name: string): string | undefined {
  if (typeof name !== 'string' || name.length === 0) return 'it is empty';
  if (name.length > MAX_NAME) return `it is longer than ${MAX_NAME} characters`;
  const labels = name.split('.');
  for (let i = 0; i < labels.length; i++) {
    const label = labels[i]!;
    if (i === 0 && label === '*') {
      if (labels.length < 3) return 'a wildcard needs at least two labels after it';
      continue;
    }
    if (!LABEL.test(label)) return `the label ${quote(label)} is not a valid DNS label`;
  }
  return undefined;
}

/**
 * Validates a list of DNS SANs; returns them lowercased (DNS names compare
 * case-insensitively, RFC 4343) and deduplicated. Throws
 * SpiffeError(code) naming the first bad one.
 */
export function validateDnsNames(names: readonly string[], code: 'invalid_csr' | 'invalid_svid'): string[] {
  const out: string[] = [];
  for (const name of names) {
    const why = dnsNameProblem(name);
    if (why) throw new SpiffeError(code, `the DNS name ${quote(name)} is not valid: ${why}`);
    const lower = name.toLowerCase();
    if (!out.includes(lower)) out.push(lower);
  }
  for (const wildcard of out) {
    if (!wildcard.startsWith('*.')) continue;
    const suffix = wildcard.slice(1);
    for (const other of out) {
      if (other === wildcard || other.startsWith('*.')) continue;
      const dot = other.indexOf('.');
      if (dot > 0 && other.slice(dot) === suffix) {
        throw new SpiffeError(
          code,
          `the DNS name ${quote(wildcard)} covers ${quote(other)}; request one or the other`,
        );
      }
    }
  }
  return out;
}
