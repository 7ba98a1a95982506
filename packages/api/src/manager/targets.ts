import { z } from 'zod';
import { Locator, VolumeName } from '../agent.js';
import { Bytes, HttpUrl, Page, Timestamp, TimeZone, Uuid } from './primitives.js';

/**
 * Backup targets: one repository each, in an S3-compatible bucket (under a prefix) or a local directory.
 * Secrets (credentials, the target key, the passphrase) go in and never come out, with one exception: a
 * passphrase the manager generated is returned once, in `CreatedBackupTarget.recovery_passphrase`.
 */
export const TARGET_KINDS = ['s3', 'filesystem'] as const;
export const TargetKind = z.enum(TARGET_KINDS);
export type TargetKind = z.infer<typeof TargetKind>;

/** The chunk sizes a target may be created with; min and max follow as avg/4 and avg×4 (within FastCDC's
 * limits at both ends). Fixed at creation: changing them would defeat deduplication against older backups. */
export const CHUNKER_AVG_SIZES = [512 * 1024, 1024 * 1024, 2 * 1024 * 1024, 4 * 1024 * 1024] as const;

/** AWS's bucket naming rules, which every S3-compatible service accepts: 3–63 of a–z 0–9 . -, starting and
 * ending with a letter or digit, no `..`, not shaped like an IP address, not `xn--…`. */
export const BucketName = z
  .string()
  .regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, 'must be 3–63 of a–z 0–9 . - starting and ending with a–z 0–9')
  .refine((b) => !b.includes('..'), 'must not contain ..')
  .refine((b) => !/^\d+\.\d+\.\d+\.\d+$/.test(b), 'must not look like an IP address')
  .refine(
    (b) => !b.startsWith('xn--') && !b.endsWith('-s3alias'),
    'must not use a reserved prefix or suffix',
  );

/** A key prefix inside the bucket: relative, with no `.`/`..` or empty segments (a trailing `/` is allowed). */
export const BucketPrefix = z
  .string()
  .max(512)
  .refine((p) => {
    if (p === '') return true;
    if (p.startsWith('/') || p.includes('\0')) return false;
    const segments = (p.endsWith('/') ? p.slice(0, -1) : p).split('/');
    return segments.every((s) => s !== '' && s !== '.' && s !== '..');
  }, 'must be relative, without NUL, empty, . or .. segments');

export const S3Credentials = z.strictObject({
  access_key_id: z.string().min(1).max(256),
  secret_access_key: z.string().min(1).max(1024),
  session_token: z.string().min(1).max(8192).optional(),
});
export type S3Credentials = z.infer<typeof S3Credentials>;

const GcHour = z.number().int().min(0).max(23);
/** Seconds an unreferenced object is kept before a GC may delete it (default a day; 0 for tests). */
const GcGraceSeconds = z.number().int().min(0).max(31_536_000);
/** Every backup of the target is verified again within this many days; null: no scheduled verify. */
const VerifyEveryDays = z.number().int().min(1).max(3650).nullable();
/** Share of each backup's chunks a scheduled verify reads, in percent (100: all). */
const VerifySamplePercent = z.number().gt(0).max(100);

export const BackupTarget = z.strictObject({
  id: Uuid,
  name: z.string(),
  kind: TargetKind,
  s3: z
    .strictObject({
      /** Null for AWS itself. */
      endpoint: z.string().nullable(),
      region: z.string(),
      bucket: z.string(),
      prefix: z.string(),
      path_style: z.boolean(),
    })
    .nullable(),
  filesystem: z.strictObject({ path: z.string() }).nullable(),
  /** The `s3://…` or `file://…` URL agents are given (agent.ts `TargetSettings.repository`); no secrets. */
  repository: z.string(),
  /** The repository's own id (from its `config` object), which outlives the manager's database. */
  repository_id: Uuid,
  chunker: z.strictObject({ min_size: Bytes, avg_size: Bytes, max_size: Bytes }),
  gc_hour: GcHour,
  /** Daily GC at `gc_hour` (in `timezone`); false: only on request. */
  gc_enabled: z.boolean(),
  gc_grace_seconds: GcGraceSeconds,
  verify_every_days: VerifyEveryDays,
  verify_sample_percent: VerifySamplePercent,
  /** Plain string on the way out: a zone stored by one runtime must not make the answer unreadable on another. */
  timezone: z.string(),
  has_credentials: z.boolean(),
  created_at: Timestamp,
  updated_at: Timestamp,
  usage: z.strictObject({ backups: Bytes, logical_bytes: Bytes, stored_bytes: Bytes }),
});
export type BackupTarget = z.infer<typeof BackupTarget>;
export const BackupTargetPage = Page(BackupTarget);

/** What both kinds of create take besides where the repository lives. Absent `gc_hour`/`timezone`: the
 * manager's defaults. Absent `passphrase`: the manager generates one and returns it once. */
const targetCommon = {
  name: VolumeName,
  passphrase: z.string().min(12).max(1024).optional(),
  chunker: z.strictObject({ avg_size: z.literal(CHUNKER_AVG_SIZES) }).optional(),
  gc_hour: GcHour.optional(),
  gc_enabled: z.boolean().optional(),
  gc_grace_seconds: GcGraceSeconds.optional(),
  verify_every_days: VerifyEveryDays.optional(),
  verify_sample_percent: VerifySamplePercent.optional(),
  timezone: TimeZone.optional(),
};

export const CreateS3TargetRequest = z.strictObject({
  kind: z.literal('s3'),
  ...targetCommon,
  s3: z.strictObject({
    /** Absent: AWS S3 itself. */
    endpoint: HttpUrl.optional(),
    region: z.string().min(1).max(64).default('us-east-1'),
    bucket: BucketName,
    prefix: BucketPrefix.default(''),
    path_style: z.boolean().default(false),
  }),
  credentials: S3Credentials,
});
export type CreateS3TargetRequest = z.infer<typeof CreateS3TargetRequest>;

export const CreateFilesystemTargetRequest = z.strictObject({
  kind: z.literal('filesystem'),
  ...targetCommon,
  /** A directory on the manager's host (and on every agent that uses the target, at the same path). */
  filesystem: z.strictObject({ path: Locator }),
});
export type CreateFilesystemTargetRequest = z.infer<typeof CreateFilesystemTargetRequest>;

export const CreateBackupTargetRequest = z.discriminatedUnion('kind', [
  CreateS3TargetRequest,
  CreateFilesystemTargetRequest,
]);
export type CreateBackupTargetRequest = z.infer<typeof CreateBackupTargetRequest>;

/** A location to test before a target is saved: the create request's location and credentials alone. */
export const TargetLocationTestRequest = z.discriminatedUnion('kind', [
  CreateS3TargetRequest.pick({ kind: true, s3: true, credentials: true }),
  CreateFilesystemTargetRequest.pick({ kind: true, filesystem: true }),
]);
export type TargetLocationTestRequest = z.infer<typeof TargetLocationTestRequest>;

export const CreatedBackupTarget = z.strictObject({
  target: BackupTarget,
  /** Non-null only when the manager generated the passphrase: shown exactly once, keep it offline. */
  recovery_passphrase: z.string().nullable(),
});
export type CreatedBackupTarget = z.infer<typeof CreatedBackupTarget>;

/** A partial update; `credentials` rotates an S3 target's keys (refused for a filesystem target). */
export const UpdateBackupTargetRequest = z
  .strictObject({
    name: VolumeName.optional(),
    credentials: S3Credentials.optional(),
    gc_hour: GcHour.optional(),
    gc_enabled: z.boolean().optional(),
    gc_grace_seconds: GcGraceSeconds.optional(),
    verify_every_days: VerifyEveryDays.optional(),
    verify_sample_percent: VerifySamplePercent.optional(),
    timezone: TimeZone.optional(),
  })
  .refine((update) => Object.values(update).some((v) => v !== undefined), 'must change at least one field')
  .meta({ override: { minProperties: 1 } });
export type UpdateBackupTargetRequest = z.infer<typeof UpdateBackupTargetRequest>;

export const TARGET_TEST_STEPS = ['write', 'read', 'list', 'delete'] as const;
/** The precise reason a target test failed, so that a user can act on it without reading logs. */
export const TARGET_TEST_CAUSES = [
  'unreachable',
  'tls',
  'bad_credentials',
  'access_denied',
  'missing_bucket',
  'clock_skew',
  'not_a_repository',
  'other',
] as const;

export const TargetTestResult = z.strictObject({
  ok: z.boolean(),
  /** The steps run, in order; the first failed one ends the test. */
  steps: z.array(z.strictObject({ step: z.enum(TARGET_TEST_STEPS), ok: z.boolean(), ms: z.number().min(0) })),
  error: z
    .strictObject({
      cause: z.enum(TARGET_TEST_CAUSES),
      message: z.string(),
      /** The service's error code (`SignatureDoesNotMatch`, `NoSuchBucket`, …) where there was one. */
      s3_code: z.string().nullable(),
      status: z.number().int().nullable(),
    })
    .nullable(),
});
export type TargetTestResult = z.infer<typeof TargetTestResult>;
