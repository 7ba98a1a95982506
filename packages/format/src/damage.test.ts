import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { xchacha20poly1305 } from '@noble/ciphers/chacha.js';
import { blake3DeriveKey } from '@stowage/blake3';
import { describe, expect, it } from 'vitest';
import {
  DAMAGE_ENTRY_LENGTH,
  DAMAGE_RECORD_HEADER_LENGTH,
  DamagedChunks,
  type DamageRecordInit,
  damageRecordObjectKey,
  decodeDamageRecord,
  encodeDamageRecord,
  parseDamageRecordObjectKey,
} from './damage.js';
import { FormatError, IntegrityError, UnsupportedFormatVersionError } from './errors.js';
import { deriveTargetKeys } from './keys.js';
import { buildDamageGoldenVectors } from './testdata/golden-builder.js';
import { strictCborDecode } from './testdata/strict-cbor.js';

const keys = deriveTargetKeys(new Uint8Array(32).fill(7));
const volumeId = '0a1b2c3d-4e5f-4a6b-8c7d-8e9f0a1b2c3d';
const backupId = '6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b';
const id = (n: number) => new Uint8Array(32).fill(n);
const at = (iso: string) => new Date(iso);

function sample(): DamageRecordInit {
  return {
    volumeId,
    backupId,
    updatedAt: at('2026-12-01T10:00:00.000Z'),
    // Given out of order: `from` sorts by id.
    chunks: DamagedChunks.from([
      { id: id(9), problem: 'corrupt', foundAt: at('2026-12-01T09:00:00.250Z') },
      { id: id(2), problem: 'missing', foundAt: at('2026-11-30T23:59:59.999Z') },
    ]),
  };
}

describe('damage records', () => {
  it('round-trip, sorted by chunk id, under the key beside the manifest', () => {
    const bytes = encodeDamageRecord(keys, sample());
    const record = decodeDamageRecord(keys, bytes, { volumeId, backupId });
    expect(record.version).toBe(2);
    expect(record.updatedAt.toISOString()).toBe('2026-12-01T10:00:00.000Z');
    expect([...record.chunks]).toEqual([
      { id: id(2), problem: 'missing', foundAt: at('2026-11-30T23:59:59.999Z') },
      { id: id(9), problem: 'corrupt', foundAt: at('2026-12-01T09:00:00.250Z') },
    ]);
    expect(record.chunks.get(id(9))?.problem).toBe('corrupt');
    expect(record.chunks.indexOf(id(5))).toBe(-1);
    expect(damageRecordObjectKey(volumeId, backupId)).toBe(`damage/${volumeId}/${backupId}`);
    expect(parseDamageRecordObjectKey(`damage/${volumeId}/${backupId}`)).toEqual({ volumeId, backupId });
    expect(parseDamageRecordObjectKey(`manifests/${volumeId}/${backupId}`)).toBeUndefined();
    expect(parseDamageRecordObjectKey(`damage/${volumeId}`)).toBeUndefined();
  });

  it('are XChaCha20-Poly1305 over plain CBOR under the damage subkey, bound to their backup', () => {
    const bytes = encodeDamageRecord(keys, sample());
    expect(Buffer.from(bytes.subarray(0, 6)).toString('hex')).toBe('535457440200');
    // Decrypted independently of damage.ts: the derived key, the AAD and the CBOR are as docs/format.md says.
    const damageKey = blake3DeriveKey(
      'stowage 2026-12-01 damage record encryption',
      new Uint8Array(32).fill(7),
    );
    expect(damageKey).toEqual(keys.damageKey);
    const aad = new Uint8Array([
      ...bytes.subarray(0, 6),
      ...Buffer.from(volumeId.replaceAll('-', ''), 'hex'),
      ...Buffer.from(backupId.replaceAll('-', ''), 'hex'),
    ]);
    const body = xchacha20poly1305(damageKey, bytes.subarray(6, 30), aad).decrypt(bytes.subarray(30));
    const doc = strictCborDecode(body) as Record<string, unknown>;
    expect(Object.keys(doc)).toEqual(['version', 'volumeId', 'backupId', 'updatedAt', 'chunks']);
    expect(doc.version).toBe(2n);
    expect(doc.updatedAt).toBe(BigInt(Date.parse('2026-12-01T10:00:00.000Z')));
    const records = doc.chunks as Uint8Array;
    expect(records.length).toBe(2 * DAMAGE_ENTRY_LENGTH);
    expect(records[0]).toBe(0x01); // missing
    expect(Number(Buffer.from([0, ...records.subarray(1, 8)]).readBigUInt64BE(0))).toBe(
      Date.parse('2026-11-30T23:59:59.999Z'),
    );
    expect(records.subarray(8, 40)).toEqual(id(2));
    expect(records[40]).toBe(0x02); // corrupt
  });

  it('detect tampering, truncation, a foreign key and a record copied to another backup', () => {
    const bytes = encodeDamageRecord(keys, sample());
    for (let i = DAMAGE_RECORD_HEADER_LENGTH; i < bytes.length; i += 7) {
      const bad = bytes.slice();
      bad[i]! ^= 0x01;
      expect(() => decodeDamageRecord(keys, bad, { volumeId, backupId })).toThrow(IntegrityError);
    }
    expect(() => decodeDamageRecord(keys, bytes.subarray(0, 40), { volumeId, backupId })).toThrow(
      IntegrityError,
    );
    expect(() =>
      decodeDamageRecord(deriveTargetKeys(new Uint8Array(32)), bytes, { volumeId, backupId }),
    ).toThrow(IntegrityError);
    const other = '7f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b';
    const err = (() => {
      try {
        decodeDamageRecord(keys, bytes, { volumeId, backupId: other });
      } catch (e) {
        return e as IntegrityError;
      }
    })();
    expect(err).toBeInstanceOf(IntegrityError);
    expect(err?.message).toContain(`damage/${volumeId}/${other}`);
  });

  it('refuse a newer version before decrypting, and unknown flags', () => {
    const bytes = encodeDamageRecord(keys, sample());
    const newer = bytes.slice();
    newer[4] = 3;
    expect(() => decodeDamageRecord(keys, newer, { volumeId, backupId })).toThrow(
      UnsupportedFormatVersionError,
    );
    const flagged = bytes.slice();
    flagged[5] = 1;
    expect(() => decodeDamageRecord(keys, flagged, { volumeId, backupId })).toThrow(IntegrityError);
  });

  it('validate the packed list: order, duplicates, problem codes, length', () => {
    const one = DamagedChunks.from([{ id: id(1), problem: 'missing', foundAt: at('2026-12-01T00:00:00Z') }]);
    const two = new Uint8Array(2 * DAMAGE_ENTRY_LENGTH);
    two.set(one.records, DAMAGE_ENTRY_LENGTH);
    two.set(one.records, 0);
    expect(() => new DamagedChunks(two)).toThrow(FormatError); // the same id twice
    const unknown = one.records.slice();
    unknown[0] = 3;
    expect(() => new DamagedChunks(unknown)).toThrow(FormatError);
    expect(() => new DamagedChunks(one.records.subarray(0, 39))).toThrow(FormatError);
    expect(() =>
      DamagedChunks.from([
        { id: id(1), problem: 'missing', foundAt: at('2026-12-01T00:00:00Z') },
        { id: id(1), problem: 'corrupt', foundAt: at('2026-12-01T00:00:00Z') },
      ]),
    ).toThrow(RangeError);
    expect(new DamagedChunks(new Uint8Array(0)).count).toBe(0);
  });
});

// SHA-256 over the committed damage-record vectors. They were added to version 1 on 2026-12-01 as an optional
// object (docs/format.md §10, §12) and are immutable from then on, like the rest of version 1's.
// Version 2's damage record vectors (version 1's were 3ce701a4…377034).
const DAMAGE_GOLDEN_DIGEST = '3b33973f446505ff364bba3e2c21bbe068a59d4fe4ff416577d9f9e676cea2e0';

describe('damage record golden vectors', () => {
  const dir = new URL('./testdata/golden-damage/', import.meta.url);
  const read = (name: string) => new Uint8Array(readFileSync(new URL(name, dir)));
  const vectors = JSON.parse(new TextDecoder().decode(read('vectors.json')));

  it('are the ones pinned and are reproduced byte for byte', () => {
    const hash = createHash('sha256');
    for (const name of readdirSync(dir).sort()) {
      hash.update(`${name}\0`);
      hash.update(read(name));
    }
    expect(hash.digest('hex')).toBe(DAMAGE_GOLDEN_DIGEST);
    const built = buildDamageGoldenVectors();
    expect(Object.keys(built).sort()).toEqual(readdirSync(dir).sort());
    for (const [name, bytes] of Object.entries(built)) expect(bytes, name).toEqual(read(name));
  });

  it('decode to the listed values', () => {
    const golden = deriveTargetKeys(Buffer.from(vectors.targetKey, 'hex'));
    expect(Buffer.from(golden.damageKey).toString('hex')).toBe(vectors.damageKey);
    const v = vectors.record;
    const record = decodeDamageRecord(golden, read(v.objectFile), {
      volumeId: v.volumeId,
      backupId: v.backupId,
    });
    expect(record.updatedAt.getTime()).toBe(v.updatedAtMs);
    expect(
      [...record.chunks].map((d) => ({
        id: Buffer.from(d.id).toString('hex'),
        problem: d.problem,
        foundAtMs: d.foundAt.getTime(),
      })),
    ).toEqual(v.chunks);
  });
});
