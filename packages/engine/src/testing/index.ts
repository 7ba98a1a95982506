export * from './volumes.js';
