export * from './repositories.js';
export * from './round-trip.js';
export * from './volumes.js';
