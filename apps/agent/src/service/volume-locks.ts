import { ApiError, type BackendKind } from '@stowage/api';

/** Who holds a volume: a job (named, so a refusal can say which) or a request of the HTTP API. */
export type VolumeHolder =
  | { kind: 'job'; jobId: string; jobKind: 'backup' | 'restore' | 'verify' }
  | { kind: 'request'; what: string };

/**
 * One user of a volume at a time on this agent. A job holds its volume from submit to its end (queued jobs
 * too: a second job would only wait to tear the first one's work); a volume request of the API (delete,
 * snapshot, provision) holds it while it runs. Anyone else is refused with 409 naming the holder.
 *
 * Keys are canonical: `volumeKey` takes a locator as the backend resolved it (`stat(...).locator`), so two
 * spellings of one file (a symlink, `//`) are one key; `nameKey` reserves a name a restore will provision.
 */
export class VolumeLocks {
  readonly #held = new Map<string, VolumeHolder>();

  static volumeKey(backend: BackendKind, locator: string): string {
    return `volume\0${backend}\0${locator}`;
  }

  static nameKey(backend: BackendKind, name: string): string {
    return `name\0${backend}\0${name}`;
  }

  /**
   * The keys of an existing volume: its canonical locator and its name. Names are unique across a backend's
   * roots, so the name key meets a restore that holds the name before the volume exists.
   */
  static keysOf(backend: BackendKind, volume: { locator: string; name: string }): string[] {
    return [VolumeLocks.volumeKey(backend, volume.locator), VolumeLocks.nameKey(backend, volume.name)];
  }

  /** The holder of `key`, if any. */
  holder(key: string): VolumeHolder | undefined {
    return this.#held.get(key);
  }

  /**
   * Takes every key for `holder`, or none of them: throws `ApiError('conflict')` naming the first holder
   * found. Answers a release that is safe to call more than once.
   */
  acquire(keys: readonly string[], holder: VolumeHolder, subject: string): () => void {
    for (const key of keys) {
      const current = this.#held.get(key);
      if (current !== undefined) throw busy(subject, current);
    }
    for (const key of keys) this.#held.set(key, holder);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      for (const key of keys) if (this.#held.get(key) === holder) this.#held.delete(key);
    };
  }

  /** Runs `work` holding `keys` for an API request; the keys are free again when it settles. */
  async during<T>(
    keys: readonly string[],
    what: string,
    subject: string,
    work: () => Promise<T>,
  ): Promise<T> {
    const release = this.acquire(keys, { kind: 'request', what }, subject);
    try {
      return await work();
    } finally {
      release();
    }
  }
}

function busy(subject: string, holder: VolumeHolder): ApiError {
  if (holder.kind === 'job') {
    return new ApiError('conflict', `${subject} is in use by ${holder.jobKind} job ${holder.jobId}`, {
      job_id: holder.jobId,
      job_kind: holder.jobKind,
    });
  }
  return new ApiError('conflict', `${subject} is in use by ${holder.what} still running`, {
    in_use_by: holder.what,
  });
}
