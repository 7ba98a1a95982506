import { describe, expect, it } from 'vitest';
import {
  FormatError,
  IntegrityError,
  UnsupportedFormatVersionError,
  WrongPassphraseError,
} from './errors.js';
import { createKeyFile, openKeyFile, readKeyFileInfo } from './keyfile.js';
import { generateTargetKey } from './keys.js';

const cheap = { N: 2 ** 10, r: 8, p: 1 };

function edit(bytes: Uint8Array, change: (doc: Record<string, unknown>) => void): Uint8Array {
  const doc = JSON.parse(new TextDecoder().decode(bytes)) as Record<string, unknown>;
  change(doc);
  return new TextEncoder().encode(JSON.stringify(doc));
}

describe('key files', () => {
  it('wraps and unwraps the target key', async () => {
    const key = generateTargetKey();
    const file = await createKeyFile(key, 'correct horse battery staple', { kdfParams: cheap });
    expect(file.objectKey).toBe(`keys/${file.keyId}`);
    expect(file.keyId).toMatch(/^[0-9a-f]{32}$/);
    const info = readKeyFileInfo(file.bytes);
    expect(info.kdf).toEqual({ name: 'scrypt', ...cheap });
    expect(info.keyId).toBe(file.keyId);
    expect(await openKeyFile(file.bytes, 'correct horse battery staple')).toEqual(key);
  });

  it('works with the default (expensive) scrypt parameters', async () => {
    const key = generateTargetKey();
    const file = await createKeyFile(key, 'pw');
    expect(readKeyFileInfo(file.bytes).kdf).toEqual({ name: 'scrypt', N: 2 ** 17, r: 8, p: 1 });
    expect(await openKeyFile(file.bytes, 'pw')).toEqual(key);
  });

  it('normalizes the passphrase to NFC', async () => {
    const key = generateTargetKey();
    const file = await createKeyFile(key, 'caf\u00e9', { kdfParams: cheap });
    expect(await openKeyFile(file.bytes, 'cafe\u0301')).toEqual(key);
  });

  it('says wrong passphrase for a wrong passphrase', async () => {
    const file = await createKeyFile(generateTargetKey(), 'right', { kdfParams: cheap });
    await expect(openKeyFile(file.bytes, 'wrong')).rejects.toThrow(WrongPassphraseError);
    await expect(openKeyFile(file.bytes, 'wrong')).rejects.toMatchObject({ code: 'FORMAT_WRONG_PASSPHRASE' });
  });

  it('says damaged for a damaged file', async () => {
    const file = await createKeyFile(generateTargetKey(), 'pw', { kdfParams: cheap });
    await expect(openKeyFile(file.bytes.subarray(0, 50), 'pw')).rejects.toThrow(FormatError);
    await expect(
      openKeyFile(
        edit(file.bytes, (d) => delete d.salt),
        'pw',
      ),
    ).rejects.toThrow(FormatError);
    await expect(
      openKeyFile(
        edit(file.bytes, (d) => (d.nonce = 'zz')),
        'pw',
      ),
    ).rejects.toThrow(FormatError);
    await expect(
      openKeyFile(
        edit(file.bytes, (d) => (d.kdf = { name: 'scrypt', N: 2 ** 30, r: 8, p: 1 })),
        'pw',
      ),
    ).rejects.toThrow(/unacceptable scrypt parameters/);
    const flipped = edit(file.bytes, (d) => {
      const w = d.wrappedKey as string;
      d.wrappedKey = (w[0] === '0' ? '1' : '0') + w.slice(1);
    });
    await expect(openKeyFile(flipped, 'pw')).rejects.toThrow(IntegrityError);
    // The wrapped key's AAD is the stated id: another id fails to authenticate; and read from its object,
    // the stated id must be the one the object's key names.
    const otherId = edit(file.bytes, (d) => (d.id = '0'.repeat(32)));
    await expect(openKeyFile(otherId, 'pw')).rejects.toThrow(IntegrityError);
    await expect(openKeyFile(otherId, 'pw', { objectKey: file.objectKey })).rejects.toThrow(
      /not its object key/,
    );
    await expect(openKeyFile(file.bytes, 'pw', { objectKey: `keys/${'1'.repeat(32)}` })).rejects.toThrow(
      /not its object key/,
    );
    const newer = edit(file.bytes, (d) => (d.version = 3));
    await expect(openKeyFile(newer, 'pw')).rejects.toThrow(UnsupportedFormatVersionError);
    const older = edit(file.bytes, (d) => (d.version = 1));
    await expect(openKeyFile(older, 'pw')).rejects.toThrow(/format version 1 .*no longer reads/);
  });

  it('refuses bad inputs', async () => {
    await expect(createKeyFile(new Uint8Array(31), 'pw', { kdfParams: cheap })).rejects.toThrow(TypeError);
    await expect(createKeyFile(generateTargetKey(), '', { kdfParams: cheap })).rejects.toThrow(TypeError);
    await expect(
      createKeyFile(generateTargetKey(), 'pw', { kdfParams: { N: 1000, r: 8, p: 1 } }),
    ).rejects.toThrow(FormatError);
  });
});
