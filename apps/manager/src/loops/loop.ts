import type { Logger } from '../log.js';

export interface Loop {
  /** Stops the timer and waits for a pass in progress to end. */
  stop(): Promise<void>;
}

/**
 * The thin shell around a loop's pure decisions: runs `pass` every `intervalMs` (the first pass after one
 * interval), never two passes at once, logging a failed pass rather than dying of it.
 */
export function startLoop(
  name: string,
  intervalMs: number,
  logger: Logger,
  pass: () => Promise<unknown>,
): Loop {
  let running: Promise<void> | undefined;
  let stopped = false;
  const tick = () => {
    if (stopped || running) return;
    running = pass()
      .then(
        (report) => logger.debug(`${name} pass`, { report }),
        (error: unknown) => logger.error(`${name} pass failed`, { error }),
      )
      .finally(() => {
        running = undefined;
      });
  };
  const timer = setInterval(tick, intervalMs);
  timer.unref();
  return {
    async stop() {
      stopped = true;
      clearInterval(timer);
      await running;
    },
  };
}
