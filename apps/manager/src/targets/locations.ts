import type { S3Credentials } from '@stowage/object-store';
import type { BackupTargetRow } from '../db/schema.js';

/** Where a target's repository lives, as the API describes it (no secrets). */
export type TargetLocation =
  | {
      kind: 's3';
      endpoint: string | null;
      region: string;
      bucket: string;
      prefix: string;
      pathStyle: boolean;
    }
  | { kind: 'filesystem'; path: string };

/** Where a create or import request says the repository lives (the API's `s3` or `filesystem` part). */
export function locationOfRequest(
  body:
    | {
        kind: 's3';
        s3: {
          endpoint?: string | undefined;
          region: string;
          bucket: string;
          prefix: string;
          path_style: boolean;
        };
      }
    | { kind: 'filesystem'; filesystem: { path: string } },
): TargetLocation {
  return body.kind === 's3'
    ? {
        kind: 's3',
        endpoint: body.s3.endpoint ?? null,
        region: body.s3.region,
        bucket: body.s3.bucket,
        prefix: body.s3.prefix.replace(/\/+$/, ''),
        pathStyle: body.s3.path_style,
      }
    : { kind: 'filesystem', path: body.filesystem.path };
}

/**
 * The repository URL agents get (`TargetSettings.repository`) and the manager opens:
 * `s3://bucket/prefix?endpoint=…&region=…&path_style=true` or `file:///abs/path`.
 */
export function repositoryUrl(location: TargetLocation): string {
  if (location.kind === 'filesystem') {
    return `file://${location.path.split('/').map(encodeURIComponent).join('/')}`;
  }
  const params = new URLSearchParams();
  if (location.endpoint !== null) params.set('endpoint', location.endpoint);
  params.set('region', location.region);
  if (location.pathStyle) params.set('path_style', 'true');
  const prefix =
    location.prefix === '' ? '' : `/${location.prefix.split('/').map(encodeURIComponent).join('/')}`;
  return `s3://${location.bucket}${prefix}?${params}`;
}

export function locationOf(row: BackupTargetRow): TargetLocation {
  if (row.kind === 'filesystem') return { kind: 'filesystem', path: row.path ?? '' };
  return {
    kind: 's3',
    endpoint: row.endpoint,
    region: row.region ?? 'us-east-1',
    bucket: row.bucket ?? '',
    prefix: row.prefix,
    pathStyle: row.path_style,
  };
}

/** The credentials as the API carries them (snake_case), and as the object store takes them. */
export interface ApiCredentials {
  access_key_id: string;
  secret_access_key: string;
  session_token?: string | undefined;
}

export function toS3Credentials(c: ApiCredentials): S3Credentials {
  return {
    accessKeyId: c.access_key_id,
    secretAccessKey: c.secret_access_key,
    ...(c.session_token === undefined ? {} : { sessionToken: c.session_token }),
  };
}
