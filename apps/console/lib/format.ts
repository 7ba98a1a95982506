/** Formatting shared by the screens: sizes, dates, ages, ratios, and errors in words. */
import type { ApiError } from '@stowage/api/console';

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];

export function bytes(n: number | null | undefined): string {
  if (n === null || n === undefined) return '—';
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${UNITS[unit]}`;
}

export function when(iso: string | null | undefined): string {
  if (!iso) return '—';
  return new Date(iso).toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
}

/** "3 h ago", "2 d ago": how stale a last backup is. */
export function age(iso: string | null | undefined, now = Date.now()): string {
  if (!iso) return 'never';
  const seconds = Math.max(0, (now - new Date(iso).getTime()) / 1000);
  if (seconds < 90) return `${Math.round(seconds)} s ago`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min ago`;
  if (seconds < 129_600) return `${Math.round(seconds / 3600)} h ago`;
  return `${Math.round(seconds / 86_400)} d ago`;
}

export function ratio(numerator: number, denominator: number): string {
  if (denominator <= 0 || numerator <= 0) return '—';
  return `${(numerator / denominator).toFixed(2)}×`;
}

export function percent(done: number, total: number | null | undefined): number {
  if (!total || total <= 0) return 0;
  return Math.min(100, Math.round((done / total) * 100));
}

/** An API error as a sentence a person can act on. */
export function errorText(error: unknown): string {
  if (error && typeof error === 'object' && 'code' in error && 'message' in error) {
    const e = error as ApiError;
    const lead: Record<string, string> = {
      unauthorized: 'You are signed out.',
      forbidden: 'Your role does not allow this.',
      not_found: 'It no longer exists.',
      conflict: 'It conflicts with the current state.',
      unavailable: 'A host or bucket cannot be reached.',
      unsupported: 'The manager does not support this yet.',
      rate_limited: 'Too many attempts; wait a little.',
    };
    return `${lead[e.code] ?? ''} ${e.message}`.trim();
  }
  return error instanceof Error ? error.message : String(error);
}
