// Command-line helpers shared by the bench scripts: `--help` prints a script's header comment, and an option a
// script does not know is refused (a typo would otherwise start a long run without it).
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** The leading `//` comment of the script at `url` (its first line, the shebang, skipped), as plain text. */
export function usage(url) {
  const lines = readFileSync(fileURLToPath(url), 'utf8').split('\n').slice(1);
  const end = lines.findIndex((l) => !l.startsWith('//'));
  return lines
    .slice(0, end)
    .map((l) => l.replace(/^\/\/ ?/, ''))
    .join('\n');
}

/**
 * Exits with status 2 on an argument that is neither one of `flags` nor one of `options` followed by a value;
 * prints the header comment of `url` and exits 0 on `--help` or `-h`.
 */
export function checkArguments(argv, { name, url, flags, options }) {
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--help' || argv[i] === '-h') {
      console.log(usage(url));
      process.exit(0);
    }
    if (options.includes(argv[i]) && i + 1 < argv.length) i++;
    else if (!flags.includes(argv[i])) {
      console.error(`${name}: unknown or incomplete option ${argv[i]} (--help lists them)`);
      process.exit(2);
    }
  }
}
