export * from './agent.js';
export * from './errors.js';
export * from './manager/index.js';
