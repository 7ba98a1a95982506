// FastCDC 2020 scan kernel (AssemblyScript → WebAssembly).
//
// Memory layout, all owned by the JavaScript side (src/kernel.ts), which imports the memory shared:
//   tablesOffset()          GEAR    256 × u64 (already XOR'd with the seed)
//   tablesOffset() + 2048   GEAR_LS 256 × u64 (GEAR << 1, XOR'd with seed << 1)
//   tablesOffset() + 4096   input window
//   after the window        scan buffers (data scanned in place, read by other threads too)
//
// The kernel knows nothing about chunk sizes: the caller hands it a run of whole byte pairs and the
// position where the small-chunk mask gives way to the large-chunk mask. It returns the address of
// the first cut point, exactly as the crate's `cut()` would report it relative to the same start:
// the address of the pair's first byte when the test after that byte fires, the address of its
// second byte when the test after the second byte fires. No cut: it returns `end`.

let lastHash: u64 = 0;
// Bytes jumped over by the zero-run fast path since instantiation (tests check that it is exercised).
let zeroSkipped: f64 = 0;

// Fixed addresses, so that table lookups compile to a load with a constant offset. The module has no
// static data beyond a few bytes (see heapBase()), so page 0 is free from 1024 on.
// @ts-ignore: decorator
@inline const GEAR: usize = 1024;
// @ts-ignore: decorator
@inline const GEAR_LS: usize = GEAR + 2048;

/** First byte of the gear tables; the input window follows them (at tablesOffset() + 4096). */
export function tablesOffset(): usize {
  return GEAR;
}

/** End of the module's own static data; the JavaScript side checks it is below tablesOffset(). */
export function heapBase(): usize {
  return __heap_base;
}

/** Bytes the zero-run fast path has skipped in this thread so far (for tests). */
export function skippedBytes(): f64 {
  return zeroSkipped;
}

/** The rolling hash after the last `scan`: at the cut point, or after the last pair. */
export function hash(): u64 {
  return lastHash;
}

// Bytes hashed between two checks for the zero-run fixed point (see `scan`), so a zero run is skipped from
// about BLOCK + 64 bytes after its start on. Measured end to end (StreamingChunker, random data, default
// sizes) against the kernel without the fast path: 1024 and 4096 the same speed, 256 about 5% slower, a
// check in every iteration of the four-pair loop also ~5%.
// @ts-ignore: decorator
@inline const BLOCK: usize = 1024;

/**
 * Scans the pairs in [p, end); `norm` (p <= norm <= end, both an even distance from p) is where
 * `maskS` gives way to `maskL`. `h` is the hash carried in from the previous pairs of the chunk.
 *
 * Zero runs are skipped, and the result is still exactly that of hashing every pair. Why:
 *
 * - Pair k of a chunk (bytes x = b[2k], y = b[2k + 1]) does a = (h << 2) + GEAR_LS[x] and cuts at 2k if
 *   (a & (mask << 1)) == 0; else h' = a + GEAR[y], and it cuts at 2k + 1 if (h' & mask) == 0. All mod
 *   2^64. Between pairs the scan's whole state is h; the position only picks the mask (maskS before
 *   `norm`, maskL from there) and where to stop.
 * - For a zero pair this is h' = f(h) = 4h + c with c = GEAR_LS[0] + GEAR[0]: the odd step adds GEAR[0]
 *   without a shift, the even step shifts by 2 and adds GEAR_LS[0], so the map is uniform per pair, not
 *   per byte (which is why the skip moves in whole pairs and why both tests are checked below).
 *   f^32(x) = 4^32·x + c·(4^31 + … + 1) and 4^32·x = 2^64·x = 0, so after 32 zero pairs (64 zero bytes
 *   aligned on pairs, i.e. at most 65 zero bytes of input) the hash is zh = f^32(0) whatever it was before,
 *   including the 0 a chunk starts from; and f(zh) = f^32(f(0)) = zh: a fixed point. With h = zh, the
 *   even step of a zero pair always gives za = (zh << 2) + GEAR_LS[0].
 * - So if, at a pair boundary, h == zh and, for the current mask, (za & (mask << 1)) != 0 and
 *   (zh & mask) != 0 ("zero pairs do not cut"), a zero pair neither cuts nor changes the state; by
 *   induction neither does any run of them. Jumping over every whole zero pair before `stop` and going on
 *   from the first pair that is not (0, 0), with h == zh, is what the pair-by-pair loop would do.
 *   The jump never passes `stop`: at `norm` the masks change and the condition is re-evaluated for
 *   maskL (a zero run may go on cutting under one mask but not the other); at `end` the caller decides.
 *   If zero pairs do cut under a mask, nothing is skipped with it and the loop finds the cut. (With this
 *   loop structure the skip check is only reached after a pair of the same pass has produced h, which
 *   would have cut if h == zh and zeros cut; the explicit condition keeps the argument local.)
 * - In closed form: GEAR_LS[0] = GEAR[0] << 1 (also seeded), so c = 3·GEAR[0] and zh = c·(4^32 − 1)/3 =
 *   −GEAR[0], za = 2·zh; a zero run cuts under a mask iff −GEAR[0] has none of its bits. With the published
 *   table it does not at any size the crate tests (zero-runs.test.ts); some seeds make it cut.
 * - The condition tested is h == zh itself, not "64 zero bytes were seen", so it needs no counting and
 *   stays exact across calls, windows and pushes (the caller passes h in). A non-zero stretch whose hash
 *   happens to equal zh just costs one look at its next bytes.
 */
export function scan(p: usize, norm: usize, end: usize, h: u64, maskS: u64, maskL: u64): usize {
  const g0ls = load<u64>(GEAR_LS);
  const zc = g0ls + load<u64>(GEAR);
  let zh: u64 = 0;
  for (let i = 0; i < 32; i++) zh = (zh << 2) + zc;
  const za = (zh << 2) + g0ls;

  let mask = maskS;
  let maskLs = maskS << 1;
  let stop = norm;
  // Two passes share one loop body: the first up to `norm` with the small-chunk masks, the second
  // up to `end` with the large-chunk masks.
  for (let pass = 0; pass < 2; pass++) {
    const zeroPairsPass = (za & maskLs) != 0 && (zh & mask) != 0;
    // Blocks of up to BLOCK bytes; after each, the check for the fixed point. Keeping that check out
    // of the four-pair loop keeps the loop as fast as without it (see BLOCK).
    for (;;) {
      const blockEnd = stop - p > BLOCK ? p + BLOCK : stop;
      // Four pairs per iteration. The eight tests are separate, almost never taken branches (measured
      // faster than OR-ing them into one branch); when one fires, the four pairs are examined again one
      // at a time below, from the hash they started with.
      while (p + 8 <= blockEnd) {
        const a1 = (h << 2) + load<u64>(<usize>load<u8>(p) << 3, GEAR_LS);
        const b1 = a1 + load<u64>(<usize>load<u8>(p, 1) << 3, GEAR);
        const a2 = (b1 << 2) + load<u64>(<usize>load<u8>(p, 2) << 3, GEAR_LS);
        const b2 = a2 + load<u64>(<usize>load<u8>(p, 3) << 3, GEAR);
        const a3 = (b2 << 2) + load<u64>(<usize>load<u8>(p, 4) << 3, GEAR_LS);
        const b3 = a3 + load<u64>(<usize>load<u8>(p, 5) << 3, GEAR);
        const a4 = (b3 << 2) + load<u64>(<usize>load<u8>(p, 6) << 3, GEAR_LS);
        const b4 = a4 + load<u64>(<usize>load<u8>(p, 7) << 3, GEAR);
        if ((a1 & maskLs) == 0) break;
        if ((b1 & mask) == 0) break;
        if ((a2 & maskLs) == 0) break;
        if ((b2 & mask) == 0) break;
        if ((a3 & maskLs) == 0) break;
        if ((b3 & mask) == 0) break;
        if ((a4 & maskLs) == 0) break;
        if ((b4 & mask) == 0) break;
        h = b4;
        p += 8;
      }
      // A test fired in the next four pairs (which then contain the cut), or fewer than four pairs are
      // left before `stop`: up to four pairs one at a time. (Otherwise the block simply ended.)
      if (p + 8 <= blockEnd || blockEnd == stop) {
        const next = stop - p > 8 ? p + 8 : stop;
        while (p < next) {
          h = (h << 2) + load<u64>(<usize>load<u8>(p) << 3, GEAR_LS);
          if ((h & maskLs) == 0) {
            lastHash = h;
            return p;
          }
          h += load<u64>(<usize>load<u8>(p, 1) << 3, GEAR);
          if ((h & mask) == 0) {
            lastHash = h;
            return p + 1;
          }
          p += 2;
        }
      }
      // p is at a pair boundary and h is the hash there.
      if (h == zh && zeroPairsPass) {
        const q = skipZeroPairs(p, stop);
        zeroSkipped += <f64>(q - p);
        p = q;
      }
      if (p >= stop) break;
    }
    mask = maskL;
    maskLs = maskL << 1;
    stop = end;
  }
  lastHash = h;
  return end;
}

/**
 * The first pair in [p, stop) (an even distance apart) that is not two zero bytes, or `stop`.
 * 64 bytes per step while they are all zero, then 16, then pairs. Unaligned v128 loads are fine.
 */
// @ts-ignore: decorator
@inline function skipZeroPairs(p: usize, stop: usize): usize {
  while (stop - p >= 64) {
    const v = v128.or(
      v128.or(v128.load(p), v128.load(p, 16)),
      v128.or(v128.load(p, 32), v128.load(p, 48)),
    );
    if (v128.any_true(v)) break;
    p += 64;
  }
  while (stop - p >= 16 && !v128.any_true(v128.load(p))) p += 16;
  while (p < stop && load<u16>(p) == 0) p += 2;
  return p;
}
