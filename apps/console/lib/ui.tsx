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

/** A column heading: its text, or `num(text)` for a right-aligned numeric column. */
export type Column = string | { readonly num: string };
export const num = (text: string): Column => ({ num: text });

/** The list pages' table: column headings, then the rows (`<tr>`s) given as children. */
export function Table({
  columns,
  caption,
  label,
  children,
}: {
  columns: readonly Column[];
  caption?: ReactNode;
  label?: string;
  children: ReactNode;
}) {
  return (
    <table aria-label={label}>
      {caption !== undefined && <caption className="muted">{caption}</caption>}
      <thead>
        <tr>
          {columns.map((column) =>
            typeof column === 'string' ? (
              <th scope="col" key={column}>
                {column}
              </th>
            ) : (
              <th scope="col" className="num" key={column.num}>
                {column.num}
              </th>
            ),
          )}
        </tr>
      </thead>
      <tbody>{children}</tbody>
    </table>
  );
}

/** One choice of a drop-down: a value shown as itself, or a value with its label. */
export type Option = string | { readonly value: string; readonly label: string };

/** Choices of listed resources (hosts, targets), by id, shown by name; none while they load. */
export function optionsOf(items: readonly { id: string; name: string }[] | undefined): Option[] {
  return items?.map((item) => ({ value: item.id, label: item.name })) ?? [];
}

/** A labelled drop-down; `none` puts a first choice of '' with that text ("any" for a filter). */
export function Choice({
  label,
  value,
  onChange,
  options,
  none,
}: {
  label: string;
  value: string;
  onChange: (value: string) => void;
  options: readonly Option[];
  none?: string;
}) {
  return (
    <label>
      {label}
      <select value={value} onChange={(e) => onChange(e.target.value)}>
        {none !== undefined && <option value="">{none}</option>}
        {options.map((option) =>
          typeof option === 'string' ? (
            <option key={option}>{option}</option>
          ) : (
            <option key={option.value} value={option.value}>
              {option.label}
            </option>
          ),
        )}
      </select>
    </label>
  );
}
