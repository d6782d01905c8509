import * as api from '../../api/v1.ts';
import { implement } from '../../contract/operation.ts';
import { StrongroomError } from '../../errors/errors.ts';
import type { Clock } from '../../lib/clock.ts';
import { article, guessProviders } from '../provider-catalog.ts';
import { fieldsFrom } from './fields.ts';
import { enc } from './records.ts';
import { secretResource } from './resources.ts';
import { readValue, type SecretWriter, secret } from './secret-store.ts';

/** Operations that change a secret: write, rollback, delete, destroy, restore (each tells watchers). */
export function secretWriteOperations(writer: SecretWriter, clock: Clock) {
  const { appendVersion, changing } = writer;
  const iso = () => new Date(clock.now()).toISOString();
  return {
    writeSecret: implement(api.SecretWrite, {
      action: 'secret.write',
      auth: 'token',
      resource: secretResource,
      async handle(_ctx, i) {
        // the wire schema's maxLength counts characters; the limit is on UTF-8 bytes
        const bytes = Buffer.byteLength(i.value, 'utf8');
        if (bytes > api.MAX_SECRET_VALUE_BYTES) {
          throw new StrongroomError(
            'validation_failed',
            `a secret value may be at most ${api.MAX_SECRET_VALUE_BYTES} bytes of UTF-8; this one is ${bytes}`,
          );
        }
        const fields = fieldsFrom(i);
        return changing(async (tx, changed) => {
          const out = await appendVersion(tx, i, i.value, {
            source: 'write',
            fields,
            ...(i.metadata === undefined ? {} : { metadata: i.metadata }),
            ...(i.cas === undefined ? {} : { cas: i.cas }),
            ...(i.force ? { force: true } : {}),
          });
          changed({ project: i.project, env: i.env, name: i.name, kind: 'write', version: out.version });
          const guessed = i.provider === undefined ? guessProviders(i.value) : [];
          return guessed.length === 1
            ? {
                ...out,
                hint: `this looks like ${article(guessed[0]!)} ${guessed[0]} key: set provider to track its format and rotation`,
              }
            : out;
        });
      },
    }),

    rollbackSecret: implement(api.SecretRollback, {
      action: 'secret.rollback',
      auth: 'token',
      resource: secretResource,
      async handle(_ctx, i) {
        return changing(async (tx, changed) => {
          const rec = await secret(tx, i);
          if (!rec.versions.some((v) => v.version === i.version)) {
            throw new StrongroomError(
              'version_not_found',
              `${i.project}/${i.env}/${i.name} has no version ${i.version}`,
            );
          }
          const value = await readValue(tx, `${i.project}/${i.env}/${i.name}`, i.version);
          const out = await appendVersion(tx, i, value, { source: 'rollback', from: i.version });
          changed({ project: i.project, env: i.env, name: i.name, kind: 'rollback', version: out.version });
          return { ...out, rolled_back_from: i.version };
        });
      },
    }),

    deleteSecret: implement(api.SecretDelete, {
      action: 'secret.delete',
      auth: 'token',
      resource: secretResource,
      async handle(_ctx, i) {
        return changing(async (tx, changed) => {
          const rec = { ...(await secret(tx, i, { allowDeleted: true })) };
          if (rec.deleted_at === null) {
            rec.deleted_at = iso();
            await tx.put(`meta/${i.project}/${i.env}/${i.name}`, enc(rec));
            changed({
              project: i.project,
              env: i.env,
              name: i.name,
              kind: 'delete',
              version: rec.current_version,
            });
          }
          return { name: rec.name, deleted_at: rec.deleted_at, destroyed: false };
        });
      },
    }),

    destroySecret: implement(api.SecretDestroy, {
      action: 'secret.destroy',
      auth: 'token',
      resource: secretResource,
      async handle(_ctx, i) {
        return changing(async (tx, changed) => {
          const rec = await secret(tx, i, { allowDeleted: true });
          const path = `${i.project}/${i.env}/${i.name}`;
          for (const p of await tx.list(`data/${path}/`)) await tx.delete(p);
          await tx.delete(`meta/${path}`);
          changed({
            project: i.project,
            env: i.env,
            name: i.name,
            kind: 'destroy',
            version: rec.current_version,
          });
          return { name: rec.name, deleted_at: iso(), destroyed: true };
        });
      },
    }),

    restoreSecret: implement(api.SecretRestore, {
      action: 'secret.restore',
      auth: 'token',
      resource: secretResource,
      async handle(_ctx, i) {
        return changing(async (tx, changed) => {
          const rec = { ...(await secret(tx, i, { allowDeleted: true })), deleted_at: null };
          await tx.put(`meta/${i.project}/${i.env}/${i.name}`, enc(rec));
          changed({
            project: i.project,
            env: i.env,
            name: i.name,
            kind: 'restore',
            version: rec.current_version,
          });
          return { name: rec.name, version: rec.current_version };
        });
      },
    }),
  };
}
