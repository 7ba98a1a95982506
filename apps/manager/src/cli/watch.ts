import { type ManagedJob, type ManagerClient, TERMINAL_JOB_STATES } from '@stowage/api';
import type { CliEnv } from './context.js';
import { CliError, EXIT } from './exit-codes.js';
import { printable, printJson, printLine, printNote } from './output.js';
import { progressBar, progressFigures } from './progress.js';

/** Plain (not a terminal, not --json) progress lines come at most this often; state changes always print. */
const PLAIN_INTERVAL_MS = 2_000;
/** The event stream may close before the end (a manager restarting): reconnect this many times. */
const RECONNECTS = 5;
const RECONNECT_DELAY_MS = 1_000;

function isTerminal(job: ManagedJob): boolean {
  return TERMINAL_JOB_STATES.includes(job.state);
}

function seconds(job: ManagedJob): number | undefined {
  if (job.started_at === null || job.finished_at === null) return undefined;
  return (Date.parse(job.finished_at) - Date.parse(job.started_at)) / 1000;
}

/**
 * Follows a job over its event stream until it ends: a progress bar on a terminal (stderr), one JSON line per
 * change with --json, plain lines otherwise. Resolves to 0 when it succeeded; throws a CliError with exit code
 * 7 (failed) or 8 (cancelled) and the job's error otherwise; 130 when interrupted, the job going on.
 */
export async function watchJob(
  client: ManagerClient,
  id: string,
  cli: CliEnv,
  options: { json: boolean },
): Promise<number> {
  const tty = !options.json && cli.stderr.isTTY === true;
  const bar = progressBar(tty ? cli.stderr : { isTTY: false });
  let last: ManagedJob | undefined;
  let lastPlain = Number.NEGATIVE_INFINITY;
  const show = (job: ManagedJob) => {
    const changed = last?.state !== job.state || last?.progress.phase !== job.progress.phase;
    last = job;
    if (options.json) return printJson(cli, job);
    if (tty) {
      if (changed && job.state !== 'running' && !isTerminal(job)) {
        bar.done();
        printNote(cli, `job ${job.id} ${job.state}`);
      }
      if (job.state === 'running') bar.update(job);
      return;
    }
    const now = cli.now();
    if (isTerminal(job)) return;
    if (changed || now - lastPlain >= PLAIN_INTERVAL_MS) {
      lastPlain = now;
      const figures = job.state === 'running' ? `: ${progressFigures(job)}` : '';
      printLine(
        cli,
        `job ${job.id} ${job.state}${job.progress.phase ? ` (${job.progress.phase})` : ''}${figures}`,
      );
    }
  };

  try {
    for (let attempt = 0; ; attempt++) {
      for await (const job of client.jobEvents(id, cli.signal)) show(job);
      if (cli.signal.aborted) break;
      if (last !== undefined && isTerminal(last)) break;
      // The stream ended early: ask where the job is, and listen again unless it has ended.
      const now = await client.getJob(id, cli.signal);
      if (isTerminal(now)) {
        show(now);
        break;
      }
      if (attempt >= RECONNECTS)
        throw new CliError(`the event stream of job ${id} keeps closing`, EXIT.unavailable);
      await new Promise((resolve) => setTimeout(resolve, RECONNECT_DELAY_MS));
    }
  } catch (error) {
    if (!cli.signal.aborted) throw error;
  } finally {
    bar.done();
  }
  if (cli.signal.aborted || last === undefined) {
    printNote(cli, `stopped watching job ${id}; it goes on ("manager job cancel ${id}" stops it)`);
    return EXIT.interrupted;
  }
  const took = seconds(last);
  const duration = took === undefined ? '' : ` in ${took.toFixed(1)} s`;
  if (last.state === 'succeeded') {
    if (!options.json) printLine(cli, `job ${id} succeeded${duration}`);
    return EXIT.ok;
  }
  const reason = last.error ? `: ${printable(last.error.message)}` : '';
  throw new CliError(
    `job ${id} ${last.state}${reason}`,
    last.state === 'cancelled' ? EXIT.jobCancelled : EXIT.jobFailed,
  );
}
