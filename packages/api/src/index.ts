export * from './agent.js';
export * from './errors.js';
