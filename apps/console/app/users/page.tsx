'use client';
import { USER_ROLES, type UserRole } from '@stowage/api/console';
import { useMutation, useQueryClient } from '@tanstack/react-query';
import { type FormEvent, useState } from 'react';
import { useUsersPage } from '../../lib/api/misc';
import { api } from '../../lib/client';
import { when } from '../../lib/format';
import { Cli, ErrorText, Table } from '../../lib/ui';

/** Users (admins only; the API refuses the others). */
export default function UsersPage() {
  const { items, query, pager } = useUsersPage();
  const queries = useQueryClient();
  const [name, setName] = useState('');
  const [role, setRole] = useState<UserRole>('viewer');
  const create = useMutation({
    mutationFn: (body: { name: string; role: UserRole; password: string }) =>
      api().request('createUser', { body }),
    onSuccess: () => queries.invalidateQueries({ queryKey: ['users'] }),
  });
  const changeRole = useMutation({
    mutationFn: ({ id, role }: { id: string; role: UserRole }) =>
      api().request('updateUser', { params: { id }, body: { role } }),
    onSuccess: () => queries.invalidateQueries({ queryKey: ['users'] }),
  });
  const remove = useMutation({
    mutationFn: (id: string) => api().request('deleteUser', { params: { id } }),
    onSuccess: () => queries.invalidateQueries({ queryKey: ['users'] }),
  });
  const submit = (event: FormEvent<HTMLFormElement>) => {
    event.preventDefault();
    const password = String(new FormData(event.currentTarget).get('password'));
    create.mutate({ name, role, password });
  };
  return (
    <>
      <h1>Users</h1>
      <ErrorText error={query.error ?? remove.error ?? changeRole.error} />
      <Table columns={['Name', 'Role', 'Created', 'Last sign-in', 'Actions']}>
        {items.map((u) => (
          <tr key={u.id}>
            <td>{u.name}</td>
            <td>
              <select
                aria-label={`Role of ${u.name}`}
                value={u.role}
                onChange={(e) => changeRole.mutate({ id: u.id, role: e.target.value as UserRole })}
              >
                {USER_ROLES.map((r) => (
                  <option key={r}>{r}</option>
                ))}
              </select>
            </td>
            <td>{when(u.created_at)}</td>
            <td>{when(u.last_sign_in_at)}</td>
            <td>
              <button
                type="button"
                className="danger"
                onClick={() => window.confirm(`Remove ${u.name}?`) && remove.mutate(u.id)}
              >
                Remove
              </button>
            </td>
          </tr>
        ))}
      </Table>
      {pager}
      <h2>New user</h2>
      <form className="inline" onSubmit={submit} aria-label="New user">
        <label>
          Name
          <input value={name} onChange={(e) => setName(e.target.value)} required />
        </label>
        <label>
          Role
          <select value={role} onChange={(e) => setRole(e.target.value as UserRole)}>
            {USER_ROLES.map((r) => (
              <option key={r}>{r}</option>
            ))}
          </select>
        </label>
        <label>
          Password (12 characters at least)
          <input name="password" type="password" minLength={12} required autoComplete="new-password" />
        </label>
        <button type="submit" disabled={create.isPending}>
          Add user
        </button>
      </form>
      <ErrorText error={create.error} />
      <Cli command={`manager user add ${name || 'NAME'} --role ${role} --password-file FILE`} />
    </>
  );
}
