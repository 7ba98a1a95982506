'use client';
import type { RestoreBackupRequest, RetentionPolicy, VerifyState } from '@stowage/api/console';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { api } from '../client';
import { usePaged } from '../ui';

/** A volume's backups, newest first; `verifyState` keeps those verification found so. */
export function useBackupsPage(volumeId: string, verifyState?: VerifyState, limit = 20) {
  const paged = usePaged(['backups', volumeId, verifyState], (cursor) =>
    api().listBackups({
      volume_id: volumeId,
      limit,
      cursor,
      ...(verifyState ? { verify_state: verifyState } : {}),
    }),
  );
  return paged;
}

export function useDeleteBackup() {
  const queries = useQueryClient();
  return useMutation({
    mutationFn: (id: string) => api().deleteBackup(id),
    onSuccess: () => queries.invalidateQueries({ queryKey: ['backups'] }),
  });
}

export function useRestore() {
  return useMutation({
    mutationFn: ({ id, body }: { id: string; body: RestoreBackupRequest }) => api().restoreBackup(id, body),
  });
}

/** What the retention policy would keep and prune, from the dry-run (nothing is deleted). */
export function useRetentionPreview(volumeId: string, retention: RetentionPolicy | undefined) {
  return useQuery({
    queryKey: ['retention-preview', volumeId, retention],
    queryFn: () => api().pruneVolume(volumeId, { dry_run: 'true' }, { retention }),
    enabled: retention !== undefined,
    retry: false,
  });
}
