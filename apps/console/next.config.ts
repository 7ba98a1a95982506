// The config is at the repository's root (see there); `next build apps/console` looks for one here.
export { default } from '../../next.config';
