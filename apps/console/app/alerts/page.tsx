'use client';
/**
 * Alerts. alerts: the routes (routes-alerts.ts) and their schemas are being written; until they are in the
 * route table this page says so, and the dashboard's open-alerts count is 0.
 */
export default function AlertsPage() {
  return (
    <>
      <h1>Alerts</h1>
      <p>This manager does not list alerts yet.</p>
    </>
  );
}
