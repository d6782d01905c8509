/**
 * A progress bar on stderr. On a terminal it redraws one line in place
 * (at most every 80 ms); elsewhere (CI logs, pipes) it prints a plain line
 * when a phase starts and then every 5 seconds, so logs stay short.
 */
export interface ProgressBar {
  update(phase: string, done: number, total: number): void;
  /** Clears the bar (terminal) before the summary is printed. */
  stop(): void;
}

const LABEL: Record<string, string> = {
  validate: 'validating',
  write: 'writing',
  commit: 'committing',
};

export function createProgressBar(
  out: NodeJS.WritableStream & { isTTY?: boolean; columns?: number },
  opts: { now?: () => number } = {},
): ProgressBar {
  const now = opts.now ?? (() => performance.now());
  const tty = out.isTTY === true;
  const started = now();
  let lastDraw = -Infinity;
  let lastPhase = '';
  let drawn = false;

  const seconds = () => ((now() - started) / 1000).toFixed(1);

  function line(phase: string, done: number, total: number): string {
    const label = (LABEL[phase] ?? phase).padEnd(10);
    const pct = total > 0 ? Math.floor((done / total) * 100) : 100;
    return `${label} ${String(pct).padStart(3)}%  ${done}/${total}  ${seconds()}s`;
  }

  return {
    update(phase, done, total) {
      const t = now();
      const changed = phase !== lastPhase;
      if (tty) {
        if (!changed && done < total && t - lastDraw < 80) return;
        const width = Math.max(10, Math.min(40, (out.columns ?? 80) - 40));
        const filled = total > 0 ? Math.round((done / total) * width) : width;
        const bar = `${'█'.repeat(filled)}${'░'.repeat(width - filled)}`;
        out.write(`\r\x1b[2K${bar} ${line(phase, done, total)}`);
        drawn = true;
      } else {
        if (!changed && t - lastDraw < 5000) return;
        out.write(`${line(phase, done, total)}\n`);
      }
      lastDraw = t;
      lastPhase = phase;
    },
    stop() {
      if (tty && drawn) out.write('\r\x1b[2K');
      drawn = false;
    },
  };
}
