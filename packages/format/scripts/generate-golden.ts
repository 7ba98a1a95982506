// Regenerates packages/format/src/testdata/golden/. Only after a format change that bumped FORMAT_VERSION
// (and docs/format.md); vectors of a released version are immutable. From the repository root:
//   node --conditions=source --import tsx packages/format/scripts/generate-golden.ts
import { mkdirSync, writeFileSync } from 'node:fs';
import { buildGoldenVectors } from '../src/testdata/golden-builder.js';

const dir = new URL('../src/testdata/golden/', import.meta.url);
mkdirSync(dir, { recursive: true });
for (const [name, bytes] of Object.entries(await buildGoldenVectors())) {
  writeFileSync(new URL(name, dir), bytes);
  console.log(`wrote ${name} (${bytes.length} bytes)`);
}
