import { type Static, Type } from 'typebox';
import { op } from './op.ts';

/**
 * Wire contract of root-token generation (docs/seal.md#a-new-root-token-operator-generate-root), on
 * Vault's `sys/generate-root` paths: a quorum of key holders (unseal keys of a Shamir seal, recovery
 * keys of an HSM seal) makes a new root token, handed over XOR-ed with a one-time pad only the starter
 * holds, so whoever gives the last share does not see it.
 */
const Strict = { additionalProperties: false } as const;

export const GenerateRootStartRequest = Type.Object(
  {
    /** A one-time pad of `otp_length` characters; omitted, the server makes one and answers it once. */
    otp: Type.Optional(Type.String({ minLength: 1, maxLength: 128, pattern: '^[A-Za-z0-9]+$' })),
  },
  Strict,
);
export type GenerateRootStartRequest = Static<typeof GenerateRootStartRequest>;

export const GenerateRootUpdateRequest = Type.Object(
  {
    key: Type.String({ minLength: 1, maxLength: 200 }),
    nonce: Type.String({ minLength: 1, maxLength: 64 }),
  },
  Strict,
);
export type GenerateRootUpdateRequest = Static<typeof GenerateRootUpdateRequest>;

const GenerateRootStatus = Type.Object({
  started: Type.Boolean(),
  nonce: Type.String(),
  progress: Type.Integer(),
  required: Type.Integer(),
  complete: Type.Boolean(),
  /** base64 of the new root token XOR the one-time pad, once complete (decode: `operator generate-root --decode`). */
  encoded_token: Type.String(),
  /** Vault's older name for encoded_token. */
  encoded_root_token: Type.String(),
  otp_length: Type.Integer(),
  /** The one-time pad the server made, in the answer that started the attempt only. */
  otp: Type.String(),
  pgp_fingerprint: Type.String(),
});
export type GenerateRootStatus = Static<typeof GenerateRootStatus>;

export const GenerateRootRead = op()('sys.generate-root.read', GenerateRootStatus);
export const GenerateRootStart = op<GenerateRootStartRequest>()(
  'sys.generate-root.start',
  GenerateRootStatus,
);
export const GenerateRootCancel = op()('sys.generate-root.cancel', GenerateRootStatus);
export const GenerateRootUpdate = op<GenerateRootUpdateRequest>()(
  'sys.generate-root.update',
  GenerateRootStatus,
);
