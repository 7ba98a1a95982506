import type { ReactNode } from 'react';
import './console.css';
import { Shell } from '../lib/shell';

export const metadata = { title: 'Stowage console' };

export default function RootLayout({ children }: { children: ReactNode }) {
  return (
    <html lang="en">
      <body>
        <Shell>{children}</Shell>
      </body>
    </html>
  );
}
