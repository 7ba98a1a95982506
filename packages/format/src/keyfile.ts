import { randomBytes as cryptoRandomBytes, scrypt } from 'node:crypto';
import { blake3DeriveKey } from '@stowage/blake3';
import { bytesEqual, fromHex, toHex, utf8 } from './bytes.js';
import { FormatError, IntegrityError, WrongPassphraseError } from './errors.js';
import { KDF_CONTEXT, KEY_LENGTH } from './keys.js';
import { checkObjectVersion, FORMAT_VERSION } from './version.js';
import { XCHACHA_NONCE_LENGTH, XCHACHA_TAG_LENGTH, xchachaOpen, xchachaSeal } from './xchacha.js';

export interface ScryptParams {
  /** CPU/memory cost, a power of two ≥ 2. */
  readonly N: number;
  readonly r: number;
  readonly p: number;
}

/** Key-derivation parameters of a key file (version 1 knows only scrypt). */
export type KdfParams = ScryptParams;

/** Default scrypt cost: 2^17 × 8 × 128 B = 128 MiB and a few hundred ms per attempt. */
export const DEFAULT_SCRYPT_PARAMS: ScryptParams = Object.freeze({ N: 2 ** 17, r: 8, p: 1 });
/** Readers refuse parameters needing more memory than this (a hostile file must not exhaust the host). */
export const MAX_SCRYPT_MEMORY = 2 ** 30;
export const KEY_FILE_SALT_LENGTH = 32;
export const KEY_FILE_CHECK_LENGTH = 16;
export const KEY_ID_LENGTH = 16;
/** Key files are small JSON documents. */
export const MAX_KEY_FILE_LENGTH = 16 * 1024;

const KEY_ID_RE = /^[0-9a-f]{32}$/;

/** Bucket key of a key file: `keys/<key-id>` (32 lower-case hex characters). */
export function keyFileObjectKey(keyId: string): string {
  if (!KEY_ID_RE.test(keyId)) throw new FormatError(`invalid key id ${JSON.stringify(keyId)}`);
  return `keys/${keyId}`;
}

function checkScryptParams(params: ScryptParams, objectKey?: string): void {
  const { N, r, p } = params;
  const ok =
    Number.isSafeInteger(N) &&
    N >= 2 &&
    (N & (N - 1)) === 0 &&
    Number.isSafeInteger(r) &&
    r >= 1 &&
    r <= 64 &&
    Number.isSafeInteger(p) &&
    p >= 1 &&
    p <= 16 &&
    128 * N * r <= MAX_SCRYPT_MEMORY;
  if (!ok) throw new FormatError(`unacceptable scrypt parameters N=${N} r=${r} p=${p}`, objectKey);
}

function runScrypt(passphrase: string, salt: Uint8Array, params: ScryptParams): Promise<Uint8Array> {
  const { N, r, p } = params;
  const secret = utf8.encode(passphrase.normalize('NFC'));
  return new Promise((resolve, reject) => {
    scrypt(secret, salt, 32, { N, r, p, maxmem: 128 * N * r + 128 * r * p + (32 << 20) }, (error, key) => {
      secret.fill(0);
      if (error) reject(error);
      else resolve(new Uint8Array(key));
    });
  });
}

function wrappingKeys(stretched: Uint8Array): { wrapKey: Uint8Array; check: Uint8Array } {
  return {
    wrapKey: blake3DeriveKey(KDF_CONTEXT.keyFileWrapping, stretched),
    check: blake3DeriveKey(KDF_CONTEXT.keyFileCheck, stretched, KEY_FILE_CHECK_LENGTH),
  };
}

export interface CreateKeyFileOptions {
  /** scrypt cost; tests pass cheap ones. Default `DEFAULT_SCRYPT_PARAMS`. */
  readonly kdfParams?: ScryptParams;
  /** Randomness for key id, salt and nonce (tests and golden vectors inject it). Default: node:crypto. */
  readonly randomBytes?: (length: number) => Uint8Array;
  /** Recorded for operators; not used by readers. Default: now. */
  readonly createdAt?: Date;
}

export interface KeyFile {
  readonly keyId: string;
  /** `keys/<key-id>` */
  readonly objectKey: string;
  /** The JSON document to store there (UTF-8). */
  readonly bytes: Uint8Array;
}

/** Wraps `targetKey` under a key stretched from `passphrase` with scrypt. */
export async function createKeyFile(
  targetKey: Uint8Array,
  passphrase: string,
  options: CreateKeyFileOptions = {},
): Promise<KeyFile> {
  if (!(targetKey instanceof Uint8Array) || targetKey.length !== KEY_LENGTH) {
    throw new TypeError(`target key must be ${KEY_LENGTH} bytes`);
  }
  if (typeof passphrase !== 'string' || passphrase.length === 0)
    throw new TypeError('passphrase must not be empty');
  const params = options.kdfParams ?? DEFAULT_SCRYPT_PARAMS;
  checkScryptParams(params);
  const random = options.randomBytes ?? ((n: number) => new Uint8Array(cryptoRandomBytes(n)));
  const keyId = toHex(random(KEY_ID_LENGTH));
  const salt = random(KEY_FILE_SALT_LENGTH);
  const nonce = random(XCHACHA_NONCE_LENGTH);
  const stretched = await runScrypt(passphrase, salt, params);
  const { wrapKey, check } = wrappingKeys(stretched);
  stretched.fill(0);
  const wrapped = xchachaSeal(wrapKey, nonce, targetKey, utf8.encode(keyId));
  wrapKey.fill(0);
  const doc = {
    version: FORMAT_VERSION,
    id: keyId,
    createdAt: (options.createdAt ?? new Date()).toISOString(),
    kdf: { name: 'scrypt', N: params.N, r: params.r, p: params.p },
    salt: toHex(salt),
    check: toHex(check),
    nonce: toHex(nonce),
    wrappedKey: toHex(wrapped),
  };
  return {
    keyId,
    objectKey: keyFileObjectKey(keyId),
    bytes: utf8.encode(`${JSON.stringify(doc, null, 2)}\n`),
  };
}

export interface KeyFileInfo {
  readonly version: number;
  readonly keyId: string;
  readonly createdAt: string;
  readonly kdf: { readonly name: 'scrypt' } & ScryptParams;
}

interface ParsedKeyFile extends KeyFileInfo {
  readonly salt: Uint8Array;
  readonly check: Uint8Array;
  readonly nonce: Uint8Array;
  readonly wrappedKey: Uint8Array;
}

function parseKeyFile(bytes: Uint8Array, objectKey?: string): ParsedKeyFile {
  const fail = (why: string): never => {
    throw new FormatError(`damaged key file: ${why}`, objectKey);
  };
  if (bytes.length > MAX_KEY_FILE_LENGTH) fail('too large');
  let doc: unknown;
  try {
    doc = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch {
    return fail('not UTF-8 JSON');
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) return fail('not a JSON object');
  const d = doc as Record<string, unknown>;
  const version = d.version;
  if (typeof version !== 'number' || !Number.isInteger(version) || version < 1) fail('bad version');
  checkObjectVersion(version as number, objectKey);
  const hexField = (name: string, length: number): Uint8Array => {
    const value = typeof d[name] === 'string' ? fromHex(d[name] as string) : undefined;
    if (value === undefined || value.length !== length) return fail(`${name} must be ${length} bytes of hex`);
    return value;
  };
  if (typeof d.id !== 'string' || !KEY_ID_RE.test(d.id)) fail('bad id');
  if (typeof d.createdAt !== 'string') fail('bad createdAt');
  const kdf = d.kdf as Record<string, unknown> | null;
  if (typeof kdf !== 'object' || kdf === null || kdf.name !== 'scrypt') fail('kdf must be scrypt');
  const params = { N: kdf!.N as number, r: kdf!.r as number, p: kdf!.p as number };
  checkScryptParams(params, objectKey);
  return {
    version: version as number,
    keyId: d.id as string,
    createdAt: d.createdAt as string,
    kdf: { name: 'scrypt', ...params },
    salt: hexField('salt', KEY_FILE_SALT_LENGTH),
    check: hexField('check', KEY_FILE_CHECK_LENGTH),
    nonce: hexField('nonce', XCHACHA_NONCE_LENGTH),
    wrappedKey: hexField('wrappedKey', KEY_LENGTH + XCHACHA_TAG_LENGTH),
  };
}

/** What a key file says about itself, without the passphrase. */
export function readKeyFileInfo(bytes: Uint8Array, objectKey?: string): KeyFileInfo {
  const { version, keyId, createdAt, kdf } = parseKeyFile(bytes, objectKey);
  return { version, keyId, createdAt, kdf };
}

/**
 * Unwraps the target key. `WrongPassphraseError` when the passphrase does not match; `FormatError` (or
 * `IntegrityError` when only the wrapped key is damaged) for a damaged file.
 */
export async function openKeyFile(
  bytes: Uint8Array,
  passphrase: string,
  options: { objectKey?: string } = {},
): Promise<Uint8Array> {
  const parsed = parseKeyFile(bytes, options.objectKey);
  const objectKey = options.objectKey ?? keyFileObjectKey(parsed.keyId);
  // The wrapped key's AAD is the id the document states; that id must also be the one its key names, so a
  // key file copied under another name is refused before a passphrase is spent on it.
  if (options.objectKey !== undefined && options.objectKey !== keyFileObjectKey(parsed.keyId)) {
    throw new FormatError(`key file states id ${parsed.keyId}, which is not its object key`, objectKey);
  }
  const stretched = await runScrypt(passphrase, parsed.salt, parsed.kdf);
  const { wrapKey, check } = wrappingKeys(stretched);
  stretched.fill(0);
  if (!bytesEqual(check, parsed.check)) throw new WrongPassphraseError(objectKey);
  try {
    return xchachaOpen(wrapKey, parsed.nonce, parsed.wrappedKey, utf8.encode(parsed.keyId), objectKey);
  } catch (error) {
    if (error instanceof IntegrityError) {
      throw new IntegrityError(objectKey, 'the passphrase matches but the wrapped key is damaged');
    }
    throw error;
  } finally {
    wrapKey.fill(0);
  }
}
