import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { Enums, Models, Serialize, Spec, Validation } from '@cyclonedx/cyclonedx-library';
import { PackageURL } from 'packageurl-js';
import { parse as parseYaml } from 'yaml';
import { DEFAULT_IGNORE, type Serialization } from '../../api/model-signing.ts';
import { hashModel } from './files.ts';

/**
 * An AI SBOM of a model directory (docs/sbom.md): CycloneDX 1.6 JSON built with the CycloneDX library
 * and validated against the CycloneDX schema. The model is a `machine-learning-model` component with a
 * model card (from the Hugging Face model card's front matter, `config.json` and GGUF/safetensors
 * headers), its files are `file` components with their SHA-256, datasets are `data` components, and the
 * libraries come from package-lock.json, requirements.txt, poetry.lock and pyproject.toml.
 */

const WEIGHTS = /\.(safetensors|gguf|bin|pt|pth|ckpt|onnx|h5|pkl|pickle)$/i;
const SERIALIZATION: Serialization = {
  method: 'files',
  hash_type: 'sha256',
  allow_symlinks: false,
  ignore_paths: [...DEFAULT_IGNORE, 'sbom.cdx.json'],
};

async function readText(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/** The YAML front matter of a Hugging Face model card (README.md), if any. */
function modelCardMeta(readme: string | undefined): Record<string, unknown> {
  const m = readme ? /^---\r?\n([\s\S]*?)\r?\n---/.exec(readme) : null;
  if (!m) return {};
  try {
    const v = parseYaml(m[1]!) as unknown;
    return v && typeof v === 'object' ? (v as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}

const list = (v: unknown): string[] =>
  Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : typeof v === 'string' ? [v] : [];

/** `general.architecture` and friends from a GGUF file's header (key/value metadata, strings only). */
async function ggufMeta(path: string): Promise<Record<string, string>> {
  const fh = await (await import('node:fs/promises')).open(path);
  try {
    const { buffer } = await fh.read({ buffer: Buffer.alloc(64 * 1024), position: 0 });
    if (buffer.subarray(0, 4).toString() !== 'GGUF') return {};
    const out: Record<string, string> = {};
    let o = 4 + 4 + 8; // magic, version, tensor count
    const count = Number(buffer.readBigUInt64LE(o));
    o += 8;
    const str = () => {
      const n = Number(buffer.readBigUInt64LE(o));
      o += 8;
      const s = buffer.subarray(o, o + n).toString('utf8');
      o += n;
      return s;
    };
    for (let n = 0; n < Math.min(count, 64) && o < buffer.length - 16; n++) {
      const key = str();
      const type = buffer.readUInt32LE(o);
      o += 4;
      if (type !== 8) break; // only leading string values are read (general.*); stop at the first other type
      out[key] = str();
    }
    return out;
  } catch {
    return {};
  } finally {
    await fh.close();
  }
}

/** `__metadata__` of a safetensors file's JSON header. */
async function safetensorsMeta(path: string): Promise<Record<string, string>> {
  const fh = await (await import('node:fs/promises')).open(path);
  try {
    const { buffer } = await fh.read({ buffer: Buffer.alloc(8), position: 0 });
    const len = Number(buffer.readBigUInt64LE(0));
    if (len <= 0 || len > 16 * 1024 * 1024) return {};
    const { buffer: head } = await fh.read({ buffer: Buffer.alloc(len), position: 8 });
    const meta = (JSON.parse(head.toString('utf8')) as { __metadata__?: Record<string, string> })
      .__metadata__;
    return meta ?? {};
  } catch {
    return {};
  } finally {
    await fh.close();
  }
}

interface Library {
  ecosystem: 'npm' | 'pypi';
  name: string;
  version?: string | undefined;
}

/** Libraries the model's code depends on, from the lock and requirement files found in the directory. */
async function libraries(dir: string): Promise<Library[]> {
  const out: Library[] = [];
  const lock = await readText(join(dir, 'package-lock.json'));
  if (lock) {
    const pkgs =
      (JSON.parse(lock) as { packages?: Record<string, { version?: string; name?: string }> }).packages ?? {};
    for (const [path, p] of Object.entries(pkgs)) {
      if (!path) continue;
      const name = p.name ?? path.slice(path.lastIndexOf('node_modules/') + 'node_modules/'.length);
      out.push({ ecosystem: 'npm', name, version: p.version });
    }
  }
  const reqs = await readText(join(dir, 'requirements.txt'));
  for (const line of reqs?.split('\n') ?? []) {
    const m = /^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*(?:==\s*([A-Za-z0-9.+!_-]+))?/.exec(
      line.replace(/#.*/, ''),
    );
    if (m?.[1]) out.push({ ecosystem: 'pypi', name: m[1].toLowerCase(), version: m[2] });
  }
  const poetry = await readText(join(dir, 'poetry.lock'));
  for (const block of poetry?.split('[[package]]').slice(1) ?? []) {
    const name = /^name\s*=\s*"([^"]+)"/m.exec(block)?.[1];
    const version = /^version\s*=\s*"([^"]+)"/m.exec(block)?.[1];
    if (name) out.push({ ecosystem: 'pypi', name: name.toLowerCase(), version });
  }
  const pyproject = await readText(join(dir, 'pyproject.toml'));
  const deps = pyproject ? /^dependencies\s*=\s*\[([\s\S]*?)\]/m.exec(pyproject)?.[1] : undefined;
  for (const d of deps?.match(/"[^"]+"/g) ?? []) {
    const m = /^"([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?\s*(?:==\s*([A-Za-z0-9.+!_-]+))?/.exec(d);
    if (m?.[1] && !out.some((l) => l.ecosystem === 'pypi' && l.name === m[1]!.toLowerCase())) {
      out.push({ ecosystem: 'pypi', name: m[1].toLowerCase(), version: m[2] });
    }
  }
  return out;
}

/** Builds the SBOM; `validate` checks it against the CycloneDX 1.6 JSON schema (on by default). */
export async function modelSbom(
  dir: string,
  options: { name?: string; validate?: boolean } = {},
): Promise<Record<string, unknown>> {
  const files = await hashModel(dir, SERIALIZATION);
  const card = modelCardMeta(await readText(join(dir, 'README.md')));
  const config = JSON.parse((await readText(join(dir, 'config.json'))) ?? '{}') as Record<string, unknown>;
  const headers: Record<string, string> = {};
  for (const f of files) {
    if (f.name.endsWith('.gguf')) Object.assign(headers, await ggufMeta(join(dir, f.name)));
    else if (f.name.endsWith('.safetensors'))
      Object.assign(headers, await safetensorsMeta(join(dir, f.name)));
  }
  const name =
    options.name ??
    (typeof card.model_name === 'string' ? card.model_name : undefined) ??
    headers['general.name'] ??
    basename(resolve(dir));

  const bom = new Models.Bom();
  bom.serialNumber = `urn:uuid:${crypto.randomUUID()}`;
  const model = new Models.Component(Enums.ComponentType.MachineLearningModel, name, { bomRef: 'model' });
  for (const l of list(card.license)) model.licenses.add(new Models.NamedLicense(l));
  const root = createHash('sha256');
  for (const f of files) root.update(Buffer.from(f.digest, 'hex'));
  model.hashes.set(Enums.HashAlgorithm['SHA-256'], root.digest('hex'));
  for (const f of files) {
    const c = new Models.Component(Enums.ComponentType.File, f.name, { bomRef: `file:${f.name}` });
    c.hashes.set(Enums.HashAlgorithm['SHA-256'], f.digest);
    if (WEIGHTS.test(f.name)) c.properties.add(new Models.Property('strongroom:model:weights', 'true'));
    model.components.add(c);
  }
  for (const base of list(card.base_model))
    model.properties.add(new Models.Property('strongroom:model:base_model', base));
  const sig = await readText(join(dir, 'model.sig'));
  if (sig)
    model.properties.add(
      new Models.Property(
        'strongroom:model:signature_sha256',
        createHash('sha256').update(sig).digest('hex'),
      ),
    );
  bom.metadata.component = model;
  const datasets = list(card.datasets);
  for (const d of datasets)
    bom.components.add(new Models.Component(Enums.ComponentType.Data, d, { bomRef: `data:${d}` }));
  for (const lib of await libraries(dir)) {
    const purl = new PackageURL(
      lib.ecosystem,
      undefined,
      lib.name,
      lib.version ?? undefined,
      undefined,
      undefined,
    );
    bom.components.add(
      new Models.Component(Enums.ComponentType.Library, lib.name, {
        ...(lib.version ? { version: lib.version } : {}),
        purl: purl.toString(),
        bomRef: `lib:${purl.toString()}`,
      }),
    );
  }

  const serializer = new Serialize.JsonSerializer(new Serialize.JSON.Normalize.Factory(Spec.Spec1dot6));
  const json = JSON.parse(serializer.serialize(bom, { sortLists: true })) as Record<string, unknown> & {
    metadata: { component: Record<string, unknown> };
  };
  // the library has no model card yet: the CycloneDX 1.6 `modelCard` is added to the serialized component
  const arch = Array.isArray(config.architectures)
    ? String(config.architectures[0])
    : headers['general.architecture'];
  json.metadata.component.modelCard = {
    modelParameters: {
      ...(typeof card.pipeline_tag === 'string' ? { task: card.pipeline_tag } : {}),
      ...(typeof config.model_type === 'string' ? { architectureFamily: config.model_type } : {}),
      ...(arch ? { modelArchitecture: arch } : {}),
      ...(datasets.length ? { datasets: datasets.map((d) => ({ ref: `data:${d}` })) } : {}),
    },
    ...(typeof card.model_description === 'string'
      ? { considerations: { useCases: [card.model_description] } }
      : {}),
  };
  if (options.validate !== false) {
    const errors = await new Validation.JsonStrictValidator(Spec.Version.v1dot6).validate(
      JSON.stringify(json),
    );
    if (errors)
      throw new Error(
        `the SBOM does not validate against CycloneDX 1.6: ${JSON.stringify(errors).slice(0, 500)}`,
      );
  }
  return json;
}
