import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import type * as P from 'pkcs11js';
import { StrongroomError } from '../errors/errors.ts';

/**
 * The root key wrapped by an AES-256 key that never leaves a PKCS#11 token (docs/seal.md): AES-GCM
 * inside the HSM (CKM_AES_GCM), a fresh 96-bit IV per wrap, the record's path bound in as AAD. The key
 * is made on the token at `operator init` (CKA_SENSITIVE, not CKA_EXTRACTABLE) unless it exists.
 *
 * Every use opens the library, logs in, does its one operation and finalizes: the HSM is used only to
 * initialise and to unseal, and a token that went away, a PIN that changed or a key that was deleted is
 * seen at the next try, with a message that says which. Uses are serialized, since the library's
 * C_Initialize is once per process.
 */
export interface Pkcs11Settings {
  /** The PKCS#11 module (SoftHSM2: /usr/lib/softhsm/libsofthsm2.so). */
  lib: string;
  token_label: string;
  key_label: string;
  /** The user PIN (from STRONGROOM_HSM_PIN, pin_file, or the file itself). */
  pin?: string | undefined;
  pin_file?: string | undefined;
  /** Make the key on the token at init when it does not exist (default true). */
  generate_key?: boolean | undefined;
}

export interface HsmWrapper {
  /** `iv ‖ ciphertext ‖ tag`, made inside the HSM. */
  wrap(plaintext: Buffer, aad: Buffer, opts?: { create?: boolean }): Promise<Buffer>;
  unwrap(wrapped: Buffer, aad: Buffer): Promise<Buffer>;
  /** Where the key lives, for messages: `token "strongroom", key "strongroom-seal"`. */
  readonly where: string;
  /** Other AES keys on the same token, by label: the transit keys held in the HSM (docs/transit.md). */
  readonly keys: HsmKeys;
}

/** AES-256 keys made and used inside the HSM (CKM_AES_GCM), named by their labels. */
export interface HsmKeys {
  generate(label: string): Promise<void>;
  /** `iv ‖ ciphertext ‖ tag`. */
  encrypt(label: string, plaintext: Buffer, aad: Buffer | undefined): Promise<Buffer>;
  /** The plaintext, or undefined when `data` does not open (tampered, another key): not an HSM failure. */
  decrypt(label: string, data: Buffer, aad: Buffer | undefined): Promise<Buffer | undefined>;
  destroy(label: string): Promise<void>;
}

const IV = 12;
let queue: Promise<unknown> = Promise.resolve();
const require = createRequire(import.meta.url);

function unavailable(message: string, cause?: unknown): StrongroomError {
  return new StrongroomError('hsm_unavailable', message, cause === undefined ? undefined : { cause });
}

/** What a PKCS#11 return code means for the operator. */
function explain(err: unknown, settings: Pkcs11Settings): string {
  const msg = err instanceof Error ? err.message : String(err);
  const code = /CKR_[A-Z_]+/.exec(msg)?.[0] ?? msg.slice(0, 120);
  const hints: Record<string, string> = {
    CKR_PIN_INCORRECT: 'the HSM refused the PIN: check STRONGROOM_HSM_PIN or pin_file',
    CKR_PIN_LOCKED: 'the token’s user PIN is locked: unlock it with the security officer PIN',
    CKR_PIN_LEN_RANGE: 'the HSM refused the PIN (wrong length): check STRONGROOM_HSM_PIN or pin_file',
    CKR_TOKEN_NOT_PRESENT: `the token "${settings.token_label}" is not present`,
    CKR_DEVICE_REMOVED: `the token "${settings.token_label}" was removed`,
    CKR_GENERAL_ERROR: 'the HSM answered CKR_GENERAL_ERROR',
  };
  return hints[code] ?? `the HSM answered ${code}`;
}

export function createHsmWrapper(settings: Pkcs11Settings, readPin: () => Promise<string>): HsmWrapper {
  const where = `token "${settings.token_label}", key "${settings.key_label}"`;
  let pinRefused: string | undefined;

  /**
   * Runs `fn` with a logged-in session, one use at a time in this process. `sealed`: the use is the
   * seal's (its messages say the vault stays sealed).
   */
  function withSession<T>(fn: (m: P.PKCS11, p: typeof P, session: Buffer) => T, sealed = true): Promise<T> {
    const suffix = sealed ? '; the vault stays sealed' : '';
    const run = queue.then(async () => {
      // a refused PIN is not tried again: an HSM locks (some wipe) a token after a few wrong PINs, and
      // anyone may ask a sealed vault to unseal
      if (pinRefused) throw unavailable(`${pinRefused}${suffix} (not tried again until the server restarts)`);
      const pin = await readPin();
      let p: typeof P;
      try {
        p = require('pkcs11js') as typeof P;
      } catch (err) {
        throw unavailable('the pkcs11js module is not installed (npm install)', err);
      }
      const m = new p.PKCS11();
      try {
        m.load(settings.lib);
      } catch (err) {
        throw unavailable(
          `cannot load the PKCS#11 library ${settings.lib}: is the HSM's module installed?`,
          err,
        );
      }
      let initialized = false;
      let step = 'start';
      try {
        m.C_Initialize();
        initialized = true;
        step = 'use';
        const slot = m
          .C_GetSlotList(true)
          .find((s) => m.C_GetTokenInfo(s).label.trim() === settings.token_label);
        if (!slot) {
          const labels = m
            .C_GetSlotList(true)
            .map((s) => JSON.stringify(m.C_GetTokenInfo(s).label.trim()))
            .join(', ');
          throw unavailable(
            `no PKCS#11 token labelled "${settings.token_label}" in ${settings.lib} (tokens present: ${labels || 'none'})${suffix}`,
          );
        }
        const session = m.C_OpenSession(slot, p.CKF_SERIAL_SESSION | p.CKF_RW_SESSION);
        try {
          try {
            m.C_Login(session, p.CKU_USER, pin);
          } catch (err) {
            if (!String(err).includes('CKR_USER_ALREADY_LOGGED_IN')) throw err;
          }
          return fn(m, p, session);
        } finally {
          m.C_CloseSession(session);
        }
      } catch (err) {
        if (err instanceof StrongroomError) throw err;
        if (/CKR_PIN_(INCORRECT|LOCKED|LEN_RANGE|INVALID|EXPIRED)/.test(String(err)))
          pinRefused = explain(err, settings);
        if (step === 'start') {
          throw unavailable(
            `the PKCS#11 library ${settings.lib} could not start (${explain(err, settings)}): is the HSM there? (SoftHSM: does its token directory in SOFTHSM2_CONF exist?)${suffix}`,
            err,
          );
        }
        throw unavailable(`${explain(err, settings)} (token "${settings.token_label}")${suffix}`, err);
      } finally {
        if (initialized) m.C_Finalize();
        m.close();
      }
    });
    queue = run.catch(() => undefined);
    return run;
  }

  function findKey(
    m: P.PKCS11,
    p: typeof P,
    session: Buffer,
    label = settings.key_label,
  ): Buffer | undefined {
    m.C_FindObjectsInit(session, [
      { type: p.CKA_CLASS, value: p.CKO_SECRET_KEY },
      { type: p.CKA_LABEL, value: label },
    ]);
    try {
      const found = m.C_FindObjects(session, 2);
      if (found.length > 1) {
        throw unavailable(`more than one key labelled "${label}" on the token: labels must be unique`);
      }
      return found[0];
    } finally {
      m.C_FindObjectsFinal(session);
    }
  }

  function generateKey(m: P.PKCS11, p: typeof P, session: Buffer, label = settings.key_label): Buffer {
    return m.C_GenerateKey(session, { mechanism: p.CKM_AES_KEY_GEN }, [
      { type: p.CKA_CLASS, value: p.CKO_SECRET_KEY },
      { type: p.CKA_KEY_TYPE, value: p.CKK_AES },
      { type: p.CKA_VALUE_LEN, value: 32 },
      { type: p.CKA_LABEL, value: label },
      { type: p.CKA_TOKEN, value: true },
      { type: p.CKA_PRIVATE, value: true },
      { type: p.CKA_SENSITIVE, value: true },
      { type: p.CKA_EXTRACTABLE, value: false },
      { type: p.CKA_ENCRYPT, value: true },
      { type: p.CKA_DECRYPT, value: true },
      { type: p.CKA_WRAP, value: false },
    ]);
  }

  const gcm = (p: typeof P, iv: Buffer, aad: Buffer) => ({
    mechanism: p.CKM_AES_GCM,
    parameter: { type: p.CK_PARAMS_AES_GCM, iv, aad, ivBits: IV * 8, tagBits: 128 },
  });

  const transitKey = (m: P.PKCS11, p: typeof P, session: Buffer, label: string) => {
    const key = findKey(m, p, session, label);
    if (!key)
      throw unavailable(
        `no key labelled "${label}" on the token "${settings.token_label}" (deleted from the HSM?)`,
      );
    return key;
  };
  const keys: HsmKeys = {
    generate: (label) =>
      withSession((m, p, session) => {
        if (findKey(m, p, session, label))
          throw unavailable(`a key labelled "${label}" is already on the token`);
        generateKey(m, p, session, label);
      }, false),
    encrypt: (label, plaintext, aad) =>
      withSession((m, p, session) => {
        const key = transitKey(m, p, session, label);
        const iv = randomBytes(IV);
        m.C_EncryptInit(session, gcm(p, iv, aad ?? Buffer.alloc(0)), key);
        return Buffer.concat([iv, m.C_Encrypt(session, plaintext, Buffer.alloc(plaintext.length + 16))]);
      }, false),
    decrypt: (label, data, aad) =>
      withSession((m, p, session) => {
        const key = transitKey(m, p, session, label);
        if (data.length < IV + 16) return undefined;
        m.C_DecryptInit(session, gcm(p, data.subarray(0, IV), aad ?? Buffer.alloc(0)), key);
        try {
          return Buffer.from(m.C_Decrypt(session, data.subarray(IV), Buffer.alloc(data.length)));
        } catch {
          // the tag did not verify: the data was changed, or is another key's
          return undefined;
        }
      }, false),
    destroy: (label) =>
      withSession((m, p, session) => {
        const key = findKey(m, p, session, label);
        if (key) m.C_DestroyObject(session, key);
      }, false),
  };

  return {
    where,
    keys,
    wrap(plaintext, aad, opts = {}) {
      return withSession((m, p, session) => {
        let key = findKey(m, p, session);
        if (!key) {
          if (!opts.create || settings.generate_key === false) {
            throw unavailable(
              `no AES key labelled "${settings.key_label}" on the token "${settings.token_label}"`,
            );
          }
          key = generateKey(m, p, session);
        }
        const iv = randomBytes(IV);
        m.C_EncryptInit(session, gcm(p, iv, aad), key);
        const out = m.C_Encrypt(session, plaintext, Buffer.alloc(plaintext.length + 16));
        return Buffer.concat([iv, out]);
      });
    },
    unwrap(wrapped, aad) {
      return withSession((m, p, session) => {
        const key = findKey(m, p, session);
        if (!key) {
          throw unavailable(
            `no AES key labelled "${settings.key_label}" on the token "${settings.token_label}": the key that wraps the root key is gone; the vault stays sealed`,
          );
        }
        m.C_DecryptInit(session, gcm(p, wrapped.subarray(0, IV), aad), key);
        try {
          return Buffer.from(m.C_Decrypt(session, wrapped.subarray(IV), Buffer.alloc(wrapped.length)));
        } catch (err) {
          throw unavailable(
            `the HSM key "${settings.key_label}" does not open this vault's root key (another key with the same label?); the vault stays sealed`,
            err,
          );
        }
      });
    },
  };
}
