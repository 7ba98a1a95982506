import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AxeBuilder } from '@axe-core/playwright';
import { ApiError } from '@stowage/api';
import { startS3rver, type TestS3Server } from '@stowage/object-store/testing';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestSystem, type TestSystem } from '../../apps/manager/src/testing/embedded.js';
import { chromiumRequired, chromiumUnavailableReason, launchChromium } from './chromium.js';

/** Screenshots of every screen, kept as the test's artifacts (gitignored; good ones go to docs/console/). */
export const ARTIFACTS = fileURLToPath(new URL('../../apps/console/e2e-artifacts/', import.meta.url));
const EXPORT_INDEX = fileURLToPath(new URL('../../apps/console/out/index.html', import.meta.url));
const MiB = 1024 * 1024;
const PASSWORD = 'correct horse battery staple';
const unavailable = chromiumUnavailableReason();

describe.runIf(chromiumRequired && unavailable !== undefined)(
  'the console in a browser (chromium required)',
  () => {
    it('has chromium', () => {
      expect.fail(`STOWAGE_REQUIRE_CHROMIUM=1 but ${unavailable}`);
    });
  },
);

/**
 * The console in Debian's chromium against a real manager (its static export served on the API's port), its
 * real agent and an in-process S3 server: the issue's flow, start to end, with axe-core on every screen.
 */
describe.skipIf(unavailable !== undefined)(
  `the console in a browser${unavailable === undefined ? '' : ` (skipped: ${unavailable})`}`,
  () => {
    let system: TestSystem;
    let s3: TestS3Server;
    let browser: Browser;
    let context: BrowserContext;
    let page: Page;

    beforeAll(async () => {
      expect(existsSync(EXPORT_INDEX), 'the console is built by `npm run build`').toBe(true);
      mkdirSync(ARTIFACTS, { recursive: true });
      [s3, system, browser] = await Promise.all([
        startS3rver({ buckets: ['console'] }),
        startTestSystem(),
        launchChromium(),
      ]);
      for (const [name, role] of [
        ['alice', 'admin'],
        ['victor', 'viewer'],
      ] as const) {
        await system.client.request('createUser', { body: { name, role, password: PASSWORD } });
      }
      context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
      page = await context.newPage();
      page.on('pageerror', (error) => console.error('console page error:', error.message));
    }, 120_000);
    afterAll(async () => {
      await browser?.close();
      await system?.stop();
      await s3?.stop();
    });

    /** A screenshot, and axe-core's verdict: no serious or critical violation. */
    const screen = async (name: string, on: Page = page) => {
      await on.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
      const { violations } = await new AxeBuilder({ page: on }).analyze();
      const bad = violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
      expect(
        bad.map((v) => `${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(' ')).join(', ')})`),
        name,
      ).toEqual([]);
    };
    const nav = (label: string) =>
      page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: label });

    it('signs in, creates a target, a volume and its schedule, backs up, restores byte-exact', async () => {
      const url = system.embedded.manager.url;
      await page.goto(url);
      await page.getByRole('heading', { name: 'Sign in to Stowage' }).waitFor();
      await screen('sign-in');
      await page.getByLabel('Name', { exact: true }).fill('alice');
      await page.getByLabel('Password', { exact: true }).fill(PASSWORD);
      await page.getByRole('button', { name: 'Sign in', exact: true }).click();
      await page.getByRole('heading', { name: 'Dashboard' }).waitFor();
      await page.getByRole('list', { name: 'Volumes by protection' }).waitFor();
      await screen('dashboard');

      // A target: its location is tested before anything is saved — a missing bucket is refused with its
      // cause and no target is recorded — then saving writes the repository and the probe runs again.
      await nav('Targets').click();
      const form = page.getByRole('form', { name: 'New target' });
      await form.getByLabel(/^Kind/).selectOption('s3');
      await form.getByLabel('Name', { exact: true }).fill('bucket');
      await form.getByLabel('Endpoint (empty: AWS)', { exact: true }).fill(s3.endpoint);
      await form.getByLabel('Bucket', { exact: true }).fill('no-such-bucket');
      await form.getByLabel('Access key id', { exact: true }).fill(s3.accessKeyId);
      await form.getByLabel('Secret access key', { exact: true }).fill(s3.secretAccessKey);
      await form.getByRole('button', { name: 'Test connection and save' }).click();
      await page
        .getByRole('list', { name: 'Connection test (not saved)' })
        .getByText(/^missing_bucket: /)
        .waitFor();
      await screen('target-test-failed');
      expect((await system.client.listTargets()).items.map((t) => t.name)).not.toContain('bucket');
      await form.getByLabel('Bucket', { exact: true }).fill('console');
      await form.getByLabel('Prefix', { exact: true }).fill('repo');
      await form.getByLabel('Access key id', { exact: true }).fill(s3.accessKeyId);
      await form.getByLabel('Secret access key', { exact: true }).fill(s3.secretAccessKey);
      await form.getByRole('button', { name: 'Test connection and save' }).click();
      await page.getByText('connection ok').waitFor();
      await expect.poll(() => page.getByTestId('passphrase').textContent()).toMatch(/^[0-9a-z-]{20,}$/);
      await screen('target-created');
      const done = page.getByRole('button', { name: 'Done' });
      expect(await done.isDisabled()).toBe(true);
      await page.getByLabel('I saved the recovery passphrase', { exact: true }).check();
      await done.click();
      await page.getByRole('link', { name: 'bucket' }).click();
      await page.getByRole('heading', { name: 'Garbage collection of bucket' }).waitFor();
      await screen('targets');
      const target = (await system.client.listTargets()).items.find((t) => t.name === 'bucket')!;

      // A volume on the agent, written with real bytes.
      await nav('Volumes').click();
      const newVolume = page.getByRole('form', { name: 'New volume' });
      await newVolume.getByLabel('Name', { exact: true }).fill('web');
      await newVolume.getByLabel('Size (e.g. 64M, 10G)', { exact: true }).fill('8M');
      await newVolume.getByLabel(/^Target/).selectOption({ label: 'bucket' });
      await newVolume.getByRole('button', { name: 'Create volume' }).click();
      await page.getByRole('heading', { name: /Volume web/ }).waitFor();
      const volumeId = new URL(page.url()).searchParams.get('id')!;
      const volume = await system.client.getVolume(volumeId);
      expect(volume.backup_target_id).toBe(target.id);
      const data = Buffer.concat([randomBytes(3 * MiB), Buffer.alloc(2 * MiB), randomBytes(3 * MiB)]);
      writeFileSync(volume.locator!, data);

      // Its schedule: the reading, the next five fire times and the retention preview, then saved.
      await page.getByRole('tab', { name: 'Schedule and retention' }).click();
      await page
        .getByLabel('Cron expression (minute hour day month weekday)', { exact: true })
        .fill('30 3 * * 1-5');
      await page.getByLabel(/^Time zone/).selectOption('Europe/Paris');
      await page.getByText(/At 03:30, Monday through Friday/).waitFor();
      await expect
        .poll(() => page.getByRole('list', { name: 'Next fire times' }).getByRole('listitem').count())
        .toBe(5);
      await page.getByLabel('keep last', { exact: true }).fill('3');
      await page.getByText(/would keep/).waitFor();
      await page.getByRole('button', { name: 'Save schedule' }).click();
      await page.getByRole('status').getByText('Saved.').waitFor();
      await screen('schedule');
      expect((await system.client.getVolume(volumeId)).schedule).toMatchObject({
        cron: '30 3 * * 1-5',
        timezone: 'Europe/Paris',
        enabled: true,
        retention: { keep_last: 3 },
      });

      // Back up now: the progress bar follows the job's event stream to 100 %.
      await page.getByRole('tab', { name: 'Backups' }).click();
      await page.getByRole('button', { name: 'Back up now' }).click();
      const progress = page.getByRole('progressbar', { name: 'backup progress' });
      await progress.waitFor();
      await expect.poll(() => progress.getAttribute('value'), { timeout: 60_000 }).toBe('100');
      await page.getByRole('cell', { name: 'completed' }).waitFor();
      await screen('volume-backups');
      // The verification filter (GET /v1/backups?verify_state=): the new backup is unverified, none damaged.
      const verified = page.getByLabel('Verified');
      await verified.selectOption('damaged');
      await page.getByRole('cell', { name: 'completed' }).waitFor({ state: 'detached' });
      await verified.selectOption('unverified');
      await page.getByRole('cell', { name: 'completed' }).waitFor();
      await verified.selectOption('');

      // Restore onto a new volume: the dialog follows the job, and the new volume opens once it is ready.
      await page.getByRole('button', { name: 'Restore…' }).first().click();
      const dialog = page.getByRole('dialog', { name: 'Restore onto a new volume' });
      await dialog.getByLabel('New volume name', { exact: true }).fill('web-restored');
      await screen('restore-dialog');
      await dialog.getByRole('button', { name: 'Restore', exact: true }).click();
      await page.getByRole('heading', { name: /Volume web-restored/ }).waitFor({ timeout: 60_000 });
      const restoredId = new URL(page.url()).searchParams.get('id')!;
      const restored = await system.client.getVolume(restoredId);
      const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
      expect(sha(readFileSync(restored.locator!))).toBe(sha(data));

      for (const [label, name] of [
        ['Volumes', 'volumes'],
        ['Jobs', 'jobs'],
        ['Hosts', 'hosts'],
        ['Users', 'users'],
        ['Audit', 'audit'],
        ['Alerts', 'alerts'],
        ['Dashboard', 'dashboard-after'],
      ] as const) {
        await nav(label).click();
        await page.getByRole('heading', { level: 1 }).waitFor();
        await page.waitForLoadState('networkidle');
        await screen(name);
      }
    }, 180_000);

    it('lets a viewer look but not delete a backup: the API refuses it', async () => {
      const [backup] = (await system.client.listBackups({ state: 'completed' })).items;
      expect(backup).toBeDefined();
      const viewer = await browser.newContext({ viewport: { width: 1280, height: 900 } });
      const as = await viewer.newPage();
      await as.goto(system.embedded.manager.url);
      await as.getByLabel('Name', { exact: true }).fill('victor');
      await as.getByLabel('Password', { exact: true }).fill(PASSWORD);
      await as.getByRole('button', { name: 'Sign in', exact: true }).click();
      await as.getByText('victor (viewer)').waitFor();
      await as.goto(`${system.embedded.manager.url}/volume?id=${backup!.volume_id}`);
      await as.getByRole('button', { name: 'Delete…' }).first().click();
      const dialog = as.getByRole('dialog', { name: 'Delete this backup?' });
      await dialog.getByRole('button', { name: 'Delete backup' }).click();
      await dialog.getByRole('alert').getByText('Your role does not allow this.').waitFor();
      await screen('viewer-refused', as);
      // Not only the page: the same session's request straight to the API is a 403.
      const session = await as.evaluate(async () => (await fetch('/v1/session')).json());
      const status = await as.evaluate(
        async ({ id, csrf }) =>
          (await fetch(`/v1/backups/${id}`, { method: 'DELETE', headers: { 'x-csrf-token': csrf } })).status,
        { id: backup!.id, csrf: (session as { csrf_token: string }).csrf_token },
      );
      expect(status).toBe(403);
      expect((await system.client.getBackup(backup!.id)).state).toBe('completed');
      await viewer.close();
      await expect(system.client.getBackup('00000000-0000-0000-0000-000000000000')).rejects.toBeInstanceOf(
        ApiError,
      );
    }, 60_000);
  },
);
