'use client';
import type { Page } from '@stowage/api/console';
import { keepPreviousData, useQuery } from '@tanstack/react-query';
import { type ReactNode, useEffect, useRef, useState } from 'react';
import { errorText, percent } from './format';

/**
 * One page of a list at a time, through the API's cursors: the cursors already seen are kept, so "Previous"
 * goes back without the server knowing about pages.
 */
export function usePaged<T>(
  key: readonly unknown[],
  fetchPage: (cursor: string | undefined) => Promise<Page<T>>,
  refetchInterval?: number,
) {
  const [cursors, setCursors] = useState<(string | undefined)[]>([undefined]);
  const cursor = cursors[cursors.length - 1];
  // A new filter starts again at the first page.
  const keyText = JSON.stringify(key);
  useEffect(() => setCursors([undefined]), [keyText]);
  const query = useQuery({
    queryKey: [...key, cursor],
    queryFn: () => fetchPage(cursor),
    placeholderData: keepPreviousData,
    ...(refetchInterval === undefined ? {} : { refetchInterval }),
  });
  const next = query.data?.next_cursor ?? null;
  const pager = (
    <nav className="pager" aria-label="Pages">
      <button type="button" disabled={cursors.length === 1} onClick={() => setCursors((c) => c.slice(0, -1))}>
        Previous
      </button>
      <span>Page {cursors.length}</span>
      <button type="button" disabled={next === null} onClick={() => next && setCursors((c) => [...c, next])}>
        Next
      </button>
    </nav>
  );
  return { query, items: query.data?.items ?? [], pager };
}

/** The `manager` command that does what this action does, so it carries to scripts. */
export function Cli({ command }: { command: string }) {
  return (
    <details className="cli">
      <summary>CLI</summary>
      <code>{command}</code>
    </details>
  );
}

export function ErrorText({ error }: { error: unknown }) {
  if (!error) return null;
  return (
    <p role="alert" className="error">
      {errorText(error)}
    </p>
  );
}

export function Progress({
  done,
  total,
  label,
  complete = false,
}: {
  done: number;
  total: number | null;
  label: string;
  /** The job succeeded: 100 % whatever its last progress event said. */
  complete?: boolean;
}) {
  const value = complete ? 100 : percent(done, total);
  return (
    <span className="progress">
      <progress max={100} value={value} aria-label={label} />
      <span>{value} %</span>
    </span>
  );
}

/** A modal dialog on the native <dialog> (focus trapping and Escape come with it). */
export function Dialog({
  open,
  title,
  onClose,
  children,
}: {
  open: boolean;
  title: string;
  onClose: () => void;
  children: ReactNode;
}) {
  const ref = useRef<HTMLDialogElement>(null);
  useEffect(() => {
    const dialog = ref.current;
    if (!dialog) return;
    if (open && !dialog.open) dialog.showModal();
    if (!open && dialog.open) dialog.close();
  }, [open]);
  return (
    <dialog ref={ref} onClose={onClose} aria-labelledby="dialog-title">
      <h2 id="dialog-title">{title}</h2>
      {open && children}
    </dialog>
  );
}

export function State({ value }: { value: string }) {
  return <span className={`state state-${value}`}>{value}</span>;
}
