'use client';
import { useQueryClient } from '@tanstack/react-query';
import { type FormEvent, useState } from 'react';
import { api, setApiToken, setCsrfToken } from './client';
import { errorText } from './format';

/** Name and password (a session cookie); or an API token, for a manager that has no users yet. */
export function SignIn() {
  const queries = useQueryClient();
  const [error, setError] = useState<string>();
  const [busy, setBusy] = useState(false);

  const withPassword = async (event: FormEvent<HTMLFormElement>) => {
    event.preventDefault();
    const form = new FormData(event.currentTarget);
    setBusy(true);
    setError(undefined);
    try {
      const session = await api().request('signIn', {
        body: { name: String(form.get('name')), password: String(form.get('password')) },
      });
      setCsrfToken(session.csrf_token);
      queries.setQueryData(['session'], { kind: 'session', session });
    } catch (e) {
      setError(errorText(e));
    } finally {
      setBusy(false);
    }
  };

  const withToken = async (event: FormEvent<HTMLFormElement>) => {
    event.preventDefault();
    const token = String(new FormData(event.currentTarget).get('token')).trim();
    setError(undefined);
    setApiToken(token);
    try {
      await api().listHosts({ limit: 1 });
      queries.setQueryData(['session'], { kind: 'token' });
    } catch (e) {
      setApiToken(undefined);
      setError(errorText(e));
    }
  };

  return (
    <main id="main" className="sign-in">
      <h1>Sign in to Stowage</h1>
      <form onSubmit={withPassword} aria-label="Sign in with a name and password">
        <label>
          Name
          <input name="name" autoComplete="username" required />
        </label>
        <label>
          Password
          <input name="password" type="password" autoComplete="current-password" required />
        </label>
        <button type="submit" disabled={busy}>
          Sign in
        </button>
      </form>
      <details>
        <summary>Use an API token instead</summary>
        <form onSubmit={withToken} aria-label="Sign in with an API token">
          <label>
            API token (<code>manager token create</code>; kept in this tab only)
            <input name="token" type="password" autoComplete="off" required />
          </label>
          <button type="submit">Use token</button>
        </form>
      </details>
      {error && (
        <p role="alert" className="error">
          {error}
        </p>
      )}
    </main>
  );
}
