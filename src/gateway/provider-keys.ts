/**
 * The gateway's port for provider keys (made by the vault side,
 * src/assemble/gateway-vault/provider-keys.ts): keys read from the vault for
 * injection, and fingerprints of every vault value for the prompt firewall. Keys live only in this process's
 * memory (dropped on seal and on change); fingerprints are HMACs under a key
 * made at start, so no plaintext list of vault values exists anywhere.
 */
export interface ProviderKeys {
  /** The current value of the secret at `project/env/NAME`. */
  get(path: string): Promise<string>;
  /**
   * The secrets (`project/env/NAME`) whose value, current or earlier, is exactly `candidate`;
   * empty when none is.
   */
  match(candidate: string): readonly string[];
  /** Length range of the fingerprinted values (candidates outside it cannot match). */
  readonly lengths: { min: number; max: number };
  close(): void;
}
