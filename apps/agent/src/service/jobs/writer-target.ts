import type { VolumeTarget } from '@stowage/engine';
import type { VolumeWriter } from '@stowage/host-backends';

export interface WriterTargetOptions {
  /**
   * Whether ranges the restore skips read back as zeros. Only a volume provisioned for this restore on a
   * backend whose fresh volumes are sparse files qualifies; an existing volume or a device may hold old data
   * there, so its holes must be written.
   */
  holesAreZero: boolean;
  /** Told when closing the writer after a failed restore failed too: the restore's own error is what the
   * caller gets, so this is where the second one is logged rather than lost. */
  onDiscard?: (closeError: unknown) => void;
}

/** A restore target over a host backend's writer; `discard` may be called again (it closes once). */
export interface WriterTarget extends VolumeTarget {
  /** True once the writer is closed, by `commit` or `discard`. */
  readonly closed: boolean;
}

/**
 * Adapts a host backend's `VolumeWriter` to the engine's `VolumeTarget`: the engine's workers write through
 * the descriptor, `commit` makes it durable (a late ENOSPC surfaces here as the backend's `no-space`) and
 * closes, `discard` only closes (what to do with the volume is the job's decision, not the target's). The
 * writer is closed exactly once, and `discard` never throws, so it cannot mask why a restore failed.
 */
export function writerTarget(writer: VolumeWriter, options: WriterTargetOptions): WriterTarget {
  let closing: Promise<void> | undefined;
  let discarded = false;
  const close = () => {
    closing ??= writer.close();
    return closing;
  };
  return {
    path: writer.path,
    fd: writer.fd,
    size: writer.size,
    holesAreZero: options.holesAreZero,
    get closed() {
      return closing !== undefined;
    },
    async commit() {
      await writer.sync();
      await close();
    },
    async discard() {
      if (discarded) return;
      discarded = true;
      try {
        await close();
      } catch (error) {
        options.onDiscard?.(error);
      }
    },
  };
}
