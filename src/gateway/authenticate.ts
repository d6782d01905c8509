import type { IncomingHttpHeaders } from 'node:http';
import type { DetailedPeerCertificate, TLSSocket } from 'node:tls';
import type { FastifyRequest } from 'fastify';
import type { GatewayConfig } from '../config/gateway.ts';
import type { RequestInfo } from '../contract/operation.ts';
import type { GatewayVault, Session } from './vault-port.ts';

/**
 * Who is calling, as the vault says (through the core pipeline's own authentication step): the
 * credential sent the way either SDK sends it, and the client certificate chain presented over TLS.
 */
export function authenticateCaller(
  vault: Pick<GatewayVault, 'authenticate'>,
  tls: GatewayConfig['tls'],
  req: FastifyRequest,
  info: RequestInfo,
): Promise<Session> {
  const credential = credentialOf(req.headers);
  const chain = tls?.client_certificates === 'off' ? undefined : peerChain(req);
  return vault.authenticate(
    {
      ...(credential ? { credential } : {}),
      ...(chain?.length ? { chain } : {}),
      ...(tls?.client_certificates === 'require' ? { requireSvid: true } : {}),
    },
    info,
  );
}

/** The credential a client sent: `Authorization: Bearer X` or `x-api-key: X` (the two SDKs' ways). */
function credentialOf(headers: IncomingHttpHeaders): string | undefined {
  const auth = headers.authorization;
  if (typeof auth === 'string') {
    const m = /^Bearer\s+(\S{1,8192})\s*$/i.exec(auth);
    if (m) return m[1];
  }
  const k = headers['x-api-key'];
  return typeof k === 'string' && k.length > 0 && k.length <= 8192 ? k : undefined;
}

/** The client certificate chain (DER, leaf first, at most 8) the TLS socket received. */
function peerChain(req: FastifyRequest): Buffer[] | undefined {
  const socket = req.raw.socket as TLSSocket;
  if (typeof socket.getPeerCertificate !== 'function') return undefined;
  const leaf = socket.getPeerCertificate(true) as DetailedPeerCertificate | undefined;
  if (!leaf?.raw) return undefined;
  const chain: Buffer[] = [];
  let c: DetailedPeerCertificate | undefined = leaf;
  const seen = new Set<DetailedPeerCertificate>();
  while (c?.raw && !seen.has(c) && chain.length < 8) {
    seen.add(c);
    chain.push(c.raw);
    c = c.issuerCertificate && c.issuerCertificate !== c ? c.issuerCertificate : undefined;
  }
  return chain;
}
