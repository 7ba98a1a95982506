import { describe, expect, it } from 'vitest';
import { InvalidStoreUrlError } from './errors.js';
import { FsObjectStore } from './fs.js';
import { MemoryObjectStore } from './memory.js';
import { openObjectStore } from './open.js';
import { S3ObjectStore } from './s3.js';

const credentials = { accessKeyId: 'AK', secretAccessKey: 'SK' };

describe('openObjectStore', () => {
  it('opens file URLs as filesystem stores', () => {
    const store = openObjectStore('file:///srv/backups/');
    expect(store).toBeInstanceOf(FsObjectStore);
    expect(store.location).toBe('file:///srv/backups');
    expect(openObjectStore('file://localhost/srv/x').location).toBe('file:///srv/x');
  });

  it('opens s3 URLs with endpoint, region and path style', () => {
    const store = openObjectStore(
      's3://my-bucket/site/a?endpoint=http://127.0.0.1:7480&region=eu-1&path_style=true',
      {
        credentials,
      },
    ) as S3ObjectStore;
    expect(store).toBeInstanceOf(S3ObjectStore);
    expect(store.location).toBe('s3://my-bucket/site/a');
    expect(store.prefix).toBe('site/a/');
    store.destroy();
    const bare = openObjectStore('s3://my-bucket', { credentials }) as S3ObjectStore;
    expect(bare.location).toBe('s3://my-bucket');
    bare.destroy();
  });

  it('opens memory://', () => {
    expect(openObjectStore('memory://')).toBeInstanceOf(MemoryObjectStore);
  });

  it.each([
    ['not a url', /not a URL/],
    ['ftp://host/x', /unsupported scheme "ftp"/],
    ['file://server/share', /remove the host/],
    ['file:///', /other than \//],
    ['file:///x?y=1', /no parameters/],
    ['s3://Bad_Bucket/x', /not a valid bucket name/],
    ['s3://bucket:9000/x', /endpoint=/],
    ['s3://bucket/x?endpont=http://h', /unknown parameter endpont/],
    ['s3://bucket/x?endpoint=nope', /not a URL/],
    ['s3://bucket/x?endpoint=ftp://h', /http/],
    ['s3://bucket/x?path_style=yes', /path_style must be true or false/],
    ['s3://bucket/../x', /\.\./],
    ['s3://user:secret@bucket/x', /credentials do not belong/],
    ['memory://x', /memory:\/\/ takes no/],
  ])('refuses %s', (url, message) => {
    const open = () => openObjectStore(url, { credentials });
    expect(open).toThrow(InvalidStoreUrlError);
    expect(open).toThrow(message);
  });

  it('wants credentials for s3 and never prints a password', () => {
    expect(() => openObjectStore('s3://bucket/x')).toThrow(/need credentials/);
    const error = (() => {
      try {
        openObjectStore('s3://user:hunter2@bucket/x');
      } catch (caught) {
        return caught as Error;
      }
    })();
    expect(error?.message).not.toContain('hunter2');
  });
});
