/**
 * The browser's entry (`@stowage/api/console`): the client, the error shape and every schema, without the
 * OpenAPI builder (openapi.ts pulls in zod-openapi, which the console must not ship). With
 * `"sideEffects": false` the bundler keeps only what the console uses.
 */
export * from './agent.js';
export * from './errors.js';
export * from './manager/alerts.js';
export * from './manager/backups.js';
export * from './manager/client.js';
export * from './manager/dashboard.js';
export * from './manager/gc.js';
export * from './manager/hosts.js';
export * from './manager/jobs.js';
export * from './manager/primitives.js';
export * from './manager/recovery.js';
export * from './manager/roles.js';
export * from './manager/route.js';
export * from './manager/routes.js';
export * from './manager/schedules.js';
export * from './manager/sse.js';
export * from './manager/system.js';
export * from './manager/targets.js';
export * from './manager/tokens.js';
export * from './manager/users.js';
export * from './manager/verify.js';
export * from './manager/volumes.js';
