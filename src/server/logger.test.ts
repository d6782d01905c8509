import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import type { Logger } from 'pino';
import { createLogger, lazyRequestLogger } from './logger.ts';

test('a request logger makes its pino child only when it logs at an enabled level, once, bound to the request id', () => {
  let text = '';
  const sink = new Writable({
    write(chunk, _enc, cb) {
      text += chunk.toString();
      cb();
    },
  });
  const parent = createLogger('warn', sink);
  let children = 0;
  const child = parent.child.bind(parent);
  parent.child = ((...a: Parameters<Logger['child']>) => {
    children++;
    return child(...a);
  }) as Logger['child'];
  const log = lazyRequestLogger(parent, { reqId: 'r-1' }, {});
  log.info('below the level');
  log.debug({ value: 'x' }, 'below the level');
  assert.equal(children, 0, 'nothing logged, no child made');
  assert.equal(log.level, 'warn');
  log.warn({ code: 'integrity_error' }, 'request refused');
  log.error({ request: { token: 'srt_secret' } }, 'request failed');
  assert.equal(children, 1, 'one child for the whole request');
  const lines = text
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { reqId: string; msg: string; request?: { token: string } });
  assert.deepEqual(
    lines.map((l) => [l.reqId, l.msg]),
    [
      ['r-1', 'request refused'],
      ['r-1', 'request failed'],
    ],
  );
  assert.equal(lines[1]?.request?.token, '[redacted]', 'the parent’s redaction applies to the child');
});
