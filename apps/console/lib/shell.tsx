'use client';
import type { Session } from '@stowage/api/console';
import {
  MutationCache,
  QueryCache,
  QueryClient,
  QueryClientProvider,
  useQuery,
  useQueryClient,
} from '@tanstack/react-query';
import Link from 'next/link';
import { usePathname } from 'next/navigation';
import { createContext, type ReactNode, useContext, useState } from 'react';
import { dashboardQuery } from './api/dashboard';
import { api, apiToken, setApiToken, setCsrfToken } from './client';
import { SignIn } from './sign-in';

/** Who is signed in: a session's user, or `token` when a pasted API token is used (its role is unknown). */
export type Who = { kind: 'session'; session: Session } | { kind: 'token' };
const WhoContext = createContext<Who | undefined>(undefined);
export const useWho = () => useContext(WhoContext);

const isUnauthorized = (error: unknown) =>
  typeof error === 'object' && error !== null && (error as { code?: string }).code === 'unauthorized';

const NAV: { href: string; label: string; admin?: true }[] = [
  { href: '/', label: 'Dashboard' },
  { href: '/volumes', label: 'Volumes' },
  { href: '/targets', label: 'Targets' },
  { href: '/jobs', label: 'Jobs' },
  { href: '/hosts', label: 'Hosts' },
  { href: '/alerts', label: 'Alerts' },
  { href: '/users', label: 'Users', admin: true },
  { href: '/audit', label: 'Audit', admin: true },
];

export function Shell({ children }: { children: ReactNode }) {
  const [client] = useState(() => {
    // Any 401 anywhere means the session ended: drop it, so the sign-in page shows.
    const onError = (error: unknown) => {
      if (isUnauthorized(error)) client.setQueryData(['session'], null);
    };
    const client: QueryClient = new QueryClient({
      queryCache: new QueryCache({ onError }),
      mutationCache: new MutationCache({ onError }),
      defaultOptions: {
        queries: { retry: (n, error) => !isUnauthorized(error) && n < 1, refetchOnWindowFocus: false },
      },
    });
    return client;
  });
  return (
    <QueryClientProvider client={client}>
      <Gate>{children}</Gate>
    </QueryClientProvider>
  );
}

function Gate({ children }: { children: ReactNode }) {
  const queries = useQueryClient();
  // The dashboard is the first screen: ask for it while the session is being recovered, not after (a 401
  // answers both, and shows the sign-in page).
  useState(() => {
    if (typeof window !== 'undefined' && window.location.pathname === '/')
      void queries.prefetchQuery({
        queryKey: ['dashboard'],
        queryFn: ({ signal }) => dashboardQuery(signal),
      });
  });
  const session = useQuery({
    queryKey: ['session'],
    queryFn: async (): Promise<Who | null> => {
      if (apiToken() !== undefined) return { kind: 'token' };
      try {
        const s = await api().request('getSession', {});
        setCsrfToken(s.csrf_token);
        return { kind: 'session', session: s };
      } catch (error) {
        // Signed out, or a manager without users yet: both show the sign-in page.
        const code = (error as { code?: string }).code;
        if (code === 'unauthorized' || code === 'unsupported') return null;
        throw error;
      }
    },
    staleTime: Number.POSITIVE_INFINITY,
  });
  if (session.isPending) return <p className="loading">Loading…</p>;
  if (session.isError) return <p role="alert">The manager cannot be reached: {String(session.error)}</p>;
  if (session.data === null) return <SignIn />;
  return (
    <WhoContext.Provider value={session.data}>
      <Frame who={session.data}>{children}</Frame>
    </WhoContext.Provider>
  );
}

function Frame({ who, children }: { who: Who; children: ReactNode }) {
  const path = usePathname();
  const isAdmin = who.kind === 'token' || who.session.user.role === 'admin';
  const signOut = async () => {
    if (who.kind === 'token') setApiToken(undefined);
    else
      await api()
        .request('signOut', {})
        .catch(() => undefined);
    setCsrfToken(undefined);
    window.location.assign('/');
  };
  return (
    <>
      <header className="top">
        <span className="brand">Stowage</span>
        <nav aria-label="Main">
          <ul>
            {NAV.filter((item) => isAdmin || !item.admin).map((item) => (
              <li key={item.href}>
                <Link href={item.href} aria-current={path === item.href ? 'page' : undefined}>
                  {item.label}
                </Link>
              </li>
            ))}
          </ul>
        </nav>
        <span className="who">
          {who.kind === 'session' ? `${who.session.user.name} (${who.session.user.role})` : 'API token'}
          <button type="button" className="link" onClick={signOut}>
            Sign out
          </button>
        </span>
      </header>
      <main id="main">{children}</main>
    </>
  );
}
