import { PassThrough } from 'node:stream';
import { run } from '../cli/main.js';

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the `manager` CLI in this process, as tests do: its exit code and everything it wrote. */
export async function runCli(
  argv: string[],
  env: NodeJS.ProcessEnv = {},
  /** Its working directory (null: this process's). */
  cwd: string | null = '/tmp',
): Promise<CliResult> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (d) => {
    out += d;
  });
  stderr.on('data', (d) => {
    err += d;
  });
  const code = await run(argv, env, { stdout, stderr, ...(cwd === null ? {} : { cwd }) });
  return { code, stdout: out, stderr: err };
}
