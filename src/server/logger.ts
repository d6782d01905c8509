import type { FastifyBaseLogger } from 'fastify';
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

type Bindings = Record<string, unknown>;
type LogFn = (...args: unknown[]) => void;

/**
 * A request's logger, made only when something is logged (Fastify makes one per request, and pino
 * serializes a child's bindings when it is made): most requests log nothing once the access log is off
 * (issue 15), so most never pay for it. Fastify's `childLoggerFactory`.
 */
class RequestLogger {
  readonly #parent: Logger;
  readonly #bindings: Bindings;
  readonly #opts: object;
  #made: Logger | undefined;
  constructor(parent: Logger, bindings: Bindings, opts: object) {
    this.#parent = parent;
    this.#bindings = bindings;
    this.#opts = opts;
  }
  #real(): Logger {
    this.#made ??= this.#parent.child(this.#bindings, this.#opts);
    return this.#made;
  }
  get level(): string {
    return this.#made?.level ?? this.#parent.level;
  }
  set level(v: string) {
    this.#real().level = v;
  }
  isLevelEnabled(level: string): boolean {
    return this.#parent.isLevelEnabled(level);
  }
  child(bindings: Bindings, opts?: object): Logger {
    return this.#real().child(bindings, opts);
  }
  fatal(...a: unknown[]): void {
    this.#log('fatal', a);
  }
  error(...a: unknown[]): void {
    this.#log('error', a);
  }
  warn(...a: unknown[]): void {
    this.#log('warn', a);
  }
  info(...a: unknown[]): void {
    this.#log('info', a);
  }
  debug(...a: unknown[]): void {
    this.#log('debug', a);
  }
  trace(...a: unknown[]): void {
    this.#log('trace', a);
  }
  silent(): void {}
  #log(level: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace', args: unknown[]): void {
    // below the level: nothing to format, no child to make
    if (!this.#parent.isLevelEnabled(level)) return;
    (this.#real()[level] as LogFn)(...args);
  }
}

export function lazyRequestLogger(
  parent: FastifyBaseLogger,
  bindings: Bindings,
  opts: object,
): FastifyBaseLogger {
  return new RequestLogger(parent as Logger, bindings, opts) as unknown as FastifyBaseLogger;
}
