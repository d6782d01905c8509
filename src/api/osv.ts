/**
 * OSV advisories (the OSV schema, https://ossf.github.io/osv-schema/) checked against a CycloneDX SBOM's
 * components, offline: the per-ecosystem exports OSV publishes hold one advisory per JSON file. Shared
 * by `strongroom sbom check` and the vault's SBOM gate on model releases (docs/sbom.md). Package URLs
 * name a component's ecosystem, name and version; OSV's `affected` lists versions and ranges.
 */

export interface OsvAdvisory {
  id: string;
  summary?: string;
  aliases?: string[];
  severity?: Array<{ type: string; score: string }>;
  affected?: Array<{
    package?: { ecosystem?: string; name?: string; purl?: string };
    versions?: string[];
    ranges?: Array<{ type: string; events: Array<Record<string, string>> }>;
    database_specific?: { severity?: string };
  }>;
  database_specific?: { severity?: string };
}

export const SEVERITIES = ['low', 'medium', 'high', 'critical'] as const;
export type Severity = (typeof SEVERITIES)[number] | 'unknown';

/**
 * Whether `s` is at or above `threshold`. An advisory whose severity cannot be read (a CVSS v4 vector
 * only, none at all) counts as high: a gate fails closed on what it cannot weigh.
 */
export const atLeast = (s: Severity, threshold: Severity): boolean =>
  SEVERITIES.indexOf(s === 'unknown' ? 'high' : s) >=
  SEVERITIES.indexOf(threshold === 'unknown' ? 'high' : threshold);

const W: Record<string, Record<string, number>> = {
  AV: { N: 0.85, A: 0.62, L: 0.55, P: 0.2 },
  AC: { L: 0.77, H: 0.44 },
  UI: { N: 0.85, R: 0.62 },
  CIA: { H: 0.56, L: 0.22, N: 0 },
};

const roundUp = (x: number) => {
  const i = Math.round(x * 100000);
  return i % 10000 === 0 ? i / 100000 : (Math.floor(i / 10000) + 1) / 10;
};

/** The base score of a CVSS v3.x vector (FIRST's CVSS v3.1 specification, section 7.1); NaN if unreadable. */
function cvss3Score(vector: string): number {
  const m: Record<string, string> = {};
  for (const part of vector.split('/').slice(1)) {
    const [k, v] = part.split(':');
    if (k && v) m[k] = v;
  }
  const scope = m.S === 'C';
  const pr = { N: 0.85, L: scope ? 0.68 : 0.62, H: scope ? 0.5 : 0.27 }[m.PR as 'N'] as number | undefined;
  const [av, ac, ui, c, i, a] = [
    W.AV![m.AV!],
    W.AC![m.AC!],
    W.UI![m.UI!],
    W.CIA![m.C!],
    W.CIA![m.I!],
    W.CIA![m.A!],
  ];
  if ([av, ac, ui, c, i, a, pr].some((x) => x === undefined)) return Number.NaN;
  const iss = 1 - (1 - c!) * (1 - i!) * (1 - a!);
  const impact = scope ? 7.52 * (iss - 0.029) - 3.25 * (iss - 0.02) ** 15 : 6.42 * iss;
  const exploitability = 8.22 * av! * ac! * pr! * ui!;
  if (impact <= 0) return 0;
  return roundUp(Math.min(scope ? 1.08 * (impact + exploitability) : impact + exploitability, 10));
}

/** An advisory's severity: the database's own word (GHSA's), else its CVSS v3 base score. */
function severityOf(adv: OsvAdvisory): Severity {
  const word = (
    adv.database_specific?.severity ??
    adv.affected?.find((x) => x.database_specific?.severity)?.database_specific?.severity
  )?.toLowerCase();
  if (word === 'critical' || word === 'high' || word === 'low') return word;
  if (word === 'moderate' || word === 'medium') return 'medium';
  const v3 = adv.severity?.find((s) => s.type === 'CVSS_V3');
  if (v3) {
    const score = cvss3Score(v3.score);
    if (score >= 9) return 'critical';
    if (score >= 7) return 'high';
    if (score >= 4) return 'medium';
    if (score > 0) return 'low';
  }
  return 'unknown';
}

/** Compares two versions (SemVer and PEP 440's common forms): numbers by value, a pre-release before its release. */
function compareVersions(a: string, b: string): number {
  const parts = (v: string) =>
    v
      .replace(/^v/, '')
      .split(/[.+-]/)
      .flatMap((p) => p.match(/\d+|[A-Za-z]+/g) ?? []);
  const [x, y] = [parts(a), parts(b)];
  for (let n = 0; n < Math.max(x.length, y.length); n++) {
    const [p, q] = [x[n], y[n]];
    if (p === undefined) return q !== undefined && /^\d/.test(q) ? -1 : 1;
    if (q === undefined) return /^\d/.test(p) ? 1 : -1;
    const [pn, qn] = [/^\d+$/.test(p), /^\d+$/.test(q)];
    if (pn && qn) {
      const d = Number(p) - Number(q);
      if (d) return d;
    } else if (pn !== qn) return pn ? 1 : -1;
    else if (p !== q) return p < q ? -1 : 1;
  }
  return 0;
}

/** OSV's ecosystem name for a purl type, and a package name as OSV writes it. */
const ECOSYSTEM: Record<string, string> = {
  npm: 'npm',
  pypi: 'PyPI',
  maven: 'Maven',
  golang: 'Go',
  cargo: 'crates.io',
  gem: 'RubyGems',
  nuget: 'NuGet',
};
const normal = (eco: string, name: string) =>
  eco === 'PyPI' ? name.toLowerCase().replace(/[-_.]+/g, '-') : name;

/** Whether the advisory affects `name@version` in `ecosystem`. */
function affects(adv: OsvAdvisory, ecosystem: string, name: string, version: string): boolean {
  for (const a of adv.affected ?? []) {
    if (
      a.package?.ecosystem !== ecosystem ||
      normal(ecosystem, a.package.name ?? '') !== normal(ecosystem, name)
    )
      continue;
    if (a.versions?.includes(version)) return true;
    for (const r of a.ranges ?? []) {
      if (r.type !== 'SEMVER' && r.type !== 'ECOSYSTEM') continue;
      let inside = false;
      const events = [...r.events].sort((e, f) =>
        compareVersions(Object.values(e)[0] ?? '0', Object.values(f)[0] ?? '0'),
      );
      for (const e of events) {
        if (
          e.introduced !== undefined &&
          (e.introduced === '0' || compareVersions(version, e.introduced) >= 0)
        )
          inside = true;
        if (e.fixed !== undefined && compareVersions(version, e.fixed) >= 0) inside = false;
        if (e.last_affected !== undefined && compareVersions(version, e.last_affected) > 0) inside = false;
      }
      if (inside) return true;
    }
  }
  return false;
}

export interface Finding {
  /** The component's purl. */
  component: string;
  bomRef: string | undefined;
  advisory: string;
  aliases: string[];
  severity: Severity;
  summary: string;
}

interface SbomComponent {
  purl?: string;
  'bom-ref'?: string;
  components?: SbomComponent[];
}

/** Every component of a CycloneDX SBOM (nested ones too) that has a purl with a version. */
function purls(sbom: unknown): Array<{ purl: string; bomRef: string | undefined }> {
  const out: Array<{ purl: string; bomRef: string | undefined }> = [];
  const walk = (cs: SbomComponent[] | undefined) => {
    for (const c of cs ?? []) {
      if (typeof c.purl === 'string') out.push({ purl: c.purl, bomRef: c['bom-ref'] });
      walk(c.components);
    }
  };
  const s = sbom as { components?: SbomComponent[]; metadata?: { component?: SbomComponent } };
  walk(s.components);
  if (s.metadata?.component) walk([s.metadata.component]);
  return out;
}

/** `pkg:type/namespace/name@version` → its OSV ecosystem, name and version (undefined when it has none). */
function parsePurl(purl: string): { ecosystem: string; name: string; version: string } | undefined {
  const m = /^pkg:([a-z]+)\/([^@?#]+)@([^?#]+)/.exec(purl);
  const eco = m ? ECOSYSTEM[m[1]!] : undefined;
  if (!m || !eco) return undefined;
  const name = decodeURIComponent(m[2]!);
  // npm scopes and Maven groups are the purl's namespace: OSV writes @scope/name and group:artifact
  return {
    ecosystem: eco,
    name: eco === 'Maven' ? name.replace('/', ':') : name,
    version: decodeURIComponent(m[3]!),
  };
}

/** The advisories affecting the SBOM's components, most severe first. */
export function checkSbom(sbom: unknown, advisories: Iterable<OsvAdvisory>): Finding[] {
  const comps = purls(sbom)
    .map((c) => ({ ...c, parsed: parsePurl(c.purl) }))
    .filter((c) => c.parsed);
  const findings: Finding[] = [];
  for (const adv of advisories) {
    for (const c of comps) {
      const p = c.parsed!;
      if (affects(adv, p.ecosystem, p.name, p.version)) {
        findings.push({
          component: c.purl,
          bomRef: c.bomRef,
          advisory: adv.id,
          aliases: adv.aliases ?? [],
          severity: severityOf(adv),
          summary: adv.summary ?? '',
        });
      }
    }
  }
  const rank = (s: Severity) => (s === 'unknown' ? -1 : SEVERITIES.indexOf(s));
  return findings.sort((a, b) => rank(b.severity) - rank(a.severity) || (a.advisory < b.advisory ? -1 : 1));
}
