/** The shared contract: what a request acts on. A leaf. */

/** What a request acts on, as the policy engine sees it. */
export interface Resource {
  type:
    | 'System'
    | 'Project'
    | 'Environment'
    | 'Secret'
    | 'Token'
    | 'User'
    | 'App'
    | 'Identity'
    | 'Model'
    | 'Tool'
    | 'TransitKey';
  id: string;
  attrs?: Readonly<Record<string, unknown>>;
}
