import type { Context } from 'hono';
import type { ManagerConfig } from '../config.js';

/** Answers a GET for a file of the console's static export, or undefined when it is not one. */
export type AssetServer = (c: Context) => Promise<Response | undefined>;

/** The console's files (apps/console's static export), served beside the API on the same port. */
export function consoleAssets(_config: ManagerConfig): AssetServer | undefined {
  return undefined;
}
