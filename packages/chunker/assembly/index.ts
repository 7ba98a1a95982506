// FastCDC 2020 scan kernel (AssemblyScript → WebAssembly).
//
// Memory layout, all owned by the JavaScript side (src/kernel.ts):
//   tablesOffset()          GEAR    256 × u64 (already XOR'd with the seed)
//   tablesOffset() + 2048   GEAR_LS 256 × u64 (GEAR << 1, XOR'd with seed << 1)
//   tablesOffset() + 4096   input window
//
// The kernel knows nothing about chunk sizes: the caller hands it a run of whole byte pairs and the
// position where the small-chunk mask gives way to the large-chunk mask. It returns the address of
// the first cut point, exactly as the crate's `cut()` would report it relative to the same start:
// the address of the pair's first byte when the test after that byte fires, the address of its
// second byte when the test after the second byte fires. No cut: it returns `end`.

let lastHash: u64 = 0;

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

/** The rolling hash after the last `scan`: at the cut point, or after the last pair. */
export function hash(): u64 {
  return lastHash;
}

/**
 * Scans the pairs in [p, end); `norm` (p <= norm <= end, both an even distance from p) is where
 * `maskS` gives way to `maskL`. `h` is the hash carried in from the previous pairs of the chunk.
 */
export function scan(p: usize, norm: usize, end: usize, h: u64, maskS: u64, maskL: u64): usize {
  let mask = maskS;
  let maskLs = maskS << 1;
  let stop = norm;
  // Two passes share one loop body: the first up to `norm` with the small-chunk masks, the second
  // up to `end` with the large-chunk masks.
  for (let pass = 0; pass < 2; pass++) {
    // Four pairs per iteration. The eight tests are separate, almost never taken branches (measured
    // faster than OR-ing them into one branch); when one fires, the four pairs are examined again one
    // at a time below, from the hash they started with.
    while (p + 8 <= stop) {
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
    // One pair at a time: the tail of the run, and the pairs examined again after a hit above.
    while (p < stop) {
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
    mask = maskL;
    maskLs = maskL << 1;
    stop = end;
  }
  lastHash = h;
  return end;
}
