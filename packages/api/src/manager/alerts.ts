/** Alerts and webhooks: the schemas of routes-alerts.ts (filled in with the alerts loop). */
export {};
