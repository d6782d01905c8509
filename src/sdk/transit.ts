import type * as api from '../api/transit.ts';
import type { OutputOf as Out } from '../contract/operation.ts';
import type { Call } from './auth.ts';

const seg = (s: string) => encodeURIComponent(s);
const b64 = (data: Uint8Array | string) => Buffer.from(data).toString('base64');

export type TransitKeyInfo = Out<typeof api.TransitKeyRead>['data'];

/**
 * The transit engine (docs/transit.md): encryption, signatures and HMACs under keys that stay in the
 * vault. Data goes in as bytes or text and comes back as bytes; ciphertexts and signatures are Vault's
 * `vault:vN:…` strings.
 */
export function transitClient(call: Call) {
  const data = async <T>(method: 'GET' | 'POST' | 'DELETE', path: string, body?: unknown) =>
    (await call<{ data: T }>(method, path, body)).data;
  return {
    createKey: (name: string, options: api.TransitKeyCreateRequest = {}) =>
      data<TransitKeyInfo>('POST', `/v1/transit/keys/${seg(name)}`, options),
    readKey: (name: string) => data<TransitKeyInfo>('GET', `/v1/transit/keys/${seg(name)}`),
    listKeys: async () => (await data<{ keys: string[] }>('GET', '/v1/transit/keys')).keys,
    rotateKey: (name: string) => data<TransitKeyInfo>('POST', `/v1/transit/keys/${seg(name)}/rotate`),
    configureKey: (name: string, config: api.TransitKeyConfigRequest) =>
      data<TransitKeyInfo>('POST', `/v1/transit/keys/${seg(name)}/config`, config),
    trimKey: (name: string, minAvailableVersion: number) =>
      data<TransitKeyInfo>('POST', `/v1/transit/keys/${seg(name)}/trim`, {
        min_available_version: minAvailableVersion,
      }),
    /** Deletes a key whose config allows it: everything encrypted under it is lost. */
    deleteKey: (name: string) =>
      call<Out<typeof api.TransitKeyDelete>>('DELETE', `/v1/transit/keys/${seg(name)}`),
    async encrypt(
      name: string,
      plaintext: Uint8Array | string,
      options: {
        context?: Uint8Array | string;
        associatedData?: Uint8Array | string;
        keyVersion?: number;
      } = {},
    ): Promise<{ ciphertext: string; key_version: number }> {
      const r = await data<{ ciphertext: string; key_version: number }>(
        'POST',
        `/v1/transit/encrypt/${seg(name)}`,
        {
          plaintext: b64(plaintext),
          ...(options.context === undefined ? {} : { context: b64(options.context) }),
          ...(options.associatedData === undefined ? {} : { associated_data: b64(options.associatedData) }),
          ...(options.keyVersion === undefined ? {} : { key_version: options.keyVersion }),
        },
      );
      return r;
    },
    async decrypt(
      name: string,
      ciphertext: string,
      options: { context?: Uint8Array | string; associatedData?: Uint8Array | string } = {},
    ): Promise<Buffer> {
      const r = await data<{ plaintext: string }>('POST', `/v1/transit/decrypt/${seg(name)}`, {
        ciphertext,
        ...(options.context === undefined ? {} : { context: b64(options.context) }),
        ...(options.associatedData === undefined ? {} : { associated_data: b64(options.associatedData) }),
      });
      return Buffer.from(r.plaintext, 'base64');
    },
    /** The same plaintext under the key's latest version, without it leaving the vault. */
    rewrap: (name: string, ciphertext: string, options: { context?: Uint8Array | string } = {}) =>
      data<{ ciphertext: string; key_version: number }>('POST', `/v1/transit/rewrap/${seg(name)}`, {
        ciphertext,
        ...(options.context === undefined ? {} : { context: b64(options.context) }),
      }),
    /** A fresh data key, wrapped by the named key; with its plaintext unless `wrapped` only. */
    async dataKey(
      name: string,
      options: { wrapped?: boolean; bits?: 128 | 256 | 512; context?: Uint8Array | string } = {},
    ): Promise<{ plaintext?: Buffer; ciphertext: string; key_version: number }> {
      const r = await data<{ plaintext?: string; ciphertext: string; key_version: number }>(
        'POST',
        `/v1/transit/datakey/${options.wrapped ? 'wrapped' : 'plaintext'}/${seg(name)}`,
        {
          ...(options.bits === undefined ? {} : { bits: options.bits }),
          ...(options.context === undefined ? {} : { context: b64(options.context) }),
        },
      );
      return {
        ciphertext: r.ciphertext,
        key_version: r.key_version,
        ...(r.plaintext === undefined ? {} : { plaintext: Buffer.from(r.plaintext, 'base64') }),
      };
    },
    sign: (
      name: string,
      input: Uint8Array | string,
      options: Omit<api.TransitSignRequest, 'input' | 'batch_input'> = {},
    ) =>
      data<{ signature: string; key_version: number }>('POST', `/v1/transit/sign/${seg(name)}`, {
        ...options,
        input: b64(input),
      }),
    async verify(
      name: string,
      input: Uint8Array | string,
      proof: { signature: string } | { hmac: string },
      options: Omit<api.TransitVerifyRequest, 'input' | 'batch_input' | 'signature' | 'hmac' | 'name'> = {},
    ): Promise<boolean> {
      const r = await data<{ valid: boolean }>('POST', `/v1/transit/verify/${seg(name)}`, {
        ...options,
        ...proof,
        input: b64(input),
      });
      return r.valid;
    },
    hmac: (name: string, input: Uint8Array | string, options: { algorithm?: api.HashAlgorithm } = {}) =>
      data<{ hmac: string; key_version: number }>('POST', `/v1/transit/hmac/${seg(name)}`, {
        input: b64(input),
        ...(options.algorithm === undefined ? {} : { algorithm: options.algorithm }),
      }),
  };
}
