import pino, { type Logger } from 'pino';

/** Creates a logger that never prints request bodies or credential headers. */
export function createLogger(level: string, destination?: NodeJS.WritableStream): Logger {
  return pino(
    {
      level,
      base: { service: 'strongroom' },
      redact: {
        paths: [
          'req.headers.authorization',
          'req.headers["x-vault-token"]',
          'req.headers.cookie',
          '*.token',
          '*.value',
          '*.key',
        ],
        censor: '[redacted]',
      },
    },
    destination ?? process.stdout,
  );
}
