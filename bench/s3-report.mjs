// The tables of the S3 runs (bench/s3.mjs): rendered from bench/results/s3-latest.json (or a run's own JSON)
// into Markdown, and written between <!-- bench-s3:begin --> and <!-- bench-s3:end --> in docs/benchmarks.md.
//
// What they show, per configuration and step (first backup, changed image, unchanged again, the OS image as a
// second volume):
//   - requests by method (counted at the proxy), requests per GiB of new data, bytes sent, objects, the
//     bucket's MiB and what the step added, peak RSS;
//   - requests by area of the bucket and method: packs/, index/, chunks/ (manifest segments), manifests/,
//     other (config, keys, damage records, bucket probes); restic's data/, index/ and snapshots/ in the
//     same columns; the objects each step added per area and the mean pack;
//   - the chunk-size trade-off over every round against the targets: ≤ 300 requests per GiB of new data,
//     repository ≤ 1.1× restic's, the changed image adding ≤ 1.2× restic's bytes, peak RSS ≤ 256 MiB;
//   - a full listing of the data objects (packs/, restic data/), If-None-Match on this server, and the
//     request bill in AWS S3 Standard prices.

import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;
/** AWS S3 Standard request prices (us-east-1, per 1,000), to put request counts into money. */
const PRICE = { PUT: 0.005, POST: 0.005, LIST: 0.005, GET: 0.0004, HEAD: 0.0004, DELETE: 0 };
const METHODS = ['HEAD', 'PUT', 'GET', 'LIST', 'DELETE', 'POST'];
/** The targets of the issue, for the trade-off table. */
export const TARGETS = { requestsPerGiB: 300, repository: 1.1, changedAdds: 1.2, rss: 256 * MiB };
/** Areas of the request table, in column order; restic's own areas map onto the same columns. */
const AREAS = ['packs', 'index', 'chunks', 'manifests', 'other'];
const RESTIC_AREAS = { data: 'packs', index: 'index', snapshots: 'manifests' };

const mib = (b) => (b / MiB).toFixed(1);

/** The new data a step brings (tool-independent), for "requests per GiB of new data". */
export function newData(step, sizes) {
  if (step.step === 'first backup') return sizes.baseData;
  if (step.step === 'changed image') return sizes.changedData;
  return 0;
}

/** Area column of a bucket key's first segment (`packs`, `data`, `config`…) for a tool. */
function areaColumn(segment, kind) {
  if (kind === 'restic') return RESTIC_AREAS[segment] ?? 'other';
  return ['packs', 'index', 'chunks', 'manifests'].includes(segment) ? segment : 'other';
}

/**
 * One step's requests by area and method, from the proxy's `byOp` (`PUT packs 200`, `LIST index 200`,
 * `GET bucket?location 200`, `POST packs?uploads 200`): per area, per method, the count and the answers that
 * were not 2xx.
 */
export function requestsByArea(step, kind) {
  const out = Object.fromEntries(AREAS.map((a) => [a, { total: 0, methods: {} }]));
  for (const [key, n] of Object.entries(step.requests.byOp)) {
    const parts = key.split(' ');
    const method = parts[0];
    const status = parts.at(-1);
    const segment = parts.slice(1, -1).join(' ').split('?')[0];
    const area = out[areaColumn(segment, kind)];
    area.total += n;
    area.methods[method] ??= { n: 0, failed: {} };
    area.methods[method].n += n;
    if (!/^2\d\d$/.test(status))
      area.methods[method].failed[status] = (area.methods[method].failed[status] ?? 0) + n;
  }
  return out;
}

/** `955 HEAD (955 × 404) + 955 PUT`, or empty. */
function areaCell(area) {
  return METHODS.filter((m) => area.methods[m])
    .map((m) => {
      const { n, failed } = area.methods[m];
      const notes = Object.entries(failed).map(([status, k]) => (k === n ? status : `${k} × ${status}`));
      return `${n} ${m}${notes.length > 0 ? ` (${notes.join(', ')})` : ''}`;
    })
    .join(' + ');
}

/** Objects (and bytes) a step added per bucket area: its listing against the previous step's. */
function addedByArea(c, i) {
  const after = c.steps[i].bucket.byArea;
  const before = i === 0 ? {} : c.steps[i - 1].bucket.byArea;
  const out = {};
  for (const area of new Set([...Object.keys(after), ...Object.keys(before)])) {
    out[area] = {
      objects: (after[area]?.objects ?? 0) - (before[area]?.objects ?? 0),
      bytes: (after[area]?.bytes ?? 0) - (before[area]?.bytes ?? 0),
    };
  }
  return out;
}

/** `a` when all values agree to the shown precision, else `min–max`. */
function span(values, format) {
  const shown = values.filter((v) => v !== undefined && Number.isFinite(v));
  if (shown.length === 0) return '';
  const lo = format(Math.min(...shown));
  const hi = format(Math.max(...shown));
  return lo === hi ? lo : `${lo}–${hi}`;
}

/** True when the Stowage runs stored packs (format version 2 with packs), false for one object per chunk. */
function storesPacks(results) {
  return results.configurations.some(
    (c) =>
      c.tool !== 'restic' &&
      c.steps.some((st) => Object.keys(st.requests.byOp).some((k) => k.startsWith('PUT packs'))),
  );
}

export function render(all) {
  const { sizes } = all;
  const rounds = all.repeat ?? 1;
  // The detailed tables show the first round; the trade-off table spans every round.
  const results = { ...all, configurations: all.configurations.filter((c) => (c.round ?? 1) === 1) };
  const packs = storesPacks(all);
  const perGiB = (n, bytes) => (bytes > 0 ? (n / (bytes / GiB)).toFixed(0) : '');
  const lines = [
    `Measured ${results.date.slice(0, 16).replace('T', ' ')} UTC at commit ${results.git.head}` +
      (results.git.dirty.length > 0 ? ` (uncommitted changes in ${results.git.dirty.join(', ')})` : '') +
      `, format version ${results.formatVersion} (${packs ? 'chunks in packs' : 'one object per chunk, before packs'})` +
      `; ${results.restic ?? 'no restic'}; ${results.ceph.split(' (')[0]} (memstore OSD)` +
      (all.quick ? `; QUICK: only the first ${all.quick} MiB of each image, not a benchmark` : '') +
      '.',
    '',
    `Data: base.img ${mib(sizes.imageBytes)} MiB with ${mib(sizes.baseData)} MiB in non-zero 4 KiB blocks (the ` +
      `new data of the first backup); changed.img differs from it in ${mib(sizes.changedData)} MiB of non-zero ` +
      'blocks (the new data of the changed image).',
    '',
    'Requests per step, counted at the proxy (init not included), and the bucket afterwards:',
    '',
    '| configuration | step | requests | HEAD | PUT | GET | LIST | DELETE | POST | per GiB new | sent MiB | objects | bucket MiB (added) | peak RSS |',
    '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  ];
  for (const c of results.configurations) {
    for (const st of c.steps) {
      const m = st.requests.byMethod;
      lines.push(
        `| ${c.tool} | ${st.step} | ${st.requests.requests} | ${m.HEAD} | ${m.PUT} | ${m.GET} | ${m.LIST} | ` +
          `${m.DELETE} | ${m.POST} | ${perGiB(st.requests.requests, newData(st, sizes))} | ` +
          `${mib(st.requests.bytesUp)} | ${st.bucket.objects} | ${mib(st.bucket.bytes)} (+${mib(st.addedBytes)}) | ` +
          `${(st.rss / MiB).toFixed(0)} MiB |`,
      );
    }
  }
  lines.push(
    '',
    'Init requests: ' +
      results.configurations.map((c) => `${c.tool} ${c.init.requests}`).join(', ') +
      '. Peak RSS is the whole command (GNU time); wall times are in the JSON but were taken on a shared machine.',
    '',
    'Requests per step by area of the bucket and method (answers other than 2xx in brackets), and the objects ' +
      `the step added: packs/ = ${packs ? 'chunk objects appended into packs' : 'not used (no packs yet)'}, ` +
      `index/ = index objects (chunk → pack location), chunks/ = ${packs ? "the manifest's segments" : 'one object per chunk and the segments'}, ` +
      "manifests/ = the manifests' roots, other = config, keys, damage records, bucket probes; restic's data/, " +
      'index/ and snapshots/ are in the packs/, index/ and manifests/ columns (its other: config, keys, locks). ' +
      'Chunks: data chunks in the volume (new ones, stored this step, in brackets; from the summary):',
    '',
    '| configuration | step | chunks (new) | packs/ | index/ | chunks/ | manifests/ | other | added: packs / index / chunks | mean pack |',
    '| --- | --- | ---: | --- | --- | --- | --- | --- | ---: | ---: |',
  );
  for (const c of results.configurations) {
    const kind = c.tool === 'restic' ? 'restic' : 'stowage';
    c.steps.forEach((st, i) => {
      const byArea = requestsByArea(st, kind);
      const added = addedByArea(c, i);
      const packArea = kind === 'restic' ? 'data' : 'packs';
      const n = (area) => added[area]?.objects ?? 0;
      const meanBytes = n(packArea) > 0 ? added[packArea].bytes / n(packArea) : undefined;
      const mean =
        meanBytes === undefined
          ? ''
          : meanBytes < MiB
            ? `${(meanBytes / 1024).toFixed(1)} KiB`
            : `${mib(meanBytes)} MiB`;
      const chunks = st.summary === undefined ? '' : `${st.summary.chunks} (${st.summary.chunks_new ?? '?'})`;
      const cells = AREAS.map((a) => (kind === 'restic' && a === 'chunks' ? '—' : areaCell(byArea[a])));
      // The summary's own count of packs (packs_new, when the CLI reports it) should agree with the listing.
      const said = st.summary?.packs_new;
      const disagree = said !== undefined && said !== n(packArea) ? ` (summary: ${said})` : '';
      const addedCell = `+${n(packArea)}${disagree} / +${n('index')} / ${kind === 'restic' ? '—' : `+${n('chunks')}`}`;
      lines.push(`| ${c.tool} | ${st.step} | ${chunks} | ${cells.join(' | ')} | ${addedCell} | ${mean} |`);
    });
  }
  lines.push(
    '',
    `Chunk size trade-off (Stowage against restic in the same round; ${rounds === 1 ? 'one repository each' : `range over ${rounds} fresh repositories each`}; ` +
      '"first" = first backup, "changed" = the changed image; the other tables show the first round). ' +
      `Targets: ≤ ${TARGETS.requestsPerGiB} requests per GiB of new data, repository ≤ ${TARGETS.repository}× ` +
      `restic's, the changed image adding ≤ ${TARGETS.changedAdds}× restic's bytes, peak RSS ≤ ${TARGETS.rss / MiB} MiB:`,
    '',
    '| configuration | mean chunk | requests / GiB new, first | requests / GiB new, changed | repository vs restic | changed adds vs restic | changed adds | peak RSS (max of steps) | targets not met |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |',
    `| target | | ≤ ${TARGETS.requestsPerGiB} | ≤ ${TARGETS.requestsPerGiB} | ≤ ${TARGETS.repository.toFixed(1)}× | ` +
      `≤ ${TARGETS.changedAdds.toFixed(1)}× | | ≤ ${TARGETS.rss / MiB} MiB | |`,
  );
  const first = (c) => c.steps.find((st) => st.step === 'first backup');
  const changed = (c) => c.steps.find((st) => st.step === 'changed image');
  for (const tool of [...new Set(all.configurations.map((c) => c.tool))]) {
    const runs = all.configurations.filter((c) => c.tool === tool);
    const pair = (c) =>
      all.configurations.find((r) => r.tool === 'restic' && (r.round ?? 1) === (c.round ?? 1));
    const meanChunk = (c) => {
      const s = first(c).summary;
      return s === undefined ? undefined : (s.size - s.hole_bytes) / s.chunks / MiB;
    };
    const ratio = (c, f) => (tool === 'restic' || pair(c) === undefined ? undefined : f(c) / f(pair(c)));
    const figures = (c) => ({
      first: first(c).requests.requests / (sizes.baseData / GiB),
      changed: changed(c).requests.requests / (sizes.changedData / GiB),
      repository: ratio(c, (x) => first(x).bucket.bytes),
      changedAdds: ratio(c, (x) => changed(x).addedBytes),
      rss: Math.max(...c.steps.map((st) => st.rss)),
    });
    const each = runs.map(figures);
    const cells = [
      span(runs.map(meanChunk), (v) => `${v.toFixed(2)} MiB`),
      span(
        each.map((f) => f.first),
        (v) => v.toFixed(0),
      ),
      span(
        each.map((f) => f.changed),
        (v) => v.toFixed(0),
      ),
      span(
        each.map((f) => f.repository),
        (v) => `${v.toFixed(3)}×`,
      ),
      span(
        each.map((f) => f.changedAdds),
        (v) => `${v.toFixed(3)}×`,
      ),
      span(
        runs.map((c) => changed(c).addedBytes / MiB),
        (v) => `${v.toFixed(1)} MiB`,
      ),
      span(
        each.map((f) => f.rss / MiB),
        (v) => `${v.toFixed(0)} MiB`,
      ),
      tool === 'restic' ? '' : notMet(each),
    ];
    lines.push(`| ${tool} | ${cells.join(' | ')} |`);
  }
  const probe = results.configurations.find((c) => c.conditionalPut)?.conditionalPut;
  const listings = results.configurations
    .map(
      (c) =>
        `${c.tool} ${c.listing.prefix} ${c.listing.keys} keys in ${c.listing.requests} LIST, ${mib(c.listing.bytesDown)} MiB`,
    )
    .join('; ');
  const usd = (st) =>
    Object.entries(st.requests.byMethod).reduce((sum, [k, n]) => sum + ((PRICE[k] ?? 0) * n) / 1000, 0);
  lines.push(
    '',
    `A full listing of the data objects after the last step: ${listings}. Checked on this server (Stowage's ` +
      'manifest commit and repository init rely on it): a second PUT with `If-None-Match: *` answered ' +
      `${probe?.secondPutStatus ?? '—'} and the first object ${probe?.kept ? 'was kept' : 'was NOT kept'}.`,
    '',
    'In AWS S3 Standard prices (PUT/POST/LIST $0.005, GET/HEAD $0.0004 per 1,000), per GiB of new data, the ' +
      'first backup / the changed image cost: ' +
      results.configurations
        .map(
          (c) =>
            `${c.tool} $${((usd(first(c)) / sizes.baseData) * GiB).toFixed(5)} / ` +
            `$${((usd(changed(c)) / sizes.changedData) * GiB).toFixed(5)}`,
        )
        .join(', ') +
      '.',
  );
  return lines.join('\n');
}

/** The targets a configuration missed in some round: `changed adds (2 of 3)`, `none` when all were met. */
function notMet(each) {
  const checks = [
    ['requests, first', (f) => f.first <= TARGETS.requestsPerGiB],
    ['requests, changed', (f) => f.changed <= TARGETS.requestsPerGiB],
    ['repository', (f) => f.repository === undefined || f.repository <= TARGETS.repository],
    ['changed adds', (f) => f.changedAdds === undefined || f.changedAdds <= TARGETS.changedAdds],
    ['peak RSS', (f) => f.rss <= TARGETS.rss],
  ];
  const missed = [];
  for (const [name, ok] of checks) {
    const met = each.filter(ok).length;
    if (met === each.length) continue;
    missed.push(each.length === 1 || met === 0 ? name : `${name} (met in ${met} of ${each.length})`);
  }
  return missed.length === 0 ? 'none' : missed.join(', ');
}

/** Writes `text` between the S3 markers of docs/benchmarks.md (only that block; the rest is hand-written). */
export function updateDoc(root, text) {
  const doc = join(root, 'docs/benchmarks.md');
  const begin = '<!-- bench-s3:begin -->';
  const end = '<!-- bench-s3:end -->';
  // Read right before writing: others may be editing their own sections of the file.
  let body = readFileSync(doc, 'utf8');
  if (!body.includes(begin)) {
    console.error(`bench s3: ${doc} has no ${begin} … ${end} block; not written (the tables are above)`);
    return;
  }
  body = body.replace(new RegExp(`${begin}[\\s\\S]*?${end}`), `${begin}\n${text}\n${end}`);
  writeFileSync(doc, body);
  // The house formatter aligns tables; without it `npm test`'s lint refuses the generated block.
  spawnSync(join(root, 'node_modules/.bin/biome'), ['format', '--write', doc], {
    cwd: root,
    stdio: 'ignore',
  });
  console.log(`bench s3: wrote ${doc}`);
}
