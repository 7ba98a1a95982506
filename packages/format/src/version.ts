import { IntegrityError, UnsupportedFormatVersionError } from './errors.js';

/**
 * The repository format version this code writes, and the only one it reads. A change to any byte layout,
 * context string, KDF, schema or rule in docs/format.md MUST bump it (and regenerate the golden vectors).
 * Version 1 was a pre-release format: version 2 keys the chunker's gear table and pads chunk objects, so a
 * version-1 object can be neither deduplicated against nor read alongside version-2 ones (docs/format.md §13).
 */
export const FORMAT_VERSION = 2;

/**
 * Checks the version byte of an object's header: a newer one is `UnsupportedFormatVersionError` (upgrade to
 * read it), version 1 the same with a message that says why it is no longer read, 0 an integrity error.
 */
export function checkObjectVersion(version: number, objectKey: string | undefined): void {
  if (version > FORMAT_VERSION) throw new UnsupportedFormatVersionError(version, objectKey);
  if (version === 1) {
    throw new UnsupportedFormatVersionError(
      version,
      objectKey,
      'format version 1 was a pre-release format that this version no longer reads; back up into a new repository',
    );
  }
  if (version < FORMAT_VERSION) throw new IntegrityError(objectKey, `invalid format version ${version}`);
}
