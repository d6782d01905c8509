import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Type } from 'typebox';
import { Nullable } from './response-schemas.ts';

test('Nullable makes a JSON Schema type array, keeps the other keywords, and refuses a schema without one type', () => {
  assert.deepEqual(
    { ...Nullable(Type.String({ format: 'date-time' })) },
    { type: ['string', 'null'], format: 'date-time' },
  );
  const obj = Nullable(Type.Object({ a: Type.Integer() }));
  assert.deepEqual((obj as unknown as { type: unknown }).type, ['object', 'null']);
  assert.ok('properties' in obj);
  assert.throws(() => Nullable(Type.Union([Type.String(), Type.Integer()])), /a single type/);
});
