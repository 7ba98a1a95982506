'use client';
import { useQuery } from '@tanstack/react-query';
import { api } from '../client';

export function useDashboard() {
  return useQuery({
    queryKey: ['dashboard'],
    queryFn: ({ signal }) => api().request('getDashboard', {}, signal),
    refetchInterval: 15_000,
  });
}
