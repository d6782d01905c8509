import { spawnSync } from 'node:child_process';

/** Debian's python3 with python3-hvac (.ci/run installs it): Vault's own Python client, unchanged. */
export const PYTHON = '/usr/bin/python3';

/** Whether hvac can be imported; with STRONGROOM_TEST_REQUIRE_HVAC=1 (CI) its absence is an error. */
export const hasHvac = spawnSync(PYTHON, ['-c', 'import hvac'], { stdio: 'ignore' }).status === 0;
if (!hasHvac && process.env.STRONGROOM_TEST_REQUIRE_HVAC === '1') {
  throw new Error(
    'STRONGROOM_TEST_REQUIRE_HVAC=1 but /usr/bin/python3 cannot import hvac (apt-get install python3-hvac)',
  );
}
