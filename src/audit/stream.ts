import { connect, type Socket } from 'node:net';
import { hostname } from 'node:os';
import { type AuditSink, type AuditTransport, createChainedSink } from './sink.ts';

function writeAll(stream: NodeJS.WritableStream, data: string, timeoutMs: number): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`the audit stream did not take the entry within ${timeoutMs} ms`)),
      timeoutMs,
    );
    stream.write(data, (err?: Error | null) => {
      clearTimeout(timer);
      if (err) reject(err);
      else resolve();
    });
  });
}

/**
 * JSON lines on a stream (standard output). A write is acknowledged once the
 * stream has handed it to the operating system; what happens after that is
 * up to whatever reads the stream.
 */
function createStreamTransport(
  name: string,
  stream: NodeJS.WritableStream,
  opts: { timeoutMs?: number } = {},
): AuditTransport {
  const timeoutMs = opts.timeoutMs ?? 5000;
  // an EPIPE on an unlistened stream would crash the process; the failed write already rejects
  stream.on('error', () => {});
  return {
    name,
    open: async () => undefined,
    check: async () => 'ok',
    append: (data) => writeAll(stream, data, timeoutMs),
    reset: async () => {},
    close: async () => {},
  };
}

export function createStdoutSink(stream: NodeJS.WritableStream = process.stdout): AuditSink {
  return createChainedSink(createStreamTransport('stdout', stream));
}

export interface SocketSinkOptions {
  /** `host:port` (TCP, `[v6]:port` for IPv6) or a socket path (unix). */
  address: string;
  /** Default: unix when the address contains a `/`, tcp otherwise. */
  type?: 'tcp' | 'unix';
  /** Frame each line as an RFC 5424 syslog message (facility log audit, severity info). */
  syslog?: boolean;
  connectTimeoutMs?: number;
  writeTimeoutMs?: number;
}

export function parseSocketAddress(
  address: string,
  type?: 'tcp' | 'unix',
): { path: string } | { host: string; port: number } {
  const kind = type ?? (address.includes('/') ? 'unix' : 'tcp');
  if (kind === 'unix') return { path: address };
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(address);
  const port = m ? Number(m[3]) : Number.NaN;
  if (!m || port < 1 || port > 65535)
    throw new TypeError(`audit socket address must be host:port, not ${JSON.stringify(address)}`);
  return { host: (m[1] ?? m[2])!, port };
}

/**
 * Newline-delimited lines over TCP or a Unix socket, optionally as RFC 5424
 * syslog messages (RFC 6587 §3.4.2 non-transparent framing). A write is
 * acknowledged once the kernel took it; a broken connection fails the write
 * and is re-established on the next one. The chain continues across
 * reconnections, so the receiver can tell whether it missed acknowledged lines.
 */
function createSocketTransport(opts: SocketSinkOptions): AuditTransport {
  const target = parseSocketAddress(opts.address, opts.type);
  const connectTimeoutMs = opts.connectTimeoutMs ?? 2000;
  const writeTimeoutMs = opts.writeTimeoutMs ?? 5000;
  const host = hostname() || '-';
  let sock: Socket | undefined;
  let broken = false;

  function drop(): void {
    sock?.destroy();
    sock = undefined;
  }

  return {
    name: `socket:${opts.address}`,
    async open() {
      drop();
      broken = false;
      const s = 'path' in target ? connect(target.path) : connect(target.port, target.host);
      s.setNoDelay(true);
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => {
          s.destroy();
          reject(
            new Error(`cannot connect to the audit socket ${opts.address} within ${connectTimeoutMs} ms`),
          );
        }, connectTimeoutMs);
        s.once('connect', () => {
          clearTimeout(timer);
          resolve();
        });
        s.once('error', (err) => {
          clearTimeout(timer);
          reject(err);
        });
      });
      s.on('error', () => {
        broken = true;
      });
      s.on('close', () => {
        broken = true;
      });
      // the receiver has nothing to say; discard anything it sends
      s.resume();
      sock = s;
      return undefined;
    },
    check: async () => (sock && !broken && !sock.destroyed ? 'ok' : 'reopen'),
    async append(data) {
      if (!sock || broken) throw new Error(`the audit socket ${opts.address} is not connected`);
      await writeAll(sock, data, writeTimeoutMs);
      if (broken) throw new Error(`the audit socket ${opts.address} closed`);
    },
    frame: opts.syslog
      ? (line, now) =>
          `<110>1 ${new Date(now).toISOString()} ${host} strongroom ${process.pid} audit - ${line}`
      : undefined,
    reset: async () => drop(),
    async close() {
      const s = sock;
      sock = undefined;
      if (s && !s.destroyed) await new Promise<void>((r) => s.end(r));
    },
  };
}

export function createSocketSink(opts: SocketSinkOptions): AuditSink {
  return createChainedSink(createSocketTransport(opts));
}
