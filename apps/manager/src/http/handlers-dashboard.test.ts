import { describe, expect, it } from 'vitest';
import type { LiveVolumeRow } from '../db/dashboard.js';
import { overdueCheck } from '../loops/alert-rules.js';
import { parseSchedule } from '../loops/schedule.js';
import { classifyVolumes } from './handlers-dashboard.js';

// classifyVolumes looks slots up in each schedule's recent fire times; the alerts loop computes them per
// volume (overdueCheck). Random volumes must come out overdue exactly when the alert's rule says so.
const CRONS = ['0 2 * * *', '*/5 * * * *', '0 * * * *', '30 1,13 * * 1-5', '0 0 1 * *', '15 2 * * 0'];
const ZONES = ['UTC', 'Europe/Paris', 'America/New_York', 'Australia/Lord_Howe'];

function random(seed: number) {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

describe('the dashboard’s overdue count', () => {
  it('agrees with the volume_overdue alert’s rule on random volumes', () => {
    const seed = Number(process.env.STOWAGE_TEST_SEED ?? Date.now() % 1_000_000);
    console.log(`dashboard overdue equivalence (seed ${seed}; STOWAGE_TEST_SEED=${seed} replays it)`);
    const rand = random(seed);
    const now = new Date(Date.UTC(2026, 2 + Math.floor(rand() * 8), 1 + Math.floor(rand() * 27), 12));
    const ago = (maxDays: number) => new Date(now.getTime() - rand() * maxDays * 86_400_000);
    for (let round = 0; round < 400; round++) {
      const row: LiveVolumeRow = {
        id: String(round),
        state: 'available',
        backup_cron: CRONS[Math.floor(rand() * CRONS.length)]!,
        timezone: ZONES[Math.floor(rand() * ZONES.length)]!,
        schedule_enabled: true,
        schedule_since: ago(rand() < 0.5 ? 3 : 60),
        last_success_started_at: ago(rand() < 0.7 ? 2 : 40),
        last_attempt_at: null,
        last_attempt_state: 'completed',
      };
      const check = overdueCheck(
        parseSchedule(row.backup_cron!, row.timezone),
        row.last_success_started_at,
        row.schedule_since,
      );
      const expected = check !== null && now.getTime() > check.overdueAt.getTime();
      expect(classifyVolumes(now, [row]).overdue, `seed ${seed}, ${JSON.stringify(row)}`).toBe(
        expected ? 1 : 0,
      );
    }
  });
});
