// moved to src/contract/ (issue 14); this re-export goes once every importer has moved
export type { Identity, Owner } from '../contract/identity.ts';
export type {
  AnyOperation,
  Operation,
  OperationContext,
  RequestInfo,
  Resource,
} from '../contract/operation.ts';
