// Optional second baseline for bench/secret-read.ts (BENCH_FASTIFY=1): Fastify
// configured like Strongroom's HTTP adapter (pino logger at warn, a random UUID
// request id, the same onSend security headers, a params schema on the route)
// answering the same JSON body with no core behind it: the framework's share.
// Prints {"port": N} once listening.
import { randomUUID } from 'node:crypto';
import Fastify from 'fastify';
import pino from 'pino';
import { Type } from 'typebox';

const template = JSON.parse(process.env.BENCH_BODY ?? '{}') as Record<string, unknown>;
const Name = Type.String({ pattern: '^[A-Za-z0-9_.-]{1,128}$' });

const app = Fastify({
  loggerInstance: pino({ level: 'warn' }),
  genReqId: () => randomUUID(),
  requestIdHeader: false,
  ajv: {
    customOptions: { removeAdditional: false, coerceTypes: false, useDefaults: false, allErrors: false },
  },
});
app.addHook('onSend', async (req, reply, payload) => {
  reply.header('x-request-id', req.id);
  reply.header('cache-control', 'no-store');
  reply.header('x-content-type-options', 'nosniff');
  return payload;
});
app.route({
  method: 'GET',
  url: '/v1/secrets/:project/:env/:name',
  schema: {
    params: Type.Object({ project: Name, env: Name, name: Name }, { additionalProperties: false }),
    querystring: Type.Object(
      { version: Type.Optional(Type.String({ pattern: '^[1-9][0-9]{0,9}$' })) },
      { additionalProperties: false },
    ),
  },
  handler: async (req) => ({ ...template, name: (req.params as { name: string }).name }),
});
await app.listen({ host: '127.0.0.1', port: 0 });
const addr = app.server.address();
process.stdout.write(`${JSON.stringify({ port: typeof addr === 'object' && addr ? addr.port : 0 })}\n`);
process.on('SIGTERM', () => void app.close().then(() => process.exit(0)));
process.on('disconnect', () => process.exit(0));
