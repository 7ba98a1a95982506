'use client';
import type { CreateBackupTargetRequest, TargetLocationTestRequest } from '@stowage/api/console';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { api } from '../client';
import { usePaged } from '../ui';

export function useTargetsPage(limit = 50) {
  return usePaged(['targets'], (cursor) => api().listTargets({ limit, cursor }));
}

/** Every target (for pickers): targets are few. */
export function useAllTargets() {
  return useQuery({ queryKey: ['targets', 'all'], queryFn: () => api().listTargets({ limit: 500 }) });
}

export function useCreateTarget() {
  const queries = useQueryClient();
  return useMutation({
    mutationFn: (body: CreateBackupTargetRequest) => api().createTarget(body),
    onSuccess: () => queries.invalidateQueries({ queryKey: ['targets'] }),
  });
}

/** A location probed before anything is saved there. */
export function useTestLocation() {
  return useMutation({ mutationFn: (body: TargetLocationTestRequest) => api().testTargetLocation(body) });
}

export function useTestTarget() {
  return useMutation({ mutationFn: (id: string) => api().testTarget(id) });
}

export function useGcRunsPage(targetId: string, limit = 10) {
  // Refreshed while it is shown: a run moves through its phases for minutes.
  return usePaged(['gc-runs', targetId], (cursor) => api().listGcRuns(targetId, { limit, cursor }), 3000);
}

export function useStartGc(targetId: string) {
  const queries = useQueryClient();
  return useMutation({
    mutationFn: (dryRun: boolean) => api().startGc(targetId, { dry_run: dryRun ? 'true' : 'false' }),
    onSuccess: () => queries.invalidateQueries({ queryKey: ['gc-runs', targetId] }),
  });
}
