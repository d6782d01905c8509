import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gunzipSync } from 'node:zlib';

/**
 * A local OTLP/HTTP trace receiver, as a collector's `otlphttp` receiver would take them
 * (opentelemetry.io/docs/specs/otlp/#otlphttp): `POST /v1/traces` with an ExportTraceServiceRequest.
 * `@opentelemetry/exporter-trace-otlp-http` sends the JSON encoding (`content-type: application/json`,
 * ids as hex as the OTLP JSON mapping says), gzip when asked: it is decoded here, and anything else
 * (protobuf, another path) is recorded as refused, so a test sees what arrived and in what form.
 */

export type AttributeValue = string | number | boolean | null | AttributeValue[];

export interface ReceivedSpan {
  traceId: string;
  spanId: string;
  parentSpanId: string;
  name: string;
  kind: number;
  attributes: Record<string, AttributeValue>;
  status: { code?: number; message?: string };
  resource: Record<string, AttributeValue>;
  scope: string;
}

export interface OtlpReceiver {
  /** http://127.0.0.1:<port> (the collector's base URL: the exporter posts to /v1/traces). */
  readonly url: string;
  /** Every span received, in arrival order. */
  spans(): ReceivedSpan[];
  /** The bodies as received (after gzip), to search for what must never be exported. */
  rawBodies(): string[];
  /** Requests that were not an OTLP/HTTP JSON trace export (path, content type). */
  refused(): string[];
  /** Resolves once `n` spans have arrived (rejects after `timeoutMs`). */
  waitForSpans(n: number, timeoutMs?: number): Promise<ReceivedSpan[]>;
  close(): Promise<void>;
}

interface JsonAnyValue {
  stringValue?: string;
  boolValue?: boolean;
  intValue?: string | number;
  doubleValue?: number;
  arrayValue?: { values?: JsonAnyValue[] };
  kvlistValue?: unknown;
  bytesValue?: string;
}
type JsonAttributes = { key: string; value: JsonAnyValue }[] | undefined;

function anyValue(v: JsonAnyValue | undefined): AttributeValue {
  if (!v) return null;
  if (v.stringValue !== undefined) return v.stringValue;
  if (v.boolValue !== undefined) return v.boolValue;
  if (v.intValue !== undefined) return Number(v.intValue);
  if (v.doubleValue !== undefined) return v.doubleValue;
  if (v.arrayValue) return (v.arrayValue.values ?? []).map(anyValue);
  if (v.bytesValue !== undefined) return v.bytesValue;
  return JSON.stringify(v);
}

function attributesOf(a: JsonAttributes): Record<string, AttributeValue> {
  const out: Record<string, AttributeValue> = {};
  for (const kv of a ?? []) out[kv.key] = anyValue(kv.value);
  return out;
}

/** OTLP JSON ids are hex; a proto3-JSON encoder would send base64: accept both, return hex. */
function idOf(id: string | undefined, bytes: number): string {
  if (!id) return '';
  if (new RegExp(`^[0-9a-f]{${bytes * 2}}$`, 'i').test(id)) return id.toLowerCase();
  return Buffer.from(id, 'base64').toString('hex');
}

interface ExportTraceServiceRequest {
  resourceSpans?: {
    resource?: { attributes?: JsonAttributes };
    scopeSpans?: {
      scope?: { name?: string };
      spans?: {
        traceId?: string;
        spanId?: string;
        parentSpanId?: string;
        name?: string;
        kind?: number;
        attributes?: JsonAttributes;
        status?: { code?: number; message?: string };
      }[];
    }[];
  }[];
}

export function decodeTraceExport(text: string): ReceivedSpan[] {
  const req = JSON.parse(text) as ExportTraceServiceRequest;
  const out: ReceivedSpan[] = [];
  for (const rs of req.resourceSpans ?? []) {
    const resource = attributesOf(rs.resource?.attributes);
    for (const ss of rs.scopeSpans ?? []) {
      for (const s of ss.spans ?? []) {
        out.push({
          traceId: idOf(s.traceId, 16),
          spanId: idOf(s.spanId, 8),
          parentSpanId: idOf(s.parentSpanId, 8),
          name: s.name ?? '',
          kind: s.kind ?? 0,
          attributes: attributesOf(s.attributes),
          status: s.status ?? {},
          resource,
          scope: ss.scope?.name ?? '',
        });
      }
    }
  }
  return out;
}

export async function startOtlpReceiver(): Promise<OtlpReceiver> {
  const spans: ReceivedSpan[] = [];
  const bodies: string[] = [];
  const refused: string[] = [];
  const waiters = new Set<() => void>();
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const type = String(req.headers['content-type'] ?? '');
      if (req.method !== 'POST' || req.url !== '/v1/traces' || !/^application\/json\b/.test(type)) {
        refused.push(`${req.method} ${req.url} ${type}`);
        res.writeHead(415, { 'content-type': 'application/json' }).end('{}');
        return;
      }
      let raw = Buffer.concat(chunks);
      if (req.headers['content-encoding'] === 'gzip') raw = gunzipSync(raw);
      const text = raw.toString('utf8');
      bodies.push(text);
      try {
        spans.push(...decodeTraceExport(text));
      } catch {
        refused.push(`undecodable body: ${text.slice(0, 100)}`);
        res.writeHead(400, { 'content-type': 'application/json' }).end('{}');
        return;
      }
      // ExportTraceServiceResponse: everything accepted
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      for (const w of waiters) w();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    spans: () => [...spans],
    rawBodies: () => [...bodies],
    refused: () => [...refused],
    waitForSpans(n, timeoutMs = 15_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          if (spans.length < n) return;
          clearTimeout(timer);
          waiters.delete(check);
          resolve([...spans]);
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(
            new Error(
              `${spans.length} of ${n} spans arrived in ${timeoutMs} ms (refused: ${refused.join('; ')})`,
            ),
          );
        }, timeoutMs);
        waiters.add(check);
        check();
      });
    },
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
