// Reading chunk objects out of packs for verify and check: adjacent chunks of a pack in one ranged GET (a span),
// each then opened in a worker. Shared so that both name a damaged chunk the same way.
import {
  type ChunkProblem,
  describeLocation,
  type PackLocation,
  packObjectKey,
  StowageFormatError,
} from '@stowage/format';
import { isObjectStoreError, type ObjectStore, type OperationOptions } from '@stowage/object-store';
import type { ChunkIndex } from './chunk-ids.js';
import type { ChunkWorkers } from './workers/chunk-workers.js';

/**
 * Most bytes one GET of a span reads (a chunk object larger than this is read alone). With the reads in flight
 * it bounds the memory of reading (16 by default, each chunk of a span copied once more to its worker): at
 * 4 MiB a verify of the 64 GiB sparse image peaked at 379 MiB, at 1 MiB as before packs (a span of small
 * chunks still takes one GET for several).
 */
export const MAX_SPAN_BYTES = 1 << 20;

/**
 * The positions of `positions` (ascending in `index`, which is sorted by location) cut into spans: runs of
 * chunks of one pack, each starting where the one before it ends, of at most `maxBytes` (one chunk always).
 */
export function* spans(
  index: ChunkIndex,
  positions: Iterable<number>,
  maxBytes = MAX_SPAN_BYTES,
): Iterable<number[]> {
  let span: number[] = [];
  let end = 0;
  let bytes = 0;
  for (const at of positions) {
    const offset = index.offsetAt(at);
    const length = index.objectLengthAt(at);
    const last = span.at(-1);
    if (last !== undefined && (offset !== end || bytes + length > maxBytes || !index.samePack(last, at))) {
      yield span;
      span = [];
      bytes = 0;
    }
    span.push(at);
    end = offset + length;
    bytes += length;
  }
  if (span.length > 0) yield span;
}

/** What reading one chunk of a span found: healthy, or the problem to record and its message. */
export type ChunkOutcome = { ok: true } | { ok: false; problem: ChunkProblem; message: string };

/** Names a chunk in messages: its id and where it is stored. */
export function chunkName(id: Uint8Array, location: PackLocation): string {
  return `chunk ${Buffer.from(id).toString('hex')} at ${describeLocation(location)}`;
}

export function missingPackMessage(id: Uint8Array, location: PackLocation): string {
  return `${chunkName(id, location)} is missing: its pack does not exist`;
}

export function pastEndMessage(id: Uint8Array, location: PackLocation, packSize?: number): string {
  const size = packSize === undefined ? '' : ` (${packSize} bytes)`;
  return `${chunkName(id, location)} is corrupt: the range ends past the end of its pack${size}`;
}

/**
 * Reads the chunks of one span (`spans`) with one ranged GET of their pack and opens each in a worker
 * (authenticated, decrypted, decompressed, re-hashed, its length checked). A missing pack makes every chunk
 * `missing`; a pack shorter than the span is read again chunk by chunk, so that the chunks before its end are
 * still checked and those past it are `corrupt`; a chunk that does not open is `corrupt`. Any other store
 * failure is thrown. `bytesRead` counts what the store returned.
 */
export async function readSpan(
  store: ObjectStore,
  workers: ChunkWorkers,
  index: ChunkIndex,
  span: readonly number[],
  call: OperationOptions,
): Promise<{ outcomes: ChunkOutcome[]; bytesRead: number }> {
  const first = span[0]!;
  const key = packObjectKey(index.packAt(first));
  const start = index.offsetAt(first);
  const last = span.at(-1)!;
  const length = index.offsetAt(last) + index.objectLengthAt(last) - start;
  let bytesRead = 0;
  const get = async (offset: number, n: number) => {
    const bytes = await store.get(key, { offset, length: n }, call);
    bytesRead += bytes.length;
    return bytes;
  };
  const open = async (at: number, object: Uint8Array): Promise<ChunkOutcome> => {
    const location = index.locationAt(at);
    const id = index.idAt(at);
    try {
      await workers.check(object, id, index.lengthAt(at), describeLocation(location));
      return { ok: true };
    } catch (error) {
      if (!(error instanceof StowageFormatError)) throw error;
      return {
        ok: false,
        problem: 'corrupt',
        message: `chunk ${Buffer.from(id).toString('hex')}: ${error.message}`,
      };
    }
  };
  let whole: Uint8Array | undefined;
  try {
    whole = await get(start, length);
  } catch (error) {
    if (isObjectStoreError(error, 'not-found')) {
      const outcomes = span.map(
        (at): ChunkOutcome => ({
          ok: false,
          problem: 'missing',
          message: missingPackMessage(index.idAt(at), index.locationAt(at)),
        }),
      );
      return { outcomes, bytesRead };
    }
    if (!isObjectStoreError(error, 'invalid-range')) throw error;
  }
  if (whole !== undefined) {
    const bytes = whole;
    // Each chunk's range copied out when the span holds more than it (a worker takes its own buffer).
    const outcomes = await Promise.all(
      span.map((at) => {
        const from = index.offsetAt(at) - start;
        const object = span.length === 1 ? bytes : bytes.slice(from, from + index.objectLengthAt(at));
        return open(at, object);
      }),
    );
    return { outcomes, bytesRead };
  }
  // The pack is shorter than the span: each chunk on its own.
  const outcomes: ChunkOutcome[] = [];
  for (const at of span) {
    const offset = index.offsetAt(at);
    const n = index.objectLengthAt(at);
    try {
      outcomes.push(await open(at, await get(offset, n)));
    } catch (error) {
      if (isObjectStoreError(error, 'invalid-range')) {
        outcomes.push({
          ok: false,
          problem: 'corrupt',
          message: pastEndMessage(index.idAt(at), index.locationAt(at)),
        });
      } else if (isObjectStoreError(error, 'not-found')) {
        outcomes.push({
          ok: false,
          problem: 'missing',
          message: missingPackMessage(index.idAt(at), index.locationAt(at)),
        });
      } else throw error;
    }
  }
  return { outcomes, bytesRead };
}

/** Positions `i` where `flags[i] === value`, ascending (read lazily: flags may change behind the cursor). */
export function* positions(flags: Uint8Array, value: number): Iterable<number> {
  for (let i = 0; i < flags.length; i++) if (flags[i] === value) yield i;
}
