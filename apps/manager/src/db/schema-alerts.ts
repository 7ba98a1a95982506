/** The alert and webhook tables (migrations/0005_add_alerts.sql). */
// biome-ignore lint/suspicious/noEmptyInterface: filled in with the alerts loop
export interface AlertTables {}
