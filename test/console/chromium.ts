import { existsSync } from 'node:fs';
import { type Browser, chromium } from 'playwright-core';

/** Debian's chromium (`apt-get install chromium`); playwright's own browser download is never used. */
export const CHROMIUM = process.env.STOWAGE_CHROMIUM ?? '/usr/bin/chromium';

/** The flags docs say work on this kind of machine: headless, no sandbox (root), nothing phoning home. */
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** Why the browser tests cannot run here, or undefined when they can. CI sets STOWAGE_REQUIRE_CHROMIUM=1. */
export function chromiumUnavailableReason(): string | undefined {
  return existsSync(CHROMIUM) ? undefined : `no chromium at ${CHROMIUM} (apt-get install chromium)`;
}

export const chromiumRequired = process.env.STOWAGE_REQUIRE_CHROMIUM === '1';

export function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
}
