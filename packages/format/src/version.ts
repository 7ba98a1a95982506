/**
 * The repository format version this code writes and the newest it reads. A change to any byte layout,
 * context string, KDF, schema or rule in docs/format.md MUST bump it (and regenerate the golden vectors).
 */
export const FORMAT_VERSION = 1;
