import { EngineError } from '@stowage/engine';
import { StowageFormatError } from '@stowage/format';
import { ObjectStoreError } from '@stowage/object-store';

/** Exit codes of the `agent` command; documented in docs/agent-cli.md. Never renumber one. */
export const EXIT = {
  ok: 0,
  failure: 1,
  usage: 2,
  repositoryNotFound: 3,
  wrongPassphrase: 4,
  integrity: 5,
  storage: 6,
  notFound: 7,
  interrupted: 130,
} as const;

export class UsageError extends Error {
  override name = 'UsageError';
}

/** Maps an error to its exit code and the one line printed for it. */
export function describeFailure(error: unknown): { code: number; message: string } {
  if (error instanceof UsageError) return { code: EXIT.usage, message: error.message };
  if (error instanceof EngineError) {
    switch (error.code) {
      case 'repository-not-found':
        return { code: EXIT.repositoryNotFound, message: error.message };
      case 'backup-not-found':
        return { code: EXIT.notFound, message: error.message };
      case 'invalid-argument':
      case 'ambiguous-backup-id':
      case 'invalid-source':
        return { code: EXIT.usage, message: error.message };
      case 'aborted':
        return { code: EXIT.interrupted, message: error.message };
      case 'wrong-key':
        return { code: EXIT.wrongPassphrase, message: error.message };
      default:
        return { code: EXIT.failure, message: error.message };
    }
  }
  if (error instanceof StowageFormatError) {
    switch (error.code) {
      case 'FORMAT_WRONG_PASSPHRASE':
        return { code: EXIT.wrongPassphrase, message: 'wrong passphrase' };
      case 'FORMAT_UNSUPPORTED_VERSION':
        return {
          code: EXIT.failure,
          message: `${error.message}; a newer Stowage wrote it, upgrade to read it`,
        };
      default: // FORMAT_INTEGRITY, FORMAT_INVALID: damaged data
        return { code: EXIT.integrity, message: error.message };
    }
  }
  if (error instanceof ObjectStoreError) {
    const cause = error.cause instanceof Error ? `: ${error.cause.message}` : '';
    if (error.kind === 'not-found')
      return { code: EXIT.integrity, message: `${error.message} (missing object)` };
    return { code: EXIT.storage, message: `${error.message}${error.message.includes(cause) ? '' : cause}` };
  }
  return { code: EXIT.failure, message: error instanceof Error ? error.message : String(error) };
}
