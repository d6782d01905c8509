import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, posix, resolve } from 'node:path';
import { describe, test } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { type AgentConfig, parseAgentConfig } from '../src/config/agent.ts';

/**
 * The Kubernetes examples (deploy/kubernetes, docs/kubernetes.md) and the image
 * (deploy/docker/Dockerfile). Each rule below returns the problems it finds in
 * one file, so a failure lists every offending container at once; the last
 * block breaks the real manifests on purpose to prove each rule notices.
 *
 * Manifests are parsed as YAML 1.1, like kubectl does (`defaultMode: 0400` is
 * octal there).
 */
const ROOT = resolve(import.meta.dirname, '..');
const K8S = join(ROOT, 'deploy/kubernetes');
const DOCKERFILE = join(ROOT, 'deploy/docker/Dockerfile');

// ---- the bits of the Kubernetes API the rules look at ----

interface Probe {
  httpGet?: { path?: string; port?: number | string };
  tcpSocket?: { port?: number | string };
  grpc?: { port?: number };
  exec?: unknown;
}
interface SecurityContext {
  runAsNonRoot?: boolean;
  runAsUser?: number;
  runAsGroup?: number;
  fsGroup?: number;
  privileged?: boolean;
  readOnlyRootFilesystem?: boolean;
  allowPrivilegeEscalation?: boolean;
  capabilities?: { add?: string[]; drop?: string[] };
  seccompProfile?: { type?: string };
}
interface VolumeMount {
  name: string;
  mountPath: string;
  subPath?: string;
  readOnly?: boolean;
}
interface EnvVar {
  name: string;
  value?: unknown;
  valueFrom?: { secretKeyRef?: unknown };
}
interface Container {
  name: string;
  image?: string;
  command?: string[];
  args?: string[];
  env?: EnvVar[];
  envFrom?: { secretRef?: unknown; configMapRef?: unknown }[];
  ports?: { name?: string; containerPort: number }[];
  volumeMounts?: VolumeMount[];
  restartPolicy?: string;
  startupProbe?: Probe;
  readinessProbe?: Probe;
  livenessProbe?: Probe;
  resources?: { requests?: Record<string, unknown>; limits?: Record<string, unknown> };
  securityContext?: SecurityContext;
}
interface KeyToPath {
  key: string;
  path: string;
}
interface Volume {
  name: string;
  configMap?: { name: string; items?: KeyToPath[] };
  secret?: { secretName: string; items?: KeyToPath[]; defaultMode?: number };
  emptyDir?: { medium?: string; sizeLimit?: string } | null;
}
interface PodSpec {
  automountServiceAccountToken?: boolean;
  terminationGracePeriodSeconds?: number;
  securityContext?: SecurityContext;
  initContainers?: Container[];
  containers?: Container[];
  volumes?: Volume[];
}
interface K8sObject {
  apiVersion?: string;
  kind?: string;
  metadata?: { name?: string };
  data?: Record<string, unknown>;
  stringData?: Record<string, unknown>;
  spec?: {
    template?: { spec?: PodSpec };
    jobTemplate?: { spec?: { template?: { spec?: PodSpec } } };
  } & PodSpec;
}

interface Manifest {
  file: string;
  docs: K8sObject[];
  errors: string[];
}

function load(file: string, text: string): Manifest {
  const errors: string[] = [];
  const docs: K8sObject[] = [];
  for (const [i, doc] of parseAllDocuments(text, { version: '1.1' }).entries()) {
    for (const e of doc.errors) errors.push(`document ${i + 1}: ${e.message}`);
    const js = doc.toJS() as unknown;
    if (js === null || typeof js !== 'object' || Array.isArray(js)) {
      errors.push(`document ${i + 1} is not a mapping`);
      continue;
    }
    docs.push(js as K8sObject);
  }
  return { file, docs, errors };
}

const FILES = readdirSync(K8S)
  .filter((f) => f.endsWith('.yaml') || f.endsWith('.yml'))
  .sort();
const MANIFESTS = FILES.map((f) => load(f, readFileSync(join(K8S, f), 'utf8')));

// ---- pods, containers and agents ----

interface Pod {
  owner: string;
  spec: PodSpec;
}

function podsOf(m: Manifest): Pod[] {
  return m.docs.flatMap((d) => {
    const owner = `${d.kind}/${d.metadata?.name}`;
    const spec =
      d.kind === 'Pod'
        ? d.spec
        : d.kind === 'CronJob'
          ? d.spec?.jobTemplate?.spec?.template?.spec
          : d.spec?.template?.spec;
    return spec ? [{ owner, spec }] : [];
  });
}

type Where = 'initContainers' | 'containers';
interface PlacedContainer {
  pod: Pod;
  container: Container;
  where: Where;
  /** `Deployment/chatbot initContainers[strongroom-agent]`, for messages. */
  label: string;
}

function containersOf(pod: Pod): PlacedContainer[] {
  return (['initContainers', 'containers'] as const).flatMap((where) =>
    (pod.spec[where] ?? []).map((container) => ({
      pod,
      container,
      where,
      label: `${pod.owner} ${where}[${container.name}]`,
    })),
  );
}

const argv = (c: Container): string[] => [...(c.command ?? []), ...(c.args ?? [])];

/** The `--config` value of a `strongroom agent` command line, or undefined for other containers. */
function configPathOf(c: Container): string | null | undefined {
  const a = argv(c);
  if (!a.includes('agent')) return undefined;
  const i = a.indexOf('--config');
  if (i >= 0) return a[i + 1] ?? null;
  const eq = a.find((x) => x.startsWith('--config='));
  if (eq) return eq.slice('--config='.length);
  return a.some((x) => /strongroom/.test(x)) || /strongroom/.test(c.image ?? '') ? null : undefined;
}

interface Agent extends PlacedContainer {
  configPath: string | null;
  /** The parsed agent.yaml, when it could be found and is valid. */
  config?: AgentConfig;
  /** Why it could not be found or parsed. */
  configProblem?: string;
}

function mountFor(
  pod: PodSpec,
  c: Container,
  path: string,
): { mount: VolumeMount; volume?: Volume; rel: string } | undefined {
  let best: VolumeMount | undefined;
  let bestPath = '';
  for (const m of c.volumeMounts ?? []) {
    const mp = posix.normalize(m.mountPath).replace(/(.)\/$/, '$1');
    const inside = path === mp || path.startsWith(mp === '/' ? '/' : `${mp}/`);
    if (inside && mp.length > bestPath.length) {
      best = m;
      bestPath = mp;
    }
  }
  if (!best) return undefined;
  let rel = path === bestPath ? '' : path.slice(bestPath === '/' ? 1 : bestPath.length + 1);
  if (best.subPath) rel = rel ? posix.join(best.subPath, rel) : best.subPath;
  return { mount: best, volume: pod.volumes?.find((v) => v.name === best.name), rel };
}

/** The ConfigMap/Secret key a file in a volume comes from. */
function keyFor(items: KeyToPath[] | undefined, rel: string): string | undefined {
  if (items) return items.find((i) => posix.normalize(i.path) === rel)?.key;
  return rel && !rel.includes('/') ? rel : undefined;
}

function find(m: Manifest, kind: string, name: string | undefined): K8sObject | undefined {
  return m.docs.find((d) => d.kind === kind && d.metadata?.name === name);
}

function agentsOf(m: Manifest): Agent[] {
  return podsOf(m).flatMap((pod) =>
    containersOf(pod).flatMap((pc): Agent[] => {
      const configPath = configPathOf(pc.container);
      if (configPath === undefined) return [];
      const agent: Agent = { ...pc, configPath };
      if (!configPath) return [{ ...agent, configProblem: 'runs the agent without --config FILE' }];
      const at = mountFor(pod.spec, pc.container, configPath);
      const cmName = at?.volume?.configMap?.name;
      if (!at || !cmName) {
        return [{ ...agent, configProblem: `--config ${configPath} is not a file from a ConfigMap volume` }];
      }
      const cm = find(m, 'ConfigMap', cmName);
      if (!cm) return [{ ...agent, configProblem: `ConfigMap ${cmName} is not in ${m.file}` }];
      const key = keyFor(at.volume?.configMap?.items, at.rel);
      const text = key === undefined ? undefined : cm.data?.[key];
      if (typeof text !== 'string') {
        return [{ ...agent, configProblem: `ConfigMap ${cmName} has no key for ${configPath}` }];
      }
      try {
        return [{ ...agent, config: parseAgentConfig(text, posix.dirname(configPath)) }];
      } catch (err) {
        return [
          { ...agent, configProblem: `ConfigMap ${cmName} ${key} is invalid: ${(err as Error).message}` },
        ];
      }
    }),
  );
}

const isSidecar = (a: PlacedContainer) =>
  a.where === 'initContainers' && a.container.restartPolicy === 'Always';
const isPlainInit = (a: PlacedContainer) => a.where === 'initContainers' && !isSidecar(a);

/** Containers of the pod that are not agents (the app). */
function appsOf(pod: Pod): PlacedContainer[] {
  return containersOf(pod).filter(
    (pc) => pc.where === 'containers' && configPathOf(pc.container) === undefined,
  );
}

function effective<K extends keyof SecurityContext>(pc: PlacedContainer, key: K): SecurityContext[K] {
  return pc.container.securityContext?.[key] ?? pc.pod.spec.securityContext?.[key];
}

/** `0.0.0.0:8211`, `[::]:8211` → host and port. */
function splitHostPort(address: string): { host: string; port: number } {
  const i = address.lastIndexOf(':');
  return { host: address.slice(0, i).replace(/^\[|\]$/g, ''), port: Number(address.slice(i + 1)) };
}

function probePort(c: Container, p: Probe): number | undefined {
  const port = p.httpGet?.port ?? p.tcpSocket?.port ?? p.grpc?.port;
  if (typeof port === 'number') return port;
  return c.ports?.find((x) => x.name === port)?.containerPort;
}

// ---- what looks like a credential ----

/** API keys, Strongroom tokens and client secrets, cloud keys, private keys, JWTs. */
const CREDENTIAL =
  /\bsk-[A-Za-z0-9_-]{16,}|\bsrt_[A-Za-z0-9_-]{16,}|\bsrs_[A-Za-z0-9_-]{16,}|\bAKIA[0-9A-Z]{16}\b|\bAIza[0-9A-Za-z_-]{30,}|\bgh[pousr]_[A-Za-z0-9]{30,}|\bxox[abpr]-[A-Za-z0-9-]{10,}|-----BEGIN [A-Z ]*PRIVATE KEY|\beyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}/;

/** A known credential format, or a long random-looking word (digits, lower and upper case). */
function looksLikeCredential(s: string): boolean {
  return (
    CREDENTIAL.test(s) ||
    s
      .split(/[^A-Za-z0-9+/_=-]+/)
      .some((w) => w.length >= 32 && /\d/.test(w) && /[a-z]/.test(w) && /[A-Z]/.test(w))
  );
}
/** Variable names that announce a secret: such a variable must not be set by the pod spec at all. */
const SECRET_NAME = /(^|_)(KEY|SECRET|TOKEN|PASSWORD|PASSWD|CREDENTIALS?)$/i;

function strings(v: unknown, path: string, out: [string, string][] = []): [string, string][] {
  if (typeof v === 'string') out.push([path, v]);
  else if (Array.isArray(v)) v.forEach((x, i) => void strings(x, `${path}[${i}]`, out));
  else if (v && typeof v === 'object')
    for (const [k, x] of Object.entries(v)) strings(x, `${path}.${k}`, out);
  return out;
}

// ---- the rules ----

interface Rule {
  /** A short handle for the breakage table below. */
  id: string;
  name: string;
  check(m: Manifest): string[];
}

const PATTERNS: Record<string, { name: string; check(a: Agent): string[] }> = {
  'sidecar.yaml': {
    name: 'the agent is a native sidecar: an init container with restartPolicy Always, without --once',
    check: (a) => [
      ...(isSidecar(a) ? [] : [`${a.label} must be an initContainer with restartPolicy: Always`]),
      ...(argv(a.container).includes('--once') ? [`${a.label} passes --once: a sidecar keeps running`] : []),
      ...(appsOf(a.pod).length ? [] : [`${a.pod.owner} has no app container`]),
    ],
  },
  'init-container.yaml': {
    name: 'the agent is a plain init container that renders with --once',
    check: (a) => [
      ...(isPlainInit(a) ? [] : [`${a.label} must be an initContainer without restartPolicy: Always`]),
      ...(argv(a.container).includes('--once') ? [] : [`${a.label} does not pass --once`]),
      ...(a.config && !a.config.templates.length ? [`${a.label} renders no template`] : []),
      ...(appsOf(a.pod).length ? [] : [`${a.pod.owner} has no app container`]),
    ],
  },
  'exec-wrapper.yaml': {
    name: 'the agent is the entrypoint of the app container and supervises the app via exec',
    check: (a) => {
      const problems: string[] = [];
      if (a.where !== 'containers') problems.push(`${a.label} must be a regular container`);
      if (argv(a.container).includes('--once')) problems.push(`${a.label} passes --once`);
      if (a.config && !a.config.exec) problems.push(`${a.label}: agent.yaml has no exec`);
      const graceS = a.pod.spec.terminationGracePeriodSeconds ?? 30;
      if (a.config?.exec && graceS * 1000 <= a.config.exec.graceMs) {
        problems.push(`${a.pod.owner}: terminationGracePeriodSeconds must exceed exec.grace`);
      }
      return problems;
    },
  },
};

const RULES: Rule[] = [
  {
    id: 'parse',
    name: 'parses, and every document has apiVersion, kind and metadata.name',
    check: (m) => [
      ...m.errors,
      ...m.docs.flatMap((d, i) =>
        (['apiVersion', 'kind'] as const)
          .filter((k) => typeof d[k] !== 'string' || !d[k])
          .concat(typeof d.metadata?.name === 'string' && d.metadata.name ? [] : ['metadata.name' as 'kind'])
          .map((k) => `document ${i + 1} (${d.kind ?? '?'}) has no ${k}`),
      ),
    ],
  },
  {
    id: 'config',
    name: "each agent's --config is a file from a ConfigMap in the same file, and its agent.yaml passes parseAgentConfig",
    check: (m) => {
      const agents = agentsOf(m);
      const problems = agents.flatMap((a) => (a.configProblem ? [`${a.label}: ${a.configProblem}`] : []));
      if (m.file in PATTERNS && !agents.length) problems.push('no agent container (`agent --config FILE`)');
      return problems;
    },
  },
  {
    id: 'shared-volume',
    name: 'template destinations and the socket are on a Memory emptyDir, writable by the agent, read-only in the app',
    check: (m) =>
      agentsOf(m).flatMap((a) => {
        if (!a.config) return [];
        const problems: string[] = [];
        const paths = [
          ...a.config.templates.map((t) => t.destination),
          ...(a.config.socket ? [a.config.socket.path] : []),
        ];
        const apps = appsOf(a.pod);
        if (paths.length && !apps.length && !a.config.exec) problems.push(`${a.pod.owner}: no app container`);
        for (const path of paths) {
          const at = mountFor(a.pod.spec, a.container, path);
          if (!at) {
            problems.push(`${a.label}: ${path} is on no volume`);
            continue;
          }
          if (at.volume?.emptyDir?.medium !== 'Memory') {
            problems.push(
              `${a.label}: ${path} is on volume ${at.mount.name}, not an emptyDir with medium: Memory`,
            );
          }
          if (at.mount.readOnly) problems.push(`${a.label}: the agent mounts ${at.mount.name} read-only`);
          if (at.mount.subPath) problems.push(`${a.label}: ${at.mount.name} is a subPath mount`);
          for (const app of apps) {
            const mount = app.container.volumeMounts?.find((v) => v.name === at.mount.name);
            if (!mount) problems.push(`${app.label} does not mount ${at.mount.name} (for ${path})`);
            else if (mount.readOnly !== true) problems.push(`${app.label} mounts ${at.mount.name} writable`);
            // the files and the socket are 0600: the app must be the same user
            if (effective(app, 'runAsUser') !== effective(a, 'runAsUser')) {
              problems.push(
                `${app.label} runs as another uid than ${a.label}: it cannot read the 0600 files`,
              );
            }
          }
        }
        return [...new Set(problems)];
      }),
  },
  {
    id: 'probes',
    name: 'agent probes target the port of listen.http (startup and readiness on /healthz)',
    check: (m) =>
      agentsOf(m).flatMap((a) => {
        const c = a.container;
        const probes = (['startupProbe', 'readinessProbe', 'livenessProbe'] as const).filter((k) => c[k]);
        if (isPlainInit(a)) {
          return probes.map((k) => `${a.label}: Kubernetes rejects ${k} on a plain init container`);
        }
        if (!a.config) return [];
        if (!a.config.http) return [`${a.label}: agent.yaml has no listen.http for the probes`];
        const { host, port } = splitHostPort(a.config.http);
        const problems: string[] = [];
        if (['127.0.0.1', 'localhost', '::1'].includes(host)) {
          problems.push(
            `${a.label}: listen.http ${a.config.http} is loopback; the kubelet probes the pod IP`,
          );
        }
        const required: { probe: 'startupProbe' | 'readinessProbe' | 'livenessProbe'; path?: string }[] = [
          { probe: 'startupProbe', path: '/healthz' },
          { probe: 'livenessProbe' },
          // in the exec pattern the container is the app too: its readiness may be the app's own
          ...(isSidecar(a) ? [{ probe: 'readinessProbe' as const, path: '/healthz' }] : []),
        ];
        for (const { probe, path } of required) {
          const p = c[probe];
          if (!p) {
            problems.push(`${a.label} has no ${probe}`);
            continue;
          }
          if (probePort(c, p) !== port) problems.push(`${a.label}: ${probe} does not target port ${port}`);
          if (path && p.httpGet?.path !== path)
            problems.push(`${a.label}: ${probe} is not an httpGet on ${path}`);
        }
        if (isSidecar(a)) {
          for (const k of probes) {
            if (probePort(c, c[k]!) !== port) problems.push(`${a.label}: ${k} does not target port ${port}`);
          }
        }
        return [...new Set(problems)];
      }),
  },
  {
    id: 'pattern',
    name: 'the agent runs as the pattern of this file requires',
    check: (m) => {
      const pattern = PATTERNS[m.file];
      if (!pattern) return [];
      const agents = agentsOf(m);
      return agents.length ? agents.flatMap((a) => pattern.check(a)) : ['no agent container'];
    },
  },
  {
    id: 'hardening',
    name: 'every container is hardened (non-root uid/gid/fsGroup, read-only root, no escalation, no capabilities, RuntimeDefault seccomp)',
    check: (m) =>
      podsOf(m).flatMap((pod) => {
        const fsGroup = pod.spec.securityContext?.fsGroup;
        const problems =
          Number.isInteger(fsGroup) && fsGroup! > 0 ? [] : [`${pod.owner}: no non-root fsGroup`];
        for (const pc of containersOf(pod)) {
          const sc = pc.container.securityContext ?? {};
          const fail = (what: string) => problems.push(`${pc.label}: ${what}`);
          if (effective(pc, 'runAsNonRoot') !== true) fail('runAsNonRoot is not true');
          for (const id of ['runAsUser', 'runAsGroup'] as const) {
            const v = effective(pc, id);
            if (!Number.isInteger(v) || v! <= 0) fail(`${id} is not a fixed non-root id`);
          }
          if (sc.readOnlyRootFilesystem !== true) fail('readOnlyRootFilesystem is not true');
          if (sc.allowPrivilegeEscalation !== false) fail('allowPrivilegeEscalation is not false');
          if (sc.privileged) fail('is privileged');
          if (!sc.capabilities?.drop?.includes('ALL')) fail('capabilities do not drop ALL');
          if (sc.capabilities?.add?.length) fail(`adds capabilities ${sc.capabilities.add.join(', ')}`);
          if (effective(pc, 'seccompProfile')?.type !== 'RuntimeDefault')
            fail('seccompProfile is not RuntimeDefault');
        }
        return problems;
      }),
  },
  {
    id: 'resources',
    name: 'every container has cpu and memory requests and a memory limit',
    check: (m) =>
      podsOf(m).flatMap((pod) =>
        containersOf(pod).flatMap((pc) => {
          const r = pc.container.resources;
          return [
            ...(r?.requests?.cpu ? [] : [`${pc.label}: no cpu request`]),
            ...(r?.requests?.memory ? [] : [`${pc.label}: no memory request`]),
            ...(r?.limits?.memory ? [] : [`${pc.label}: no memory limit`]),
          ];
        }),
      ),
  },
  {
    id: 'env',
    name: 'no credential in any container env, and nothing credential-like anywhere in the file',
    check: (m) => {
      const problems: string[] = [];
      for (const pc of podsOf(m).flatMap(containersOf)) {
        for (const e of pc.container.env ?? []) {
          if (SECRET_NAME.test(e.name))
            problems.push(`${pc.label}: env ${e.name} (a secret belongs in a file)`);
          if (typeof e.value === 'string' && looksLikeCredential(e.value)) {
            problems.push(`${pc.label}: env ${e.name} has a credential-like value`);
          }
          if (e.valueFrom?.secretKeyRef) problems.push(`${pc.label}: env ${e.name} comes from a Secret`);
        }
        for (const f of pc.container.envFrom ?? []) {
          if (f.secretRef) problems.push(`${pc.label}: envFrom a Secret`);
        }
      }
      for (const [i, d] of m.docs.entries()) {
        for (const [path, s] of strings(d, `document ${i + 1} (${d.kind})`)) {
          if (looksLikeCredential(s)) problems.push(`${path} looks like a credential`);
        }
      }
      return problems;
    },
  },
  {
    id: 'credentials',
    name: 'the app credentials are files from a Secret in this file (read-only, mode 0400/0440), not env',
    check: (m) =>
      agentsOf(m).flatMap((a) => {
        if (!a.config) return [];
        const files =
          'app' in a.config.auth
            ? [a.config.auth.app.client_id_file, a.config.auth.app.client_secret_file]
            : [a.config.auth.token_file];
        const problems: string[] = [];
        for (const file of files) {
          const at = mountFor(a.pod.spec, a.container, file);
          const secret = at?.volume?.secret;
          if (!at || !secret) {
            problems.push(`${a.label}: ${file} is not a file from a Secret volume`);
            continue;
          }
          if (at.mount.readOnly !== true)
            problems.push(`${a.label}: ${at.mount.name} is not mounted read-only`);
          const mode = secret.defaultMode;
          if (mode === undefined || (mode & 0o037) !== 0) {
            problems.push(`${a.label}: volume ${at.mount.name} needs defaultMode 0400 (or 0440)`);
          }
          const doc = find(m, 'Secret', secret.secretName);
          const key = keyFor(secret.items, at.rel);
          if (!doc) problems.push(`Secret ${secret.secretName} is not in ${m.file}`);
          else if (key === undefined || !(key in (doc.stringData ?? {}) || key in (doc.data ?? {}))) {
            problems.push(`Secret ${secret.secretName} has no key for ${file}`);
          }
        }
        if (!a.pod.spec.securityContext?.fsGroup) {
          problems.push(`${a.pod.owner}: without fsGroup a non-root agent cannot read a 0400 Secret file`);
        }
        return [...new Set(problems)];
      }),
  },
  {
    id: 'service-account',
    name: 'pods do not mount a service account token',
    check: (m) =>
      podsOf(m)
        .filter((pod) => pod.spec.automountServiceAccountToken !== false)
        .map((pod) => `${pod.owner}: automountServiceAccountToken is not false`),
  },
];

// ---- the tests ----

test('deploy/kubernetes has the three example patterns', () => {
  assert.deepEqual(
    Object.keys(PATTERNS).filter((f) => !FILES.includes(f)),
    [],
  );
});

for (const m of MANIFESTS) {
  describe(`deploy/kubernetes/${m.file}`, () => {
    for (const rule of RULES) {
      const name = rule.id === 'pattern' ? (PATTERNS[m.file]?.name ?? rule.name) : rule.name;
      test(name, () => {
        assert.deepEqual(rule.check(m), []);
      });
    }
  });
}

describe('deploy/docker/Dockerfile', () => {
  const text = existsSync(DOCKERFILE) ? readFileSync(DOCKERFILE, 'utf8') : '';
  const lines = text
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
  const instr = (name: string) => lines.filter((l) => l.toUpperCase().startsWith(`${name} `));

  test('exists', () => assert.ok(existsSync(DOCKERFILE)));

  test('builds on node:24 (every stage, the final one included)', () => {
    const froms = instr('FROM').map((l) => l.split(/\s+/).filter((w) => !w.startsWith('--')));
    assert.ok(froms.length, 'no FROM');
    const stages = new Set<string>();
    for (const [, image, as, stage] of froms) {
      assert.ok(image && (/^node:24([-.]|$)/.test(image) || stages.has(image)), `FROM ${image}`);
      if (as?.toUpperCase() === 'AS' && stage) stages.add(stage);
    }
    assert.match(froms.at(-1)![1]!, /^node:24([-.]|$)/);
  });

  test('runs as a numeric non-root USER (so runAsNonRoot can verify it)', () => {
    const user = instr('USER').at(-1)?.split(/\s+/)[1];
    assert.ok(user, 'no USER');
    const uid = user.split(':')[0]!;
    assert.match(uid, /^\d+$/);
    assert.ok(Number(uid) > 0, `USER ${user} is root`);
  });

  test('installs production dependencies only and runs bin/strongroom.js with the image Node', () => {
    assert.ok(
      instr('RUN').some((l) => /npm ci\b.*--omit=dev/.test(l)),
      'npm ci --omit=dev',
    );
    // "type": "module" in package.json makes bin/strongroom.js and the sources ESM
    assert.ok(
      instr('COPY').some((l) => /\bpackage\.json\b/.test(l) && !/--from=/.test(l)),
      'package.json in the final image',
    );
    assert.deepEqual(JSON.parse(instr('ENTRYPOINT').at(-1)!.slice('ENTRYPOINT'.length)), [
      'node',
      '/app/bin/strongroom.js',
    ]);
  });

  test('.dockerignore keeps node_modules and .git out, and bin, src and package*.json in', () => {
    const ignore = readFileSync(join(ROOT, '.dockerignore'), 'utf8')
      .split('\n')
      .map((l) => l.trim());
    for (const p of ['node_modules', '.git']) assert.ok(ignore.includes(p), p);
    for (const p of ['bin', 'src', 'package.json', 'package-lock.json', '*.json', '*']) {
      assert.ok(!ignore.includes(p) && !ignore.includes(`/${p}`), p);
    }
  });
});

// ---- the rules catch broken manifests ----

function manifest(file: string): Manifest {
  const m = MANIFESTS.find((x) => x.file === file);
  assert.ok(m, `${file} is missing`);
  return { ...m, docs: structuredClone(m.docs) };
}
const deployment = (m: Manifest) => m.docs.find((d) => d.kind === 'Deployment')!.spec!.template!.spec!;
const agent = (m: Manifest) => agentsOf(m)[0]!.container;
const app = (m: Manifest) => deployment(m).containers!.find((c) => configPathOf(c) === undefined)!;
const volume = (m: Manifest, name: string) => deployment(m).volumes!.find((v) => v.name === name)!;
const editAgentYaml = (m: Manifest, edit: (text: string) => string) => {
  const cm = m.docs.find((d) => d.kind === 'ConfigMap')!;
  cm.data!['agent.yaml'] = edit(String(cm.data!['agent.yaml']));
};
// built at run time so this file holds no key-shaped literal of its own
const FAKE_KEY = ['sk', 'proj', 'x'.repeat(40)].join('-');

const BREAKAGES: { name: string; file: string; rule: string; breakIt(m: Manifest): void }[] = [
  {
    name: 'a document without metadata.name',
    file: 'sidecar.yaml',
    rule: 'parse',
    breakIt(m) {
      delete m.docs[0]!.metadata;
    },
  },
  {
    name: 'an unknown key in agent.yaml',
    file: 'sidecar.yaml',
    rule: 'config',
    breakIt(m) {
      editAgentYaml(m, (t) => `${t}bogus: true\n`);
    },
  },
  {
    name: 'agent.yaml without vault.addrs',
    file: 'init-container.yaml',
    rule: 'config',
    breakIt(m) {
      editAgentYaml(m, (t) => t.replace(/vault:\n(\s+.*\n)+?(?=auth:)/, ''));
    },
  },
  {
    name: 'the config volume naming a ConfigMap that is not in the file',
    file: 'exec-wrapper.yaml',
    rule: 'config',
    breakIt(m) {
      volume(m, 'agent-config').configMap!.name = 'typo';
    },
  },
  {
    name: 'a template rendered outside the shared volume',
    file: 'sidecar.yaml',
    rule: 'shared-volume',
    breakIt(m) {
      editAgentYaml(m, (t) => t.replace('/run/strongroom/app.env', '/var/tmp/app.env'));
    },
  },
  {
    name: 'a disk-backed emptyDir for the rendered secrets',
    file: 'init-container.yaml',
    rule: 'shared-volume',
    breakIt(m) {
      delete volume(m, 'secrets').emptyDir!.medium;
    },
  },
  {
    name: 'the app mounting the rendered secrets writable',
    file: 'sidecar.yaml',
    rule: 'shared-volume',
    breakIt(m) {
      delete app(m).volumeMounts!.find((v) => v.name === 'secrets')!.readOnly;
    },
  },
  {
    name: 'the app not mounting the rendered secrets',
    file: 'init-container.yaml',
    rule: 'shared-volume',
    breakIt(m) {
      app(m).volumeMounts = app(m).volumeMounts!.filter((v) => v.name !== 'secrets');
    },
  },
  {
    name: 'a readiness probe on another port',
    file: 'sidecar.yaml',
    rule: 'probes',
    breakIt(m) {
      agent(m).readinessProbe!.httpGet!.port = 8080;
    },
  },
  {
    name: 'listen.http on loopback',
    file: 'sidecar.yaml',
    rule: 'probes',
    breakIt(m) {
      editAgentYaml(m, (t) => t.replace('0.0.0.0:8211', '127.0.0.1:8211'));
    },
  },
  {
    name: 'a sidecar without a startup probe',
    file: 'sidecar.yaml',
    rule: 'probes',
    breakIt(m) {
      delete agent(m).startupProbe;
    },
  },
  {
    name: 'the sidecar as a plain init container',
    file: 'sidecar.yaml',
    rule: 'pattern',
    breakIt(m) {
      delete agent(m).restartPolicy;
    },
  },
  {
    name: 'the init container without --once',
    file: 'init-container.yaml',
    rule: 'pattern',
    breakIt(m) {
      agent(m).args = agent(m).args!.filter((x) => x !== '--once');
    },
  },
  {
    name: 'an exec grace longer than the pod termination grace period',
    file: 'exec-wrapper.yaml',
    rule: 'pattern',
    breakIt(m) {
      editAgentYaml(m, (t) => t.replace('grace: 20s', 'grace: 60s'));
    },
  },
  {
    name: 'no readOnlyRootFilesystem on the agent',
    file: 'sidecar.yaml',
    rule: 'hardening',
    breakIt(m) {
      delete agent(m).securityContext!.readOnlyRootFilesystem;
    },
  },
  {
    name: 'capabilities not dropped in the app',
    file: 'init-container.yaml',
    rule: 'hardening',
    breakIt(m) {
      delete app(m).securityContext!.capabilities;
    },
  },
  {
    name: 'a container running as root',
    file: 'exec-wrapper.yaml',
    rule: 'hardening',
    breakIt(m) {
      agent(m).securityContext!.runAsUser = 0;
    },
  },
  {
    name: 'no seccomp profile',
    file: 'sidecar.yaml',
    rule: 'hardening',
    breakIt(m) {
      delete deployment(m).securityContext!.seccompProfile;
    },
  },
  {
    name: 'no memory limit on the agent',
    file: 'init-container.yaml',
    rule: 'resources',
    breakIt(m) {
      delete agent(m).resources!.limits;
    },
  },
  {
    name: 'an API key as a literal env value',
    file: 'sidecar.yaml',
    rule: 'env',
    breakIt(m) {
      app(m).env ??= [];
      app(m).env!.push({ name: 'OPENAI_API_KEY', value: FAKE_KEY });
    },
  },
  {
    name: 'a key-shaped value under a harmless env name',
    file: 'exec-wrapper.yaml',
    rule: 'env',
    breakIt(m) {
      agent(m).env!.push({ name: 'OPENAI', value: FAKE_KEY });
    },
  },
  {
    name: 'a *_TOKEN variable even from a Secret',
    file: 'init-container.yaml',
    rule: 'env',
    breakIt(m) {
      app(m).env = [{ name: 'STRONGROOM_TOKEN', valueFrom: { secretKeyRef: { name: 'x', key: 'y' } } }];
    },
  },
  {
    name: 'a real-looking client secret in the Secret',
    file: 'sidecar.yaml',
    rule: 'env',
    breakIt(m) {
      m.docs.find((d) => d.kind === 'Secret')!.stringData!['client-secret'] = `srs_${'a'.repeat(43)}`;
    },
  },
  {
    name: 'the client secret read from the shared emptyDir',
    file: 'sidecar.yaml',
    rule: 'credentials',
    breakIt(m) {
      editAgentYaml(m, (t) =>
        t.replace('/etc/strongroom-credentials/client-secret', '/run/strongroom/client-secret'),
      );
    },
  },
  {
    name: 'a world-readable credentials volume',
    file: 'exec-wrapper.yaml',
    rule: 'credentials',
    breakIt(m) {
      volume(m, 'app-credentials').secret!.defaultMode = 0o644;
    },
  },
  {
    name: 'the credentials Secret missing from the file',
    file: 'init-container.yaml',
    rule: 'credentials',
    breakIt(m) {
      m.docs = m.docs.filter((d) => d.kind !== 'Secret');
    },
  },
  {
    name: 'a mounted service account token',
    file: 'sidecar.yaml',
    rule: 'service-account',
    breakIt(m) {
      delete deployment(m).automountServiceAccountToken;
    },
  },
];

describe('the rules notice a broken manifest', () => {
  for (const b of BREAKAGES) {
    test(`${b.file} with ${b.name}`, () => {
      const rule = RULES.find((r) => r.id === b.rule);
      assert.ok(rule, `no rule ${b.rule}`);
      const m = manifest(b.file);
      assert.deepEqual(rule.check(m), [], 'the unbroken manifest passes');
      b.breakIt(m);
      assert.notDeepEqual(rule.check(m), [], `"${rule.name}" did not notice`);
    });
  }
});
