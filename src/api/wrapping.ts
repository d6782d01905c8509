import { type Static, Type } from 'typebox';
import { op } from './op.ts';
import { Iso } from './response-schemas.ts';

/** Wire contract of response wrapping (docs/wrapping.md), Vault's `sys/wrapping` paths. */
const Strict = { additionalProperties: false } as const;

/** The request header that asks for a wrapped answer (Vault's `X-Vault-Wrap-TTL` is accepted too). */
export const WRAP_TTL_HEADER = 'x-strongroom-wrap-ttl';
export const VAULT_WRAP_TTL_HEADER = 'x-vault-wrap-ttl';
/** Shortest and longest wrapping TTL, in seconds. */
export const WRAP_TTL_MIN = 1;
export const WRAP_TTL_MAX = 24 * 3600;

/** What the server hands the wrap operation: an answer already serialized by its operation's schema. */
export interface WrapInput {
  /** The JSON answer being wrapped (kept sealed in the barrier; HMAC'd in the audit as any `value`). */
  value: string;
  ttl: number;
  creation_path: string;
}

/** POST /v1/sys/wrapping/unwrap and /lookup: the token in the body, or as the bearer token. */
export const WrappingTokenRequest = Type.Object(
  { token: Type.Optional(Type.String({ minLength: 1, maxLength: 128 })) },
  Strict,
);
export type WrappingTokenRequest = Static<typeof WrappingTokenRequest>;

const WrapInfoSchema = Type.Object({
  wrap_info: Type.Object({
    token: Type.String(),
    /** A handle for audit and lookup, not the token. */
    accessor: Type.String(),
    ttl: Type.Integer(),
    creation_time: Iso,
    creation_path: Type.String(),
  }),
});

/** Whatever the wrapped read answered, exactly. */
const UnwrappedSchema = Type.Object({}, { additionalProperties: true });

const LookupSchema = Type.Object({
  creation_path: Type.String(),
  creation_time: Iso,
  creation_ttl: Type.Integer(),
});

export const WrappingWrap = op<WrapInput>()('wrapping.wrap', WrapInfoSchema);
export const WrappingUnwrap = op<WrappingTokenRequest>()('wrapping.unwrap', UnwrappedSchema);
export const WrappingLookup = op<WrappingTokenRequest>()('wrapping.lookup', LookupSchema);
