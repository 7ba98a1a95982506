export * from './repositories.js';
export * from './volumes.js';
