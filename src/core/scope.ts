// moved to src/contract/scope.ts (issue 14); this re-export goes once every importer has moved
export { type Scope, scopeAllows, scopeProblem, scopeWithin } from '../contract/scope.ts';
