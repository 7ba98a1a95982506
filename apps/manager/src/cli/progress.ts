import type { ManagedJob } from '@stowage/api';
import type { OutStream } from './context.js';
import { formatBytes, formatDuration } from './output.js';

/** `45.0% 12.0 MiB/64.0 MiB 5.0 MiB/s ETA 8s` — or without the fraction while the total is not known. */
export function progressFigures(job: ManagedJob): string {
  const p = job.progress;
  const known = p.bytes_total > 0;
  const percent = known ? `${(Math.min(1, p.bytes_done / p.bytes_total) * 100).toFixed(1)}% ` : '';
  const total = known ? `/${formatBytes(p.bytes_total)}` : '';
  return `${percent}${formatBytes(p.bytes_done)}${total} ${formatBytes(p.rate)}/s ETA ${formatDuration(p.eta_seconds)}`;
}

/** The bar's one line: state and phase, the bar, the figures; cut to the terminal's width. */
export function progressLine(job: ManagedJob, columns = 120): string {
  const p = job.progress;
  const fraction = p.bytes_total > 0 ? Math.min(1, p.bytes_done / p.bytes_total) : 0;
  const width = 30;
  const filled = Math.round(fraction * width);
  const label = `${job.kind} ${p.phase ?? job.state}`.padEnd(15);
  const line = `${label} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${progressFigures(job)}`;
  return line.slice(0, Math.max(1, columns - 1));
}

/** A one-line progress bar redrawn in place on a TTY; nothing at all elsewhere. */
export function progressBar(stream: OutStream | { isTTY: false }): {
  update: (job: ManagedJob) => void;
  done: () => void;
} {
  if (!stream.isTTY) return { update: () => {}, done: () => {} };
  const tty = stream as OutStream;
  let shown = false;
  return {
    update(job) {
      tty.write(`\r${progressLine(job, tty.columns ?? 120)}\x1b[K`);
      shown = true;
    },
    done() {
      if (shown) tty.write('\r\x1b[K');
      shown = false;
    },
  };
}
