import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Resource } from '../../contract/resource.ts';
import { describeStep } from './describe.ts';

test('a resource goes to the describer of its type only; others pass through unchanged', async () => {
  const seen: string[] = [];
  const describe = describeStep(
    new Map([
      [
        'Secret',
        async (r: Resource) => {
          seen.push(r.id);
          return { ...r, attrs: { ...r.attrs, production: true } };
        },
      ],
    ]),
  );
  const secret: Resource = { type: 'Secret', id: 'demo/prod/KEY', attrs: { name: 'KEY' } };
  assert.deepEqual(await describe(secret), { ...secret, attrs: { name: 'KEY', production: true } });
  const model: Resource = { type: 'Model', id: 'gpt-4o', attrs: { provider: 'openai' } };
  assert.equal(await describe(model), model);
  assert.deepEqual(seen, ['demo/prod/KEY']);
});

test('a describer that refuses (a malformed name) refuses the request before authorization', async () => {
  const describe = describeStep(
    new Map([
      [
        'Project',
        async () => {
          throw new TypeError('bad project name');
        },
      ],
    ]),
  );
  await assert.rejects(describe({ type: 'Project', id: 'BAD NAME' }), /bad project name/);
});
