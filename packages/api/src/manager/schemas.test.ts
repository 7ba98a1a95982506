import { describe, expect, it } from 'vitest';
import { BackupNowRequest, ManagedBackup, RestoreBackupRequest } from './backups.js';
import { RegisterHostRequest } from './hosts.js';
import { JobListQuery } from './jobs.js';
import { isIanaTimeZone, ListQuery, Uuid } from './primitives.js';
import { BucketName, BucketPrefix, CreateBackupTargetRequest, UpdateBackupTargetRequest } from './targets.js';
import { CreateTokenRequest } from './tokens.js';
import { CreateVolumeRequest, isAdoptRequest, VolumeListQuery } from './volumes.js';

const ID = '0b7e8f3a-4c1d-4e6f-9a2b-3c4d5e6f7a8b';
const s3Target = {
  kind: 's3',
  name: 'offsite',
  s3: { bucket: 'stowage-backups', endpoint: 'http://127.0.0.1:9000' },
  credentials: { access_key_id: 'AKIA', secret_access_key: 'secret' },
};

describe('manager schemas', () => {
  it('refuse unknown fields in bodies and queries', () => {
    expect(CreateTokenRequest.safeParse({ name: 'ci', extra: 1 }).success).toBe(false);
    expect(CreateBackupTargetRequest.safeParse({ ...s3Target, region: 'eu' }).success).toBe(false);
    expect(
      CreateBackupTargetRequest.safeParse({ ...s3Target, s3: { ...s3Target.s3, acl: 'x' } }).success,
    ).toBe(false);
    expect(BackupNowRequest.safeParse({ snapshot: true, force: true }).success).toBe(false);
    // A misspelt filter must not list everything.
    expect(VolumeListQuery.safeParse({ hostid: ID }).success).toBe(false);
  });

  it('refuse bad UUIDs and lower-case good ones', () => {
    expect(Uuid.safeParse('not-a-uuid').success).toBe(false);
    expect(JobListQuery.safeParse({ volume_id: '1234' }).success).toBe(false);
    expect(Uuid.parse(ID.toUpperCase())).toBe(ID);
    expect(RestoreBackupRequest.safeParse({ host_id: 'x' }).success).toBe(false);
  });

  it('refuse negative or fractional sizes', () => {
    const create = { name: 'db', host_id: ID, backend: 'local-file' };
    expect(CreateVolumeRequest.safeParse({ ...create, size: -1 }).success).toBe(false);
    expect(CreateVolumeRequest.safeParse({ ...create, size: 0 }).success).toBe(false);
    expect(CreateVolumeRequest.safeParse({ ...create, size: 1.5 }).success).toBe(false);
    expect(CreateVolumeRequest.parse({ ...create, size: 1 << 30 })).toEqual({ ...create, size: 1 << 30 });
  });

  it('tell create from adopt, and refuse a body that is both', () => {
    const adopt = CreateVolumeRequest.parse({ host_id: ID, backend: 'local-file', locator: '/srv/v.img' });
    expect(isAdoptRequest(adopt)).toBe(true);
    const both = { name: 'db', host_id: ID, backend: 'local-file', size: 1, locator: '/srv/v.img' };
    expect(CreateVolumeRequest.safeParse(both).success).toBe(false);
    expect(
      CreateVolumeRequest.safeParse({ host_id: ID, backend: 'local-file', locator: 'v.img' }).success,
    ).toBe(false);
  });

  it('accept IANA zones only', () => {
    expect(isIanaTimeZone('Europe/Paris')).toBe(true);
    expect(isIanaTimeZone('UTC')).toBe(true);
    for (const zone of ['Mars/Olympus', 'europe/paris', '+01:00', ''])
      expect(isIanaTimeZone(zone)).toBe(false);
    expect(CreateBackupTargetRequest.safeParse({ ...s3Target, timezone: 'Mars/Olympus' }).success).toBe(
      false,
    );
    expect(UpdateBackupTargetRequest.safeParse({ timezone: 'America/New_York' }).success).toBe(true);
  });

  it('hold bucket names and prefixes to the S3 rules', () => {
    for (const bucket of [
      'ab',
      'Upper',
      'under_score',
      'a..b',
      '-ab',
      'ab-',
      '192.168.1.1',
      'xn--ab',
      'a'.repeat(64),
    ])
      expect(BucketName.safeParse(bucket).success, bucket).toBe(false);
    for (const bucket of ['abc', 'my.bucket-1', 'a'.repeat(63)])
      expect(BucketName.safeParse(bucket).success).toBe(true);
    for (const prefix of ['/abs', 'a/../b', '..', 'a//b', './a'])
      expect(BucketPrefix.safeParse(prefix).success).toBe(false);
    for (const prefix of ['', 'stowage', 'team/prod/'])
      expect(BucketPrefix.safeParse(prefix).success).toBe(true);
  });

  it('fill the S3 defaults and refuse a weak passphrase or an odd chunk size', () => {
    const parsed = CreateBackupTargetRequest.parse(s3Target);
    expect(parsed.kind === 's3' && parsed.s3).toEqual({
      bucket: 'stowage-backups',
      endpoint: 'http://127.0.0.1:9000',
      region: 'us-east-1',
      prefix: '',
      path_style: false,
    });
    expect(CreateBackupTargetRequest.safeParse({ ...s3Target, passphrase: 'short' }).success).toBe(false);
    expect(CreateBackupTargetRequest.safeParse({ ...s3Target, chunker: { avg_size: 1000 } }).success).toBe(
      false,
    );
    expect(
      CreateBackupTargetRequest.safeParse({ ...s3Target, chunker: { avg_size: 2 * 1024 * 1024 } }).success,
    ).toBe(true);
    // Secrets in a URL would end up in logs.
    const withUser = { ...s3Target, s3: { ...s3Target.s3, endpoint: 'http://key:secret@127.0.0.1:9000' } };
    expect(CreateBackupTargetRequest.safeParse(withUser).success).toBe(false);
    expect(CreateBackupTargetRequest.safeParse({ ...s3Target, credentials: undefined }).success).toBe(false);
  });

  it('refuse relative or NUL-bearing filesystem paths', () => {
    const fs = (path: string) => ({ kind: 'filesystem', name: 'local', filesystem: { path } });
    expect(CreateBackupTargetRequest.safeParse(fs('backups')).success).toBe(false);
    expect(CreateBackupTargetRequest.safeParse(fs('/srv/a\0b')).success).toBe(false);
    expect(CreateBackupTargetRequest.safeParse(fs('/srv/stowage')).success).toBe(true);
    // The discriminator decides: a filesystem target has no S3 part.
    expect(CreateBackupTargetRequest.safeParse({ ...fs('/srv/x'), s3: s3Target.s3 }).success).toBe(false);
  });

  it('want at least one field in a target update', () => {
    expect(UpdateBackupTargetRequest.safeParse({}).success).toBe(false);
    expect(UpdateBackupTargetRequest.safeParse({ gc_hour: 24 }).success).toBe(false);
    expect(UpdateBackupTargetRequest.safeParse({ gc_hour: 0 }).success).toBe(true);
  });

  it('coerce the pagination query', () => {
    expect(ListQuery.parse({})).toEqual({ limit: 100 });
    expect(ListQuery.parse({ limit: '25', cursor: 'abc' })).toEqual({ limit: 25, cursor: 'abc' });
    for (const limit of ['0', '501', '2.5', 'ten', '-1'])
      expect(ListQuery.safeParse({ limit }).success, limit).toBe(false);
    expect(ListQuery.safeParse({ cursor: 'x'.repeat(513) }).success).toBe(false);
    expect(VolumeListQuery.parse({ limit: '500', state: 'available' })).toEqual({
      limit: 500,
      state: 'available',
    });
  });

  it('check the remaining request rules', () => {
    expect(CreateTokenRequest.parse({ name: 'ci' })).toEqual({ name: 'ci', role: 'admin' });
    expect(CreateTokenRequest.safeParse({ name: 'ci', role: 'agent' }).success).toBe(false);
    expect(CreateTokenRequest.safeParse({ name: 'a\nb' }).success).toBe(false);
    const host = { name: 'node-1', url: 'http://10.0.0.5:7070', token: 't'.repeat(16) };
    expect(RegisterHostRequest.safeParse(host).success).toBe(true);
    expect(RegisterHostRequest.safeParse({ ...host, url: 'ftp://10.0.0.5' }).success).toBe(false);
    expect(RegisterHostRequest.safeParse({ ...host, token: 'short' }).success).toBe(false);
    expect(RegisterHostRequest.safeParse({ ...host, name: '-bad' }).success).toBe(false);
    expect(BackupNowRequest.parse({})).toEqual({});
    expect(BackupNowRequest.safeParse({ snapshot: 'live' }).success).toBe(false);
  });

  it('refuse an answer with a field too many', () => {
    const backup = {
      id: ID,
      volume_id: ID,
      backup_target_id: ID,
      job_id: null,
      state: 'running',
      started_at: '2026-01-01T00:00:00Z',
      finished_at: null,
      size: null,
      bytes_read: null,
      bytes_uploaded: null,
      chunks: null,
      chunks_new: null,
      manifest_key: `manifests/${ID}/${ID}`,
      duration_seconds: null,
      snapshot: null,
      error: null,
      verification: {
        state: 'unverified',
        verified_at: null,
        sample_percent: null,
        damaged_chunks: null,
        damage_found_at: null,
        job_id: null,
        error: null,
      },
    };
    expect(ManagedBackup.safeParse(backup).success).toBe(true);
    expect(ManagedBackup.safeParse({ ...backup, secret: 'x' }).success).toBe(false);
  });
});
