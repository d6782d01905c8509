/**
 * The SPIFFE layer: pure primitives (no I/O, no storage) for SPIFFE IDs,
 * X.509-SVIDs, JWT-SVIDs and SPIFFE bundles. See docs/spiffe.md.
 */
export {
  bundleMaps,
  MAX_BUNDLE_BYTES,
  MAX_BUNDLE_KEYS,
  parseSpiffeBundle,
  type SpiffeBundle,
  type SpiffeBundleDocument,
  toSpiffeBundle,
} from './bundle.ts';
export {
  type CertificateInput,
  KeyUsage,
  parsePemCertificates,
  toNodeCertificate,
} from './certificate.ts';
export { isSpiffeError, SPIFFE_ERROR_CODES, SpiffeError, type SpiffeErrorCode } from './errors.ts';
export {
  isMemberOf,
  isSpiffeId,
  MAX_SPIFFE_ID_BYTES,
  parseSpiffeId,
  parseTrustDomain,
  type SpiffeId,
  trustDomainId,
} from './id.ts';
export {
  DEFAULT_CLOCK_SKEW_SECONDS,
  JWT_SVID_ALGORITHMS,
  type JwtAuthority,
  type JwtBundles,
  signJwtSvid,
  type VerifiedJwtSvid,
  verifyJwtSvid,
} from './jwt-svid.ts';
export {
  type AnyKey,
  type CryptoKey,
  type CryptoKeyPair,
  describeKey,
  exportPrivateKeyPem,
  exportPublicKeyDer,
  exportPublicKeyPem,
  generateEcKeyPair,
  importPrivateKeyPem,
  importPublicKeyPem,
  publicKeyObject,
  toCryptoKey,
  toKeyObject,
} from './keys.ts';
export {
  createMtlsServer,
  type ExpectedServer,
  MtlsAgent,
  type MtlsAgentOptions,
  type MtlsAuthorize,
  MtlsHttpsAgent,
  type MtlsHttpsAgentOptions,
  type MtlsPeer,
  type MtlsRefusal,
  type MtlsServerOptions,
  mtlsAgent,
  mtlsHttpsAgent,
  peerOf,
} from './mtls.ts';
export {
  bundlesFromCertificates,
  type FileSvidSource,
  type FileSvidSourceOptions,
  fileSvidSource,
  type StaticSvidSource,
  type SvidInput,
  type SvidMaterial,
  type SvidSource,
  splitDerCertificates,
  staticSvidSource,
  svidFromWorkloadResponse,
  toSvidMaterial,
  type WorkloadApiSvidSourceOptions,
  workloadApiSvidSource,
} from './svid-source.ts';
export {
  buildCaCertificate,
  ISSUANCE_BACKDATE_SECONDS,
  type IssuedCertificate,
  issueX509Svid,
  type ValidatedCsr,
  type VerifiedX509Svid,
  validateCsr,
  verifyX509Svid,
  type X509Bundles,
} from './x509-svid.ts';
