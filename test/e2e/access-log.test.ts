import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildTestApp } from '../helpers/app.ts';

/**
 * The per-request server log is opt-in (issue 15): the audit log is the access record, and a log line
 * per request cost as much CPU as the rest of a secret read. Problems are still logged either way.
 */
test('by default the server log has no line per request; access_log: true adds one when it arrives and one when it completes', async (t) => {
  const quiet = await buildTestApp(t, { config: { access_log: false } });
  await quiet.call('POST', '/v1/projects', { name: 'llm' });
  assert.equal((await quiet.call('GET', '/v1/sys/health')).statusCode, 200);
  assert.equal((await quiet.call('GET', '/v1/secrets/llm/dev/MISSING')).statusCode, 404);
  assert.doesNotMatch(quiet.logs(), /incoming request|request completed/);

  const loud = await buildTestApp(t, { config: { access_log: true } });
  const res = await loud.call('GET', '/v1/sys/health');
  const id = String(res.headers['x-request-id']);
  const lines = loud
    .logs()
    .split('\n')
    .filter((l) => l.includes(id))
    .map((l) => JSON.parse(l) as { msg: string; req?: { url: string }; res?: { statusCode: number } });
  assert.deepEqual(
    lines.map((l) => l.msg),
    ['incoming request', 'request completed'],
  );
  assert.equal(lines[0]?.req?.url, '/v1/sys/health');
  assert.equal(lines[1]?.res?.statusCode, 200);
});
