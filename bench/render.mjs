// Renders a run of bench/run.mjs into the block of docs/benchmarks.md between <!-- bench:begin --> and
// <!-- bench:end -->: speeds, memory and repository sizes against restic, the padding, the chunk-size summary
// of --chunk-avg runs and the primitives' own figures.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const MiB = 1024 ** 2;

function mbps(bytes, s) {
  return s > 0 ? bytes / MiB / s : Infinity;
}

/** Stowage's runs of a scenario: `stowage` at the default, or one `stowage-<avg>` per --chunk-avg size. */
function oursOf(s) {
  return Object.keys(s)
    .filter((k) => k === 'stowage' || k.startsWith('stowage-'))
    .map((k) => ({ label: scenarioLabel(s, k), rows: s[k], avg: k.slice('stowage-'.length) }));
}

function scenarioLabel(s, key) {
  const round = s.round === undefined ? '' : ` #${s.round}`;
  return `${s.name}${round}${key === 'stowage' ? '' : ` ${key.slice('stowage-'.length)}`}`;
}

export function render(results) {
  const lines = [
    `Measured ${results.date.slice(0, 16).replace('T', ' ')} UTC on ${results.machine}.`,
    '',
    '| scenario | step | stowage MiB/s | restic MiB/s | speed ratio | stowage peak RSS | restic peak RSS | stowage repo (added) | restic repo (added) | size ratio | load (ours / restic) |',
    '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  ];
  const load = (row) => (row.load === undefined ? '?' : row.load.toFixed(1));
  for (const s of results.scenarios) {
    for (const { label, rows: st } of oursOf(s)) {
      const rs = s.restic;
      for (let i = 0; i < st.length; i++) {
        const a = st[i];
        const b = rs[i];
        const sa = mbps(a.size, a.seconds);
        const sb = mbps(b.size, b.seconds);
        const repoA =
          a.added === undefined
            ? ''
            : `${(a.repoBytes / MiB).toFixed(0)} (+${(a.added / MiB).toFixed(1)}) MiB`;
        const repoB =
          b.added === undefined
            ? ''
            : `${(b.repoBytes / MiB).toFixed(0)} (+${(b.added / MiB).toFixed(1)}) MiB`;
        // Only a meaningful ratio: both added at least 1 MiB (an unchanged re-backup adds a few KiB of metadata).
        const sizeRatio = a.added === undefined || b.added < MiB ? '' : `${(a.added / b.added).toFixed(2)}×`;
        const exact = a.exact === undefined ? '' : a.exact && b.exact ? ' (byte-exact)' : ' (NOT EXACT)';
        lines.push(
          `| ${label} | ${a.step}${exact} | ${sa.toFixed(0)} | ${sb.toFixed(0)} | ${(sa / sb).toFixed(2)}× | ` +
            `${(a.rss / MiB).toFixed(0)} MiB | ${(b.rss / MiB).toFixed(0)} MiB | ${repoA} | ${repoB} | ${sizeRatio} | ${load(a)} / ${load(b)} |`,
        );
      }
    }
  }
  // The padding that hides chunk sizes, as a share of what each backup uploaded (goal: ≤ 2 % on the OS image).
  lines.push(
    '',
    '| scenario | step | uploaded | of which padding | share |',
    '| --- | --- | ---: | ---: | ---: |',
  );
  for (const s of results.scenarios) {
    for (const { label, rows } of oursOf(s)) {
      for (const a of rows) {
        if (a.padding === undefined || a.uploaded < MiB) continue;
        lines.push(
          `| ${label} | ${a.step} | ${(a.uploaded / MiB).toFixed(1)} MiB | ${(a.padding / MiB).toFixed(1)} MiB | ` +
            `${((100 * a.padding) / a.uploaded).toFixed(2)} % |`,
        );
      }
    }
  }
  if (results.scenarios.some((s) => !('stowage' in s))) lines.push('', ...chunkSizeSummary(results));
  lines.push('', 'Primitives, one thread (`node bench/micro/<name>.mjs`, run by `npm run bench`):', '');
  for (const [name, text] of Object.entries(results.micro))
    lines.push(`${name}:`, '', '```', text, '```', '');
  return lines.join('\n');
}

/**
 * With --chunk-avg: per round and average, the OS image's figures against the targets — what the changed image
 * adds against restic's bytes of the same round, the speed ratios of each step, the repository and peak RSS.
 */
function chunkSizeSummary(results) {
  const lines = [
    'Per round and average chunk (OS image; speed ratios are ours over restic of the same round, load the 1-minute average when our step started):',
    '',
    '| round | avg | chunks (first) | changed adds | restic adds | changed vs restic | repository vs restic | first | changed | unchanged | restore | peak RSS | load |',
    '| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |',
  ];
  for (const s of results.scenarios.filter((x) => x.name === 'os-image')) {
    const rs = s.restic;
    for (const { avg, rows } of oursOf(s)) {
      const speed = (i) => `${(rs[i].seconds / rows[i].seconds).toFixed(2)}×`;
      const changed = rows[1];
      const theirs = rs[1];
      lines.push(
        `| ${s.round ?? 1} | ${avg} | ${rows[0].chunks ?? '?'} | ${(changed.added / MiB).toFixed(1)} MiB | ` +
          `${(theirs.added / MiB).toFixed(1)} MiB | ${(changed.added / theirs.added).toFixed(3)}× | ` +
          `${(rows[2].repoBytes / rs[2].repoBytes).toFixed(3)}× | ${speed(0)} | ${speed(1)} | ${speed(2)} | ` +
          `${rows[3] === undefined ? '' : speed(3)} | ${(Math.max(...rows.map((r) => r.rss)) / MiB).toFixed(0)} MiB | ` +
          `${rows.map((r) => r.load.toFixed(1)).join(' / ')} |`,
      );
    }
  }
  return lines;
}

/** Replaces the block in `root`/docs/benchmarks.md with `table`, formatted by the house formatter. */
export function updateDoc(root, table) {
  const doc = join(root, 'docs/benchmarks.md');
  const begin = '<!-- bench:begin -->';
  const end = '<!-- bench:end -->';
  let text = existsSync(doc) ? readFileSync(doc, 'utf8') : `# Benchmarks\n\n${begin}\n${end}\n`;
  if (!text.includes(begin)) text += `\n${begin}\n${end}\n`;
  text = text.replace(new RegExp(`${begin}[\\s\\S]*${end}`), `${begin}\n${table}\n${end}`);
  writeFileSync(doc, text);
  // The house formatter aligns tables; without it `npm test`'s lint refuses the generated block.
  spawnSync(join(root, 'node_modules/.bin/biome'), ['format', '--write', doc], {
    cwd: root,
    stdio: 'ignore',
  });
  console.log(`bench: wrote ${doc}`);
}
