/**
 * The one error type of Strongroom. `code` comes from a closed set; the HTTP
 * status for each code is mapped once, at the edge (src/server/errors.ts).
 * Messages are written for the user and must never contain secret material.
 */
export const ERROR_CODES = [
  'bad_request',
  'invalid_json',
  // a body nesting arrays and objects deeper than the configured limit (max_json_depth)
  'json_too_deep',
  'unknown_field',
  'validation_failed',
  'invalid_name',
  'invalid_value',
  'payload_too_large',
  'unsupported_media_type',
  'route_not_found',
  'method_not_allowed',
  'not_found',
  'project_not_found',
  'environment_not_found',
  'secret_not_found',
  'secret_deleted',
  'version_not_found',
  'version_destroyed',
  'already_exists',
  'cas_mismatch',
  'unauthenticated',
  'invalid_token',
  'invalid_credentials',
  'mfa_required',
  'account_locked',
  'permission_denied',
  'sealed',
  'not_initialized',
  'already_initialized',
  'invalid_unseal_key',
  'unseal_in_progress',
  'integrity_error',
  'storage_unavailable',
  'audit_unavailable',
  'rate_limited',
  'provider_error',
  'rotation_in_progress',
  // workload identity (issue 6)
  'invalid_csr',
  'invalid_svid',
  'invalid_join_token',
  // a gateway in front of a remote vault that cannot reach it (docs/gateway-remote.md)
  'vault_unavailable',
  // the AI gateway's own refusals (docs/gateway.md)
  'model_not_routed',
  'model_not_priced',
  'anomaly_revoked',
  'anomaly_narrowed',
  // request stages: the prompt firewall and stages run as services (docs/stages.md)
  'prompt_injection',
  'blocked_topic',
  'credential_detected',
  'pii_detected',
  'provenance_invalid',
  'stage_output_invalid',
  'stage_failed',
  // what the gateway says of the provider it forwards to
  'provider_key_missing',
  'upstream_unreachable',
  'upstream_error',
  'upstream_redirect',
  // why a gateway call ended before its answer did (issue 12 items 9 and 10)
  'client_closed',
  'call_timeout',
  'credential_revoked',
  // a backend a lease engine works on (a database) could not be reached or refused (docs/leases.md)
  'backend_unavailable',
  // an exclusive check-out held by someone else (docs/checkout.md)
  'checked_out',
  // a connection or role that live leases still depend on (revoke them first: docs/leases.md)
  'in_use',
  // a wrapping token that is unknown, expired or already unwrapped (docs/wrapping.md)
  'invalid_wrapping_token',
  // the transit engine (docs/transit.md): a ciphertext or signature that does not open or parse, a
  // key version the key's policy refuses, an operation the key's type cannot do, a key kept from
  // deletion or from leaving the vault
  'invalid_ciphertext',
  'key_version_disallowed',
  'unsupported_operation',
  'deletion_not_allowed',
  'not_exportable',
  // the PKCS#11 seal's HSM could not be used (library, token, PIN or key): the vault stays sealed
  'hsm_unavailable',
  // verify-then-unwrap refused a model's data keys: the message names the first offending file (docs/models.md)
  'model_refused',
  'internal',
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

export class StrongroomError extends Error {
  readonly code: ErrorCode;
  readonly details: Readonly<Record<string, unknown>> | undefined;

  constructor(
    code: ErrorCode,
    message: string,
    options?: { cause?: unknown; details?: Record<string, unknown> },
  ) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'StrongroomError';
    this.code = code;
    this.details = options?.details ? Object.freeze({ ...options.details }) : undefined;
  }
}

export function isStrongroomError(err: unknown, code?: ErrorCode): err is StrongroomError {
  return err instanceof StrongroomError && (code === undefined || err.code === code);
}
