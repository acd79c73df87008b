import assert from 'node:assert/strict';
import { secondsUntil, span } from '../../src/util/durations.js';

const NOW = new Date('2026-06-01T00:00:00Z');
const DAY = 86_400;

describe('util/durations: secondsUntil', () => {
  const cases: [string, string | null | undefined, number | null][] = [
    ['counts whole seconds to a later instant', '2026-06-01T00:01:30Z', 90],
    ['is negative for an instant already past', '2026-05-31T00:00:00Z', -DAY],
    ['is zero at now', '2026-06-01T00:00:00Z', 0],
    ['rounds a part second down', '2026-06-01T00:00:00.999Z', 0],
    ['rounds a part second before now down too', '2026-05-31T23:59:59.500Z', -1],
    ['says nothing for no instant', null, null],
    ['says nothing for an absent instant', undefined, null],
    ['says nothing for text that is not a date', 'soon', null],
  ];
  for (const [name, iso, expected] of cases) {
    it(name, () => assert.equal(secondsUntil(iso, NOW), expected));
  }
});

describe('util/durations: span', () => {
  const cases: [string, number, string][] = [
    ['says days from two days on', 61 * DAY + 3600, '61 days'],
    ['says 2 days at exactly two days', 2 * DAY, '2 days'],
    ['says hours below two days, so 47 hours never reads as 1 day', 2 * DAY - 1, '47 hours'],
    ['says 24 hours for a day and a few seconds', DAY + 5, '24 hours'],
    ['says 1 hour in the singular', 3600, '1 hour'],
    ['says minutes below an hour', 3599, '59 minutes'],
    ['says 1 minute for 90 seconds', 90, '1 minute'],
    ['says seconds below a minute', 59, '59 seconds'],
    ['says 1 second in the singular', 1, '1 second'],
    ['says 0 seconds for zero', 0, '0 seconds'],
    ['rounds a part second down', 1.9, '1 second'],
    ['says 0 seconds for a negative span (callers say "ago" themselves)', -30, '0 seconds'],
  ];
  for (const [name, seconds, expected] of cases) {
    it(name, () => assert.equal(span(seconds), expected));
  }
});
