import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { S3ObjectStore, s3ErrorKind } from './s3.js';
import { cephUnavailableReason, startCeph } from './testing/ceph/ceph.js';
import { describeObjectStoreConformance } from './testing/index.js';
import type { TestS3Server } from './testing/s3-server.js';

// CI sets STOWAGE_REQUIRE_CEPH=1: there a missing radosgw is a failure, never a skip.
const required = process.env.STOWAGE_REQUIRE_CEPH === '1';
const unavailable = await cephUnavailableReason();

describe.runIf(required && unavailable !== undefined)('Ceph RGW (required by STOWAGE_REQUIRE_CEPH=1)', () => {
  it('has radosgw installed', () => {
    expect.fail(`STOWAGE_REQUIRE_CEPH=1 but Ceph cannot run here: ${unavailable}`);
  });
});

describe.skipIf(unavailable !== undefined)(
  `S3ObjectStore on Ceph RGW${unavailable === undefined ? '' : ` (skipped: ${unavailable})`}`,
  () => {
    let ceph: TestS3Server;
    const bucket = 'stowage-conformance';
    beforeAll(async () => {
      ceph = await startCeph({ buckets: [bucket] });
    }, 120_000);
    afterAll(async () => {
      await ceph?.stop();
    });

    const storeAt = (prefix: string, secretAccessKey = ceph.secretAccessKey) =>
      new S3ObjectStore({
        bucket,
        prefix,
        endpoint: ceph.endpoint,
        forcePathStyle: true,
        credentials: { accessKeyId: ceph.accessKeyId, secretAccessKey },
      });

    let run = 0;
    describeObjectStoreConformance('s3 (Ceph RGW)', () => {
      const store = storeAt(`conformance/${++run}`);
      return { store, dispose: () => store.destroy() };
    });

    it('refuses a body that does not match its Content-MD5, as a retryable BadDigest', async () => {
      const client = new S3Client({
        region: 'us-east-1',
        endpoint: ceph.endpoint,
        forcePathStyle: true,
        credentials: { accessKeyId: ceph.accessKeyId, secretAccessKey: ceph.secretAccessKey },
        requestChecksumCalculation: 'WHEN_REQUIRED',
      });
      try {
        const damaged = new PutObjectCommand({
          Bucket: bucket,
          Key: 'damaged',
          Body: new Uint8Array([1, 2, 3]),
          ContentMD5: 'AAAAAAAAAAAAAAAAAAAAAA==',
        });
        const error = await client.send(damaged).catch((caught: unknown) => caught);
        expect((error as Error).name).toBe('BadDigest');
        expect(s3ErrorKind(error)).toBe('transient');
      } finally {
        client.destroy();
      }
    });

    it('reports a wrong secret as auth', async () => {
      const store = storeAt('auth', 'not-the-secret');
      try {
        await expect(store.put('k', new Uint8Array(1))).rejects.toMatchObject({ kind: 'auth' });
        await expect(store.head('k')).rejects.toMatchObject({ kind: 'auth' });
      } finally {
        store.destroy();
      }
    });
  },
);
