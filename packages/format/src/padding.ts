/**
 * Padmé (Nikitin, Barman, Lueks, Underwood, Hubaux, Ford: "Reducing Metadata Leakage from Encrypted Files and
 * Communication with PURBs", PETS 2019, §4): the length an object of `length` bytes is padded to. A length
 * L with E = ⌊log2 L⌋ keeps only its top ⌊log2 E⌋ + 1 significant bits, rounded up, so a padded length leaks
 * O(log log L) bits of L instead of log L; the overhead is at most 11.1 % (small objects) and about
 * 2^-(⌊log2 E⌋+1) at large ones (≤ 3.1 %, 1.6 % on average, for objects of about 1 MiB).
 */
export function padmeLength(length: number): number {
  if (!Number.isSafeInteger(length) || length < 0) throw new RangeError(`invalid length ${length}`);
  if (length < 2) return length;
  const e = floorLog2(length);
  const s = floorLog2(e) + 1;
  const lastBits = e - s;
  const grain = 2 ** lastBits;
  return Math.ceil(length / grain) * grain;
}

function floorLog2(n: number): number {
  // Exact for safe integers: Math.log2 can round 2^k − 1 up to k.
  let e = Math.floor(Math.log2(n));
  while (2 ** e > n) e--;
  while (2 ** (e + 1) <= n) e++;
  return e;
}
