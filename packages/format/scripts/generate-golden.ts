// Regenerates packages/format/src/testdata/golden/ (the version-1 set) and golden-damage/ (damage records,
// an optional object added to version 1). Only after a format change that bumped FORMAT_VERSION (and
// docs/format.md), or for a newly added optional object; vectors already released are immutable. From the
// repository root:
//   node --conditions=source --import tsx packages/format/scripts/generate-golden.ts [golden|golden-damage]
import { mkdirSync, writeFileSync } from 'node:fs';
import { buildDamageGoldenVectors, buildGoldenVectors } from '../src/testdata/golden-builder.js';

const sets: Record<string, () => Promise<Record<string, Uint8Array>> | Record<string, Uint8Array>> = {
  golden: buildGoldenVectors,
  'golden-damage': buildDamageGoldenVectors,
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
