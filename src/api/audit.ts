import { op } from './op.ts';
/** The wire contract of the audit API (docs/audit.md). */

// ---- operations ----
// Each operation of this API, by the object routes name it with (src/api/op.ts).
export const AuditHash = op()('audit.hash');
export const AuditQuery = op()('audit.query');
