import type { ChunkerParams } from '@stowage/chunker';

/** Small chunks, so a few MiB of test data make hundreds of them. */
export const TEST_CHUNKER_PARAMS: ChunkerParams = {
  minSize: 16 << 10,
  avgSize: 64 << 10,
  maxSize: 256 << 10,
  level: 1,
  seed: 0n,
};

/** scrypt parameters cheap enough for tests (never for real repositories). */
export const TEST_KDF = { N: 1024, r: 8, p: 1 } as const;

export const TEST_PASSPHRASE = 'correct horse battery staple';
