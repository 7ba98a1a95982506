/** Progress of a long-running operation, reported through `onProgress` callbacks. */
export interface Progress {
  phase: 'backup' | 'restore' | 'verify' | 'check';
  bytesDone: number;
  bytesTotal: number;
  /** Bytes per second since the start. */
  rate: number;
  /** Seconds left at the current rate, or undefined before there is a rate. */
  etaSeconds: number | undefined;
  elapsedSeconds: number;
}

export type ProgressListener = (progress: Progress) => void;

/** Rate-limits progress callbacks (at most one per `intervalMs`, plus the final one). */
export class ProgressReporter {
  #last = -Infinity;
  readonly #start: number;

  constructor(
    private readonly phase: Progress['phase'],
    private readonly bytesTotal: number,
    private readonly listener: ProgressListener | undefined,
    private readonly now: () => number = () => performance.now(),
    private readonly intervalMs = 100,
  ) {
    this.#start = now();
  }

  elapsedSeconds(): number {
    return (this.now() - this.#start) / 1000;
  }

  report(bytesDone: number, final = false): void {
    if (!this.listener) return;
    const t = this.now();
    if (!final && t - this.#last < this.intervalMs) return;
    this.#last = t;
    const elapsedSeconds = (t - this.#start) / 1000;
    const rate = elapsedSeconds > 0 ? bytesDone / elapsedSeconds : 0;
    const left = this.bytesTotal - bytesDone;
    this.listener({
      phase: this.phase,
      bytesDone,
      bytesTotal: this.bytesTotal,
      rate,
      etaSeconds: rate > 0 ? left / rate : undefined,
      elapsedSeconds,
    });
  }
}
