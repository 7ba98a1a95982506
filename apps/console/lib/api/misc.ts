'use client';
import type { AuditListQuery } from '@stowage/api/console';
import { useQuery } from '@tanstack/react-query';
import { api } from '../client';
import { usePaged } from '../ui';

export function useHostsPage(limit = 50) {
  return usePaged(['hosts'], (cursor) => api().listHosts({ limit, cursor }));
}

/** Every host (for pickers and names): hosts are few. */
export function useAllHosts() {
  return useQuery({ queryKey: ['hosts', 'all'], queryFn: () => api().listHosts({ limit: 500 }) });
}

export function useUsersPage(limit = 50) {
  return usePaged(['users'], (cursor) => api().request('listUsers', { query: { limit, cursor } }));
}

export function useAuditPage(filter: Omit<AuditListQuery, 'limit' | 'cursor'>, limit = 50) {
  return usePaged(['audit', filter], (cursor) =>
    api().request('listAudit', { query: { ...filter, limit, cursor } }),
  );
}
