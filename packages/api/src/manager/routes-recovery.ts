import { IdParams } from './primitives.js';
import {
  ImportBackupTargetRequest,
  ImportedBackupTarget,
  IndexRebuildRequest,
  IndexRebuildResult,
} from './recovery.js';
import { defineRoutes } from './route.js';

/**
 * Disaster recovery: the import of a target from its bucket and the index rebuild from its manifests
 * (issue 10, point 7; the runbook is in docs/operations.md). The rebuild answers one bounded batch per call,
 * synchronously, with a cursor: no run record to keep, any replica serves the next batch, and a call never
 * outlives a client's timeout however many manifests the bucket holds.
 */
export const recoveryRoutes = defineRoutes({
  importTarget: {
    method: 'post',
    path: '/v1/backup_targets/import',
    summary:
      'Re-create a target from an existing repository: its location, credentials and recovery passphrase ' +
      '(422 `wrong_key` for a wrong passphrase, 404 when the location holds no repository; nothing stored)',
    tag: 'backup_targets',
    auth: 'admin',
    body: ImportBackupTargetRequest,
    status: 201,
    response: ImportedBackupTarget,
    errors: ['not_found', 'conflict', 'unavailable', 'wrong_key', 'forbidden'],
  },
  rebuildIndex: {
    method: 'post',
    path: '/v1/backup_targets/{id}/index_rebuild',
    summary:
      "Insert the backup rows of one batch of the target's manifests (and archived volume rows for unknown " +
      'volumes); idempotent, resumable with `start_after`, safe while the manager serves',
    tag: 'backup_targets',
    auth: 'admin',
    params: IdParams,
    body: IndexRebuildRequest,
    bodyOptional: true,
    status: 200,
    response: IndexRebuildResult,
    errors: ['not_found', 'unavailable'],
  },
});
