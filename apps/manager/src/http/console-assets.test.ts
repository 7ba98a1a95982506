import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { brotliDecompressSync, gunzipSync } from 'node:zlib';
import { Hono } from 'hono';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../config.js';
import { consoleAssets, safeRelativePath } from './console-assets.js';

describe('consoleAssets', () => {
  let base: string;
  let app: Hono;

  beforeAll(() => {
    base = mkdtempSync(join(tmpdir(), 'stowage-assets-'));
    const out = join(base, 'out');
    mkdirSync(join(out, '_next/static/chunks'), { recursive: true });
    writeFileSync(join(out, 'index.html'), '<p>dashboard</p>');
    writeFileSync(join(out, 'volumes.html'), '<p>volumes</p>');
    writeFileSync(join(out, '404.html'), '<p>missing</p>');
    writeFileSync(join(out, '_next/static/chunks/a1b2.js'), 'console.log(1)');
    writeFileSync(
      join(out, '_next/static/chunks/big.js'),
      'console.log("a fairly long line");\n'.repeat(200),
    );
    writeFileSync(join(base, 'secret.txt'), 'outside');
    symlinkSync(join(base, 'secret.txt'), join(out, 'leak.txt'));
    const assets = consoleAssets(parseConfig({ STOWAGE_HOME: base, MANAGER_CONSOLE_DIR: out }))!;
    app = new Hono();
    app.get('*', async (c) => (await assets(c)) ?? c.json({ code: 'not_found' }, 404));
  });
  afterAll(() => rmSync(base, { recursive: true, force: true }));

  it('serves index.html at / and <page>.html at /<page>, never cached', async () => {
    const root = await app.request('/', { headers: { accept: 'text/html,application/xhtml+xml,*/*;q=0.8' } });
    expect(root.status).toBe(200);
    expect(root.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(root.headers.get('cache-control')).toBe('no-cache');
    expect(await root.text()).toBe('<p>dashboard</p>');
    expect(await (await app.request('/volumes?id=1')).text()).toBe('<p>volumes</p>');
    expect(await (await app.request('/volumes.html')).text()).toBe('<p>volumes</p>');
  });

  it('leaves / to the API index for a client that does not ask for HTML', async () => {
    expect(await (await app.request('/', { headers: { accept: '*/*' } })).json()).toEqual({
      code: 'not_found',
    });
  });

  it('caches hashed assets for a year, with their type', async () => {
    const js = await app.request('/_next/static/chunks/a1b2.js');
    expect(js.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    expect(js.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
  });

  it('compresses text the browser accepts compressed, and says it varies by that', async () => {
    const plain = await app.request('/_next/static/chunks/big.js');
    const text = await plain.text();
    for (const [accept, encoding, decode] of [
      ['gzip, deflate, br', 'br', brotliDecompressSync],
      ['gzip', 'gzip', gunzipSync],
    ] as const) {
      const response = await app.request('/_next/static/chunks/big.js', {
        headers: { 'accept-encoding': accept },
      });
      expect(response.headers.get('content-encoding')).toBe(encoding);
      expect(response.headers.get('vary')).toBe('accept-encoding');
      const body = Buffer.from(await response.arrayBuffer());
      expect(body.byteLength).toBeLessThan(text.length / 10);
      expect(decode(body).toString()).toBe(text);
    }
    expect(plain.headers.get('content-encoding')).toBeNull();
  });

  it('never leaves the directory: .. segments, encoded ones, and symlinks out', async () => {
    for (const path of [
      '/../secret.txt',
      '/%2e%2e/secret.txt',
      '/_next/%2e%2e/%2e%2e/secret.txt',
      '/leak.txt',
    ]) {
      const response = await app.request(path);
      expect(response.status, path).toBe(404);
      expect(await response.text(), path).not.toContain('outside');
    }
    expect(safeRelativePath('/a/../b')).toBeUndefined();
    expect(safeRelativePath('/a%00')).toBeUndefined();
    expect(safeRelativePath('/%E0%A4%A')).toBeUndefined();
  });

  it('answers a browser its 404 page and leaves other clients to the API', async () => {
    const page = await app.request('/nowhere', { headers: { accept: 'text/html' } });
    expect(page.status).toBe(404);
    expect(await page.text()).toBe('<p>missing</p>');
    expect(await (await app.request('/nowhere')).json()).toEqual({ code: 'not_found' });
  });

  it('is absent when the directory is', () => {
    expect(consoleAssets(parseConfig({ STOWAGE_HOME: base, MANAGER_CONSOLE_DIR: join(base, 'none') }))).toBe(
      undefined,
    );
  });
});
