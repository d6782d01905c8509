/**
 * Process-wide rotation counters, read by the metrics endpoint (Prometheus
 * exposition): every rotation service in the process adds to them, like a
 * default registry. Monotonic; tests compare before/after.
 */
const counters = {
  /** Rotations that made a new version current. */
  rotations: 0,
  /** Rotations that failed (the current version was kept). */
  failures: 0,
  /** Old keys deleted at the provider (or old versions marked superseded) after their grace period. */
  revocations: 0,
  /** Deletions of old keys that failed (retried with backoff). */
  revocation_failures: 0,
};

export type RotationCounter = keyof typeof counters;

export function countRotation(name: RotationCounter): void {
  counters[name]++;
}

/** strongroom_rotation_failures_total: failed rotations since the process started. */
export function rotationFailures(): number {
  return counters.failures;
}

/** Every rotation counter (strongroom_rotation_<name>_total). */
export function rotationMetrics(): Readonly<Record<RotationCounter, number>> {
  return { ...counters };
}
