import { describe, expect, it } from 'vitest';
import { formatDeadline, parseDeadline } from './deadline.js';

describe('deadline header format', () => {
  it('formats exactly like toISOString and parses back, across second boundaries', () => {
    const base = Date.UTC(2031, 11, 31, 23, 59, 59, 0);
    for (const ms of [base, base + 1, base + 999, base + 1000, base + 1001, 0, 1_700_000_000_123]) {
      expect(formatDeadline(ms)).toBe(new Date(ms).toISOString());
      expect(parseDeadline(formatDeadline(ms))).toBe(ms);
    }
  });

  it('accepts other RFC 3339 forms and refuses garbage', () => {
    expect(parseDeadline('2030-01-01T01:00:00+01:00')).toBe(Date.UTC(2030, 0, 1));
    expect(parseDeadline('2030-01-01T00:00:00Z')).toBe(Date.UTC(2030, 0, 1));
    expect(parseDeadline('2030-01-01T00:00:00.5Z')).toBe(Date.UTC(2030, 0, 1, 0, 0, 0, 500));
    expect(parseDeadline('tomorrow')).toBeNaN();
    expect(parseDeadline('2030-01-01T00:00:00.abcZ')).toBeNaN();
    expect(parseDeadline('xxxx-01-01T00:00:00.000Z')).toBeNaN();
  });
});
