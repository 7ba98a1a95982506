'use client';
import type { AlertListQuery, CreateWebhookRequest } from '@stowage/api/console';
import { useMutation, useQueryClient } from '@tanstack/react-query';
import { api } from '../client';
import { usePaged } from '../ui';

export function useAlertsPage(filter: Pick<AlertListQuery, 'state'>, limit = 50) {
  return usePaged(['alerts', filter], (cursor) =>
    api().request('listAlerts', { query: { ...filter, limit, cursor } }),
  );
}

export function useAcknowledgeAlert() {
  const queries = useQueryClient();
  return useMutation({
    mutationFn: (id: string) => api().request('acknowledgeAlert', { params: { id } }),
    onSuccess: () => {
      queries.invalidateQueries({ queryKey: ['alerts'] });
      queries.invalidateQueries({ queryKey: ['dashboard'] });
    },
  });
}

export function useWebhooksPage(limit = 50) {
  return usePaged(['webhooks'], (cursor) => api().request('listWebhooks', { query: { limit, cursor } }));
}

export function useCreateWebhook() {
  const queries = useQueryClient();
  return useMutation({
    mutationFn: (body: CreateWebhookRequest) => api().request('createWebhook', { body }),
    onSuccess: () => queries.invalidateQueries({ queryKey: ['webhooks'] }),
  });
}

export function useDeleteWebhook() {
  const queries = useQueryClient();
  return useMutation({
    mutationFn: (id: string) => api().request('deleteWebhook', { params: { id } }),
    onSuccess: () => queries.invalidateQueries({ queryKey: ['webhooks'] }),
  });
}

export function useTestWebhook() {
  const queries = useQueryClient();
  return useMutation({
    mutationFn: (id: string) => api().request('testWebhook', { params: { id } }),
    onSuccess: () => queries.invalidateQueries({ queryKey: ['webhooks'] }),
  });
}
