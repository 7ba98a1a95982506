'use client';
import { useQuery } from '@tanstack/react-query';
import { api } from '../client';

export const dashboardQuery = (signal?: AbortSignal) => api().request('getDashboard', {}, signal);

export function useDashboard() {
  return useQuery({
    queryKey: ['dashboard'],
    queryFn: ({ signal }) => dashboardQuery(signal),
    refetchInterval: 15_000,
  });
}
