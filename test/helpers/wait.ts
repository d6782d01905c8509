export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls `fn` every 50 ms until it is true (a throw counts as not yet); fails after `ms` naming `what`. */
export async function until(what: string, fn: () => boolean | Promise<boolean>, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  for (;;) {
    try {
      if (await fn()) return;
    } catch {}
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/**
 * Waits until the clock is at least `margin` ms away from the next minute: request budgets count fixed
 * one-minute windows aligned to the minute (src/engines/gateway/budgets.ts), so a burst that straddles a
 * minute's end is rightly served by two windows.
 */
export async function awayFromMinuteEdge(margin = 10_000): Promise<void> {
  const intoMinute = Date.now() % 60_000;
  if (intoMinute > 60_000 - margin) await sleep(60_000 - intoMinute + 50);
}
