/** The dashboard's summary: the schemas of routes-dashboard.ts (filled in with the console). */
export {};
