'use client';
import type {
  CreateBackupTargetRequest,
  CreatedBackupTarget,
  TargetLocationTestRequest,
  TargetTestResult,
} from '@stowage/api/console';
import { type FormEvent, useState } from 'react';
import { useCreateTarget, useTestLocation, useTestTarget } from '../../lib/api/targets';
import { Cli, ErrorText } from '../../lib/ui';

/**
 * A new target. Its location is probed first (write, read, list, delete a probe object; nothing saved) and
 * each step shown; only a location that passes is saved, which writes the repository (key file, then
 * config). The saved target is then tested once more (the probe, and that its repository opens).
 */
export function NewTarget() {
  const [kind, setKind] = useState<'s3' | 'filesystem'>('filesystem');
  const [name, setName] = useState('');
  const [fields, setFields] = useState<Record<string, string>>({ region: 'us-east-1' });
  const [pathStyle, setPathStyle] = useState(true);
  const create = useCreateTarget();
  const test = useTestTarget();
  const probe = useTestLocation();
  const [created, setCreated] = useState<CreatedBackupTarget>();
  const set = (k: string) => (e: { target: { value: string } }) =>
    setFields((f) => ({ ...f, [k]: e.target.value }));

  const request = (): CreateBackupTargetRequest =>
    kind === 'filesystem'
      ? { kind, name, filesystem: { path: fields.path ?? '' } }
      : {
          kind,
          name,
          s3: {
            bucket: fields.bucket ?? '',
            region: fields.region || 'us-east-1',
            prefix: fields.prefix ?? '',
            path_style: pathStyle,
            ...(fields.endpoint ? { endpoint: fields.endpoint } : {}),
          },
          credentials: { access_key_id: fields.access_key_id ?? '', secret_access_key: fields.secret ?? '' },
        };

  const submit = (event: FormEvent<HTMLFormElement>) => {
    event.preventDefault();
    const body = request();
    const location: TargetLocationTestRequest =
      body.kind === 's3'
        ? { kind: body.kind, s3: body.s3, credentials: body.credentials }
        : { kind: body.kind, filesystem: body.filesystem };
    probe.mutate(location, {
      onSuccess: (result) => {
        if (!result.ok) return; // the steps and the cause are shown; nothing is saved
        create.mutate(body, {
          onSuccess: (answer) => {
            setCreated(answer);
            test.mutate(answer.target.id);
          },
        });
      },
    });
  };

  const cli =
    kind === 'filesystem'
      ? `manager target create ${name || 'NAME'} --path ${fields.path || 'DIR'}`
      : `AWS_SECRET_ACCESS_KEY=… manager target create ${name || 'NAME'} --s3-bucket ${fields.bucket || 'BUCKET'}${fields.endpoint ? ` --s3-endpoint ${fields.endpoint}` : ''} --s3-region ${fields.region || 'us-east-1'}${fields.prefix ? ` --s3-prefix ${fields.prefix}` : ''}${pathStyle ? ' --path-style' : ''} --access-key-id ${fields.access_key_id || 'KEY'}\nmanager target test ${name || 'NAME'}`;

  return (
    <section>
      <h2>New target</h2>
      {created ? (
        <Created
          created={created}
          test={test.data}
          testError={test.error}
          onDone={() => setCreated(undefined)}
        />
      ) : (
        <form onSubmit={submit} aria-label="New target">
          <div className="toolbar">
            <label>
              Kind
              <select value={kind} onChange={(e) => setKind(e.target.value as 's3' | 'filesystem')}>
                <option value="filesystem">directory</option>
                <option value="s3">S3 bucket</option>
              </select>
            </label>
            <label>
              Name
              <input value={name} onChange={(e) => setName(e.target.value)} required />
            </label>
            {kind === 'filesystem' ? (
              <label>
                Directory (seen by the manager and every agent)
                <input value={fields.path ?? ''} onChange={set('path')} required />
              </label>
            ) : (
              <>
                <label>
                  Endpoint (empty: AWS)
                  <input value={fields.endpoint ?? ''} onChange={set('endpoint')} type="url" />
                </label>
                <label>
                  Region
                  <input value={fields.region ?? ''} onChange={set('region')} />
                </label>
                <label>
                  Bucket
                  <input value={fields.bucket ?? ''} onChange={set('bucket')} required />
                </label>
                <label>
                  Prefix
                  <input value={fields.prefix ?? ''} onChange={set('prefix')} />
                </label>
                <label className="check">
                  <input
                    type="checkbox"
                    checked={pathStyle}
                    onChange={(e) => setPathStyle(e.target.checked)}
                  />
                  Path-style addressing (MinIO, Ceph)
                </label>
                <label>
                  Access key id
                  <input
                    value={fields.access_key_id ?? ''}
                    onChange={set('access_key_id')}
                    required
                    autoComplete="off"
                  />
                </label>
                <label>
                  Secret access key
                  <input
                    value={fields.secret ?? ''}
                    onChange={set('secret')}
                    required
                    type="password"
                    autoComplete="off"
                  />
                </label>
              </>
            )}
          </div>
          <button type="submit" disabled={probe.isPending || create.isPending}>
            {probe.isPending
              ? 'Testing the connection…'
              : create.isPending
                ? 'Saving…'
                : 'Test connection and save'}
          </button>
        </form>
      )}
      {!created && probe.data && <TestSteps result={probe.data} label="Connection test (not saved)" />}
      <ErrorText error={probe.error ?? create.error} />
      <Cli command={cli} />
    </section>
  );
}

function Created({
  created,
  test,
  testError,
  onDone,
}: {
  created: CreatedBackupTarget;
  test: TargetTestResult | undefined;
  testError: unknown;
  onDone: () => void;
}) {
  const [saved, setSaved] = useState(false);
  const passphrase = created.recovery_passphrase;
  const download = () => {
    const blob = new Blob([`${passphrase}\n`], { type: 'text/plain' });
    const a = document.createElement('a');
    a.href = URL.createObjectURL(blob);
    a.download = `${created.target.name}-recovery-passphrase.txt`;
    a.click();
    URL.revokeObjectURL(a.href);
  };
  return (
    <div>
      <p role="status">
        Target <strong>{created.target.name}</strong> saved: <code>{created.target.repository}</code>
      </p>
      <h3>Connection test</h3>
      <ErrorText error={testError} />
      {!test && !testError && <p>Testing…</p>}
      {test && <TestSteps result={test} label="Connection test steps" />}
      {passphrase && (
        <>
          <h3>Recovery passphrase — shown once</h3>
          <p>
            It is the only way to read these backups without this manager. Keep it somewhere safe; it is not
            stored.
          </p>
          <p className="passphrase" data-testid="passphrase">
            <code>{passphrase}</code>
          </p>
          <div className="toolbar">
            <button
              type="button"
              className="secondary"
              onClick={() => navigator.clipboard?.writeText(passphrase)}
            >
              Copy
            </button>
            <button type="button" className="secondary" onClick={download}>
              Download
            </button>
            <label className="check">
              <input type="checkbox" checked={saved} onChange={(e) => setSaved(e.target.checked)} />I saved
              the recovery passphrase
            </label>
          </div>
        </>
      )}
      <button type="button" disabled={passphrase !== null && !saved} onClick={onDone}>
        Done
      </button>
    </div>
  );
}

function TestSteps({ result, label }: { result: TargetTestResult; label: string }) {
  return (
    <ul aria-label={label}>
      {result.steps.map((s) => (
        <li key={s.step}>
          {s.step}: {s.ok ? 'ok' : 'failed'} ({Math.round(s.ms)} ms)
        </li>
      ))}
      {result.ok ? (
        <li className="state-ok">connection ok</li>
      ) : (
        <li className="error">
          {result.error?.cause}: {result.error?.message}
        </li>
      )}
    </ul>
  );
}
