// One time format for everything the CLI prints: ISO 8601 in UTC with milliseconds
// (2026-01-15T12:00:00.000Z), in text and in JSON alike, so scripts and people read the same thing.

export function isoTime(ms: number): string {
  return new Date(ms).toISOString();
}
