'use client';
import type { CreateVolumeRequest, UpdateBackupScheduleRequest, VolumeListQuery } from '@stowage/api/console';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { api } from '../client';
import { usePaged } from '../ui';

export function useVolumesPage(filter: Omit<VolumeListQuery, 'limit' | 'cursor'>, limit = 50) {
  return usePaged(['volumes', filter], (cursor) => api().listVolumes({ ...filter, limit, cursor }));
}

export function useVolume(id: string | null) {
  return useQuery({
    queryKey: ['volume', id],
    queryFn: ({ signal }) => api().getVolume(id!, signal),
    enabled: id !== null,
    // A restoring volume changes state when its job ends.
    refetchInterval: (query) => (query.state.data?.state === 'restoring' ? 1000 : false),
  });
}

export function useCreateVolume() {
  const queries = useQueryClient();
  return useMutation({
    mutationFn: (body: CreateVolumeRequest) => api().createVolume(body),
    onSuccess: () => queries.invalidateQueries({ queryKey: ['volumes'] }),
  });
}

export function useBackupNow(volumeId: string) {
  const queries = useQueryClient();
  return useMutation({
    mutationFn: () => api().backupNow(volumeId, {}),
    onSuccess: () => {
      queries.invalidateQueries({ queryKey: ['backups'] });
      queries.invalidateQueries({ queryKey: ['jobs'] });
    },
  });
}

export function useUpdateSchedule(volumeId: string) {
  const queries = useQueryClient();
  return useMutation({
    mutationFn: (body: UpdateBackupScheduleRequest) => api().updateBackupSchedule(volumeId, body),
    onSuccess: (volume) => queries.setQueryData(['volume', volumeId], volume),
  });
}

export function useSchedulePreview(volumeId: string, cron: string, timezone: string) {
  return useQuery({
    queryKey: ['schedule-preview', volumeId, cron, timezone],
    queryFn: ({ signal }) => api().previewBackupSchedule(volumeId, { count: 5, cron, timezone }, signal),
    enabled: cron.trim() !== '',
    retry: false,
  });
}
