import type { NextConfig } from 'next';

/**
 * The console's Next.js config (apps/console). It lives at the repository's root, as the design has it;
 * apps/console/next.config.ts re-exports it because `next build <dir>` reads its config from that dir only.
 * A static export: `manager serve` serves apps/console/out beside the API, on the same port, with no Node
 * server of Next's in production (docs/console.md).
 */
const config: NextConfig = {
  output: 'export',
  // Pages are files (`volume.html`), linked as `/volume?id=…`: no dynamic segments, so the export works.
  trailingSlash: false,
  images: { unoptimized: true },
  reactStrictMode: true,
  poweredByHeader: false,
  // Typechecked by `npm run typecheck` (tsc -p apps/console), not again inside every build.
  typescript: { ignoreBuildErrors: true },
};

export default config;
