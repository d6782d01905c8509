import { type Static, Type } from 'typebox';

/**
 * The `gateway:` section of the server configuration (docs/gateway.md): the
 * AI gateway's own listener, its routes from (provider, model) to upstreams
 * and the vault secrets holding their keys, prices, default limits and the
 * pipeline stages.
 */
const Strict = { additionalProperties: false } as const;
const Duration = Type.Union([
  Type.String({ minLength: 1, maxLength: 32 }),
  Type.Integer({ minimum: 1, maximum: 86400 }),
]);
/** `project/env/NAME` of a vault secret. */
const SecretPath = Type.String({
  minLength: 5,
  maxLength: 400,
  pattern: '^[a-z0-9][a-z0-9-]*/[a-z0-9][a-z0-9-]*/[A-Za-z0-9_.-]+$',
});
const BaseUrl = Type.String({ minLength: 8, maxLength: 2048, pattern: '^https?://[^/?#]+(/[^?#]*)?$' });
const Limits = Type.Object(
  {
    requests_per_minute: Type.Optional(Type.Integer({ minimum: 1, maximum: 10_000_000 })),
    tokens_per_minute: Type.Optional(Type.Integer({ minimum: 1, maximum: 10_000_000_000 })),
    spend: Type.Optional(
      Type.Object(
        {
          usd: Type.Number({ minimum: 0, maximum: 10_000_000 }),
          period: Type.Union([Type.Literal('day'), Type.Literal('month'), Type.Literal('total')]),
        },
        Strict,
      ),
    ),
  },
  Strict,
);

const Upstream = Type.Object(
  {
    base_url: BaseUrl,
    /** Vault secrets holding the provider keys: a pool, used in turn; the next one on 429/5xx. */
    keys: Type.Array(SecretPath, { minItems: 1, maxItems: 32 }),
  },
  Strict,
);

/** A vault elsewhere (docs/gateway-remote.md): the gateway calls it over mTLS with its own SVID. */
const RemoteVault = Type.Object(
  {
    /** The vault's base URL. */
    url: Type.String({ minLength: 9, maxLength: 2048, pattern: '^https://[^/?#]+(/[^?#]*)?$' }),
    /** PEM CA certificates for the vault's TLS certificate (default: the system's). */
    ca_file: Type.Optional(Type.String({ minLength: 1, maxLength: 4096 })),
    /** Where the gateway's X.509-SVID comes from: exactly one of the two. */
    svid: Type.Union([
      /** The agent's Workload API socket (`unix:///path` or a path). */
      Type.Object({ workload_api: Type.String({ minLength: 1, maxLength: 4096 }) }, Strict),
      /** A folder the agent writes the SVID to (svid.pem, svid_key.pem, bundle.pem), re-read on change. */
      Type.Object({ dir: Type.String({ minLength: 1, maxLength: 4096 }) }, Strict),
    ]),
    /** Per-call timeout (default 10 s). */
    timeout: Type.Optional(Duration),
  },
  Strict,
);

export const GatewayConfigSchema = Type.Object(
  {
    listen: Type.String({ minLength: 3, maxLength: 300 }),
    /** Run in front of a remote vault instead of on the vault in this process. */
    vault: Type.Optional(RemoteVault),
    /**
     * With a remote `vault`: host:port of a plain listener for `GET /metrics` and `GET /healthz` only
     * (in process, the gateway's metrics are in the vault's /v1/sys/metrics).
     */
    metrics_listen: Type.Optional(Type.String({ minLength: 3, maxLength: 300 })),
    tls: Type.Optional(
      Type.Object(
        {
          cert_file: Type.String({ minLength: 1 }),
          key_file: Type.String({ minLength: 1 }),
          /** `require`: every caller presents an X.509-SVID; `request` (default): may; `off`: never asked. */
          client_certificates: Type.Optional(
            Type.Union([Type.Literal('require'), Type.Literal('request'), Type.Literal('off')]),
          ),
        },
        Strict,
      ),
    ),
    routes: Type.Array(
      Type.Object(
        {
          /** The provider name policies and budgets see (openai, anthropic, groq, azure-openai, …). */
          provider: Type.String({ minLength: 1, maxLength: 64, pattern: '^[a-z0-9][a-z0-9-]*$' }),
          /** Wire format of the upstream (default: `anthropic` for provider anthropic, else `openai`). */
          api: Type.Optional(Type.Union([Type.Literal('openai'), Type.Literal('anthropic')])),
          /** Model names or globs (`gpt-4o*`) this route serves. */
          models: Type.Array(Type.String({ minLength: 1, maxLength: 200 }), { minItems: 1, maxItems: 200 }),
          ...Upstream.properties,
          /** Tried in order when the primary fails before answering (connection error, 429, 5xx). */
          fallbacks: Type.Optional(Type.Array(Upstream, { maxItems: 8 })),
          timeout: Type.Optional(Duration),
          /** The context window of this route's models, in input tokens (default: gateway.max_input_tokens). */
          max_input_tokens: Type.Optional(Type.Integer({ minimum: 1, maximum: 100_000_000 })),
        },
        Strict,
      ),
      { minItems: 1, maxItems: 500 },
    ),
    /** USD per million tokens, by model name or glob. */
    prices: Type.Optional(
      Type.Record(
        Type.String({ minLength: 1, maxLength: 200 }),
        Type.Object(
          {
            input: Type.Number({ minimum: 0, maximum: 100_000 }),
            output: Type.Number({ minimum: 0, maximum: 100_000 }),
            /** Prompt-cache prices (default 0.1x, 1.25x and 2x `input`, as Anthropic charges). */
            cache_read: Type.Optional(Type.Number({ minimum: 0, maximum: 100_000 })),
            cache_write_5m: Type.Optional(Type.Number({ minimum: 0, maximum: 100_000 })),
            cache_write_1h: Type.Optional(Type.Number({ minimum: 0, maximum: 100_000 })),
          },
          Strict,
        ),
      ),
    ),
    /** Default limits per app, per workload (SPIFFE ID) and per token, on top of each virtual key's own. */
    limits: Type.Optional(
      Type.Object(
        { apps: Type.Optional(Limits), workloads: Type.Optional(Limits), tokens: Type.Optional(Limits) },
        Strict,
      ),
    ),
    /**
     * The output cap of a call whose request sets none (default 4096): sent to the provider as the
     * request's max tokens, and reserved from budgets per choice.
     */
    default_max_output_tokens: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000_000 })),
    /** Input tokens reserved per image or audio block of a request (default 2048): their size is not the body's. */
    reference_tokens: Type.Optional(Type.Integer({ minimum: 0, maximum: 10_000_000 })),
    /**
     * Input tokens reserved for a request whose input the provider assembles itself (an earlier
     * response or conversation, a stored prompt, files, documents, server-side tools): the models'
     * context window (default 1,000,000; set it per route to your models' own).
     */
    max_input_tokens: Type.Optional(Type.Integer({ minimum: 1, maximum: 100_000_000 })),
    /** The longest a caller may take to send its whole request (default 60s); slower ones are disconnected. */
    request_timeout: Type.Optional(Duration),
    /** The longest a call may take, streams included (default 10m); then it is cut and the upstream request cancelled. */
    max_call_duration: Type.Optional(Duration),
    /** Deepest nesting of a request body's JSON (default 64): deeper bodies get 400 `json_too_deep`. */
    max_json_depth: Type.Optional(Type.Integer({ minimum: 2, maximum: 1024 })),
    /** How often (ms) open streams check that their caller's credential is still valid (default 500). */
    revocation_check_ms: Type.Optional(Type.Integer({ minimum: 50, maximum: 60_000 })),
    /** Largest request body (default 4 MiB). */
    max_request_bytes: Type.Optional(Type.Integer({ minimum: 1024, maximum: 64 * 1024 * 1024 })),
    /** Prompt firewall settings (docs/stages.md); absent: the defaults, `false`: off. */
    firewall: Type.Optional(Type.Union([Type.Literal(false), Type.Record(Type.String(), Type.Unknown())])),
    /** Output filter settings (docs/stages.md); the injected key is always redacted. */
    output_filter: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
    /** Sign the pipeline's provenance chain (`x-strongroom-provenance`) with the gateway's SVID. Default true. */
    provenance: Type.Optional(Type.Boolean()),
    /**
     * The gateway's SPIFFE ID (default spiffe://TRUST_DOMAIN/strongroom/gateway); its SVID comes from this
     * server's CA. With a remote `vault`, the ID is the one of the SVID from `vault.svid`.
     */
    spiffe_id: Type.Optional(Type.String({ minLength: 10, maxLength: 2048, pattern: '^spiffe://' })),
    /** Stages running as separate services, called in order over mTLS after the in-process ones. */
    remote_stages: Type.Optional(
      Type.Array(
        Type.Object(
          {
            name: Type.String({ minLength: 1, maxLength: 64 }),
            url: Type.String({ minLength: 9, maxLength: 2048, pattern: '^https://' }),
            spiffe_id: Type.String({ minLength: 10, maxLength: 2048, pattern: '^spiffe://' }),
          },
          Strict,
        ),
        { maxItems: 8 },
      ),
    ),
    /** Record prompt and completion text in the audit log (HMAC'd). Default false. */
    audit_content: Type.Optional(Type.Boolean()),
    /** Anomaly detection (docs/gateway.md#anomalies). */
    anomaly: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
  },
  Strict,
);

export type GatewayConfig = Static<typeof GatewayConfigSchema>;
