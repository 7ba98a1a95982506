// Regenerates packages/format/src/testdata/golden/ (subkeys and the gear table, keyed cut points, chunks, config, key file), golden-damage/ (damage records)
// or golden-manifest/ (one backup: a pack of two chunks, its index object, a manifest's root and segments). Only after a format change that bumped FORMAT_VERSION (and
// docs/format.md), or for a newly added optional object; vectors already released are immutable. From the
// repository root:
//   node --conditions=source --import tsx packages/format/scripts/generate-golden.ts [golden|golden-damage|golden-manifest]
import { mkdirSync, writeFileSync } from 'node:fs';
import { buildDamageGoldenVectors, buildGoldenVectors } from '../src/testdata/golden-builder.js';
import { buildManifestGoldenVectors } from '../src/testdata/golden-manifest-builder.js';

const sets: Record<string, () => Promise<Record<string, Uint8Array>> | Record<string, Uint8Array>> = {
  golden: buildGoldenVectors,
  'golden-damage': buildDamageGoldenVectors,
  'golden-manifest': buildManifestGoldenVectors,
};
const wanted = process.argv[2];
if (wanted === undefined || !(wanted in sets)) {
  console.error(`usage: generate-golden.ts ${Object.keys(sets).join('|')}`);
  process.exit(2);
}
const dir = new URL(`../src/testdata/${wanted}/`, import.meta.url);
mkdirSync(dir, { recursive: true });
for (const [name, bytes] of Object.entries(await sets[wanted]!())) {
  writeFileSync(new URL(name, dir), bytes);
  console.log(`wrote ${name} (${bytes.length} bytes)`);
}
