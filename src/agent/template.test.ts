import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseTemplate, TemplateError } from './template.ts';

test('a lease placeholder names a credential path and a field; placeholders of one path share a credential', () => {
  const t = parseTemplate(
    'U={{ lease "database/creds/rag-reader?tenant=acme" "username" }}\nP={{ lease "database/creds/rag-reader?tenant=acme" "password" | shell }}\nK={{ secret "llm/dev/KEY" }}\n',
  );
  assert.deepEqual([...t.leases.keys()], ['database/creds/rag-reader?tenant=acme']);
  assert.deepEqual([...t.leases.values()][0], {
    key: 'database/creds/rag-reader?tenant=acme',
    path: 'database/creds/rag-reader',
    tenant: 'acme',
  });
  assert.deepEqual([...t.refs], ['llm/dev/KEY']);
  const text = t.render(
    () => 'k',
    (ref, field) => `${ref.path}:${field}${field === 'password' ? "'x" : ''}`,
  );
  assert.equal(
    text,
    "U=database/creds/rag-reader:username\nP='database/creds/rag-reader:password'\\''x'\nK=k\n",
  );
});

test('a lease placeholder outside the credential engines, or with a malformed tenant or field, is refused with its line', () => {
  for (const bad of [
    '{{ lease "sys/leases/x" "password" }}',
    '{{ lease "database/creds/r?tenant=a b" "password" }}',
    '{{ lease "database/creds/../x" "password" }}',
    '{{ lease "database/creds/r" "pass word" }}',
    '{{ lease "database/creds/r" "password" | nope }}',
  ]) {
    assert.throws(
      () => parseTemplate(`ok\n${bad}`),
      (e: Error) => e instanceof TemplateError && /line 2/.test(e.message),
      bad,
    );
  }
  // a template that reads leases cannot be rendered without a lease lookup
  assert.throws(
    () => parseTemplate('{{ lease "database/creds/r" "password" }}').render(() => ''),
    TemplateError,
  );
});
