'use client';
import { ManagerClient } from '@stowage/api/console';

/**
 * The one ManagerClient of the console. With a session (the usual case) it sends the HttpOnly cookie and
 * the session's CSRF token, which lives only in this module's memory: a reload recovers it from
 * `GET /v1/session`. A pasted API token (for managers without users yet, and for scripts' people) is kept in
 * sessionStorage, so it dies with the tab.
 */
let csrfToken: string | undefined;
let client: ManagerClient | undefined;
const TOKEN_KEY = 'stowage.token';

export function setCsrfToken(token: string | undefined): void {
  csrfToken = token;
}

export function apiToken(): string | undefined {
  if (typeof window === 'undefined') return undefined;
  return window.sessionStorage.getItem(TOKEN_KEY) ?? undefined;
}

export function setApiToken(token: string | undefined): void {
  if (token === undefined) window.sessionStorage.removeItem(TOKEN_KEY);
  else window.sessionStorage.setItem(TOKEN_KEY, token);
  client = undefined;
}

export function api(): ManagerClient {
  if (client === undefined) {
    const token = apiToken();
    client = new ManagerClient({
      baseUrl: window.location.origin,
      ...(token === undefined ? { csrfToken: () => csrfToken } : { token }),
    });
  }
  return client;
}
