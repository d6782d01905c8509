/** The shared contract: the shape of an audit record (written by the audit module, built by the pipeline and by modules that act on their own). A leaf. */

/** Who made a request. Fields are optional so identity kinds can grow without a format change. */
export interface AuditActor {
  /** 'root' | 'user' | 'app' | 'token' ... */
  type?: string;
  /** Stable id of the principal (user id, app client id, token accessor). */
  id?: string;
  /** The token accessor (not a secret: a handle to look up or revoke the token). */
  accessor?: string;
  display_name?: string;
}

/** One audit record, before it is chained. Never contains secret values, tokens or passwords. */
export interface AuditEntry {
  type: 'request' | 'response';
  /** ISO 8601 time the entry was made. */
  time: string;
  request_id: string;
  trace_id?: string;
  operation: string;
  action: string;
  resource: string;
  actor: AuditActor | null;
  client_address: string;
  decision?: { allowed: boolean; reason: string };
  /**
   * The operation input. The broker sanitises every entry before any sink
   * sees it, so sensitive fields here are replaced by `hmac-sha256:...`.
   */
  request?: unknown;
  status?: 'ok' | 'error';
  /** HTTP status of the response, when the transport knows it. */
  status_code?: number;
  error_code?: string;
}
