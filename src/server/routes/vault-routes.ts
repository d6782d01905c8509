import { auditRoutes } from './v1/audit.ts';
import { authRoutes } from './v1/auth.ts';
import { bulkRoutes } from './v1/bulk.ts';
import { gatewayRoutes } from './v1/gateway.ts';
import { hygieneRoutes } from './v1/hygiene.ts';
import { identityRoutes } from './v1/identity.ts';
import {
  checkoutRoutes,
  databaseRoutes,
  leaseRoutes,
  providerKeyRoutes,
  toolRoutes,
  wrappingRoutes,
} from './v1/leases.ts';
import { modelRoutes } from './v1/models.ts';
import { rotationRoutes } from './v1/rotation.ts';
import { type RouteDef, v1Routes } from './v1/routes.ts';
import { transitRoutes } from './v1/transit.ts';
import { usageRoutes } from './v1/usage.ts';
import { watchRoutes } from './v1/watch.ts';

/** Every HTTP route of the vault: each names an operation the assembled vault (src/assemble/vault.ts) serves. */
export const vaultRoutes: readonly RouteDef[] = [
  ...v1Routes,
  ...auditRoutes,
  ...authRoutes,
  ...usageRoutes,
  ...rotationRoutes,
  ...bulkRoutes,
  ...watchRoutes,
  ...hygieneRoutes,
  ...identityRoutes,
  ...gatewayRoutes,
  ...leaseRoutes,
  ...databaseRoutes,
  ...wrappingRoutes,
  ...checkoutRoutes,
  ...providerKeyRoutes,
  ...toolRoutes,
  ...transitRoutes,
  ...modelRoutes,
];
