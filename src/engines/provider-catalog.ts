/**
 * The LLM providers Strongroom knows: what their keys look like (so a value
 * pasted under the wrong provider is caught), where their key documentation
 * is, and how their keys can be rotated. Formats are deliberately a little
 * loose on length (providers change them) and strict on prefixes and alphabet.
 */
export interface ProviderInfo {
  id: string;
  name: string;
  /** Patterns a key of this provider matches (any one). */
  formats: { label: string; pattern: RegExp }[];
  docs: string;
  /** 'api': Strongroom can mint and delete keys through the provider's API; 'manual': the operator supplies new keys. */
  rotation: 'api' | 'manual';
  /** For 'api' rotation: the adapter's id. */
  adapter?: string;
}

export const PROVIDERS: readonly ProviderInfo[] = [
  {
    id: 'openai',
    name: 'OpenAI',
    formats: [
      { label: 'project key (sk-proj-…)', pattern: /^sk-proj-[A-Za-z0-9_-]{20,300}$/ },
      { label: 'service account key (sk-svcacct-…)', pattern: /^sk-svcacct-[A-Za-z0-9_-]{20,300}$/ },
      { label: 'admin key (sk-admin-…)', pattern: /^sk-admin-[A-Za-z0-9_-]{20,300}$/ },
      { label: 'legacy user key (sk-…)', pattern: /^sk-[A-Za-z0-9]{32,64}$/ },
    ],
    docs: 'https://platform.openai.com/docs/api-reference/authentication',
    rotation: 'api',
    adapter: 'openai',
  },
  {
    id: 'anthropic',
    name: 'Anthropic',
    formats: [
      { label: 'API key (sk-ant-api03-…)', pattern: /^sk-ant-api\d{2}-[A-Za-z0-9_-]{80,120}$/ },
      { label: 'admin key (sk-ant-admin01-…)', pattern: /^sk-ant-admin\d{2}-[A-Za-z0-9_-]{80,120}$/ },
    ],
    docs: 'https://docs.anthropic.com/en/api/getting-started#authentication',
    rotation: 'manual',
  },
  {
    id: 'azure-openai',
    name: 'Azure OpenAI',
    formats: [
      { label: '32 hexadecimal characters', pattern: /^[0-9a-f]{32}$/ },
      { label: '84-character key', pattern: /^[A-Za-z0-9]{84}$/ },
    ],
    docs: 'https://learn.microsoft.com/azure/ai-services/openai/reference#authentication',
    rotation: 'manual',
  },
  {
    id: 'google',
    name: 'Google AI (Gemini)',
    formats: [{ label: 'API key (AIza…)', pattern: /^AIza[0-9A-Za-z_-]{35}$/ }],
    docs: 'https://ai.google.dev/gemini-api/docs/api-key',
    rotation: 'manual',
  },
  {
    id: 'mistral',
    name: 'Mistral AI',
    formats: [{ label: '32 letters and digits', pattern: /^[A-Za-z0-9]{32}$/ }],
    docs: 'https://docs.mistral.ai/getting-started/quickstart/',
    rotation: 'manual',
  },
  {
    id: 'cohere',
    name: 'Cohere',
    formats: [{ label: '40 letters and digits', pattern: /^[A-Za-z0-9]{40}$/ }],
    docs: 'https://docs.cohere.com/reference/about',
    rotation: 'manual',
  },
  {
    id: 'groq',
    name: 'Groq',
    formats: [{ label: 'API key (gsk_…)', pattern: /^gsk_[A-Za-z0-9]{48,56}$/ }],
    docs: 'https://console.groq.com/docs/quickstart',
    rotation: 'manual',
  },
  {
    id: 'openrouter',
    name: 'OpenRouter',
    formats: [{ label: 'API key (sk-or-v1-…)', pattern: /^sk-or-v1-[0-9a-f]{64}$/ }],
    docs: 'https://openrouter.ai/docs/api-reference/authentication',
    rotation: 'api',
    adapter: 'openrouter',
  },
  {
    id: 'aws-bedrock',
    name: 'Amazon Bedrock',
    formats: [
      { label: 'Bedrock API key (ABSK…)', pattern: /^ABSK[A-Za-z0-9+/=]{40,400}$/ },
      { label: 'AWS access key id (AKIA…/ASIA…)', pattern: /^(AKIA|ASIA)[0-9A-Z]{16}$/ },
    ],
    docs: 'https://docs.aws.amazon.com/bedrock/latest/userguide/api-keys.html',
    rotation: 'manual',
  },
  {
    id: 'huggingface',
    name: 'Hugging Face',
    formats: [{ label: 'access token (hf_…)', pattern: /^hf_[A-Za-z0-9]{30,40}$/ }],
    docs: 'https://huggingface.co/docs/hub/security-tokens',
    rotation: 'manual',
  },
  {
    id: 'deepseek',
    name: 'DeepSeek',
    formats: [{ label: 'API key (sk-…, 32 hex)', pattern: /^sk-[0-9a-f]{32}$/ }],
    docs: 'https://api-docs.deepseek.com/',
    rotation: 'manual',
  },
  {
    id: 'xai',
    name: 'xAI',
    formats: [{ label: 'API key (xai-…)', pattern: /^xai-[A-Za-z0-9]{60,100}$/ }],
    docs: 'https://docs.x.ai/docs/overview',
    rotation: 'manual',
  },
  {
    id: 'together',
    name: 'Together AI',
    formats: [
      { label: 'API key (tgp_v1_…)', pattern: /^tgp_v1_[A-Za-z0-9_-]{40,60}$/ },
      { label: 'legacy 64 hex', pattern: /^[0-9a-f]{64}$/ },
    ],
    docs: 'https://docs.together.ai/reference/authentication-1',
    rotation: 'manual',
  },
  {
    id: 'perplexity',
    name: 'Perplexity',
    formats: [{ label: 'API key (pplx-…)', pattern: /^pplx-[A-Za-z0-9]{40,60}$/ }],
    docs: 'https://docs.perplexity.ai/guides/getting-started',
    rotation: 'manual',
  },
  {
    id: 'other',
    name: 'Other (no format check)',
    formats: [{ label: 'any value', pattern: /^[\s\S]*$/ }],
    docs: 'https://github.com/strongroom/strongroom/blob/main/docs/providers.md',
    rotation: 'manual',
  },
];

const BY_ID = new Map(PROVIDERS.map((p) => [p.id, p]));

export function provider(id: string): ProviderInfo | undefined {
  return BY_ID.get(id);
}

/** Undefined when `value` looks like a key of `providerId`, else a message saying what was expected. */
export function formatProblem(providerId: string, value: string): string | undefined {
  const p = BY_ID.get(providerId);
  if (!p) return undefined;
  if (p.formats.some((f) => f.pattern.test(value))) return undefined;
  return `the value does not look like ${article(p.name)} ${p.name} key (expected ${p.formats.map((f) => f.label).join(' or ')}; see ${p.docs}); pass force to store it anyway`;
}

/** Providers whose key format a value matches (used to suggest the right one). */
export function guessProviders(value: string): string[] {
  return PROVIDERS.filter((p) => p.id !== 'other' && p.formats.some((f) => f.pattern.test(value))).map(
    (p) => p.id,
  );
}

/** 'a' or 'an' before a provider name (by its sound: "an OpenAI key", "a Groq key"). */
export function article(word: string): 'a' | 'an' {
  return /^[aeiouAEIOU]|^(xAI|X)/.test(word) ? 'an' : 'a';
}
