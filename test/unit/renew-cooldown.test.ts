import assert from 'node:assert/strict';
import {
  forcedRenewDecision,
  RenewRefusal,
  type ForcedRenewDecision,
  type LastForcedRenewal,
} from '../../src/lifecycle/renew-cooldown.js';

const NOW = new Date('2026-06-01T12:00:00.000Z');
const ago = (s: number): Date => new Date(NOW.getTime() - s * 1000);

describe('lifecycle: forcedRenewDecision (RENEW_COOLDOWN)', () => {
  const cases: {
    name: string;
    last: LastForcedRenewal | undefined;
    cooldown: number;
    want: ForcedRenewDecision;
  }[] = [
    {
      name: 'allows the first forced renewal of a certificate',
      last: undefined,
      cooldown: 600,
      want: { allow: true },
    },
    {
      name: 'refuses while a forced renewal of it is running',
      last: { startedAt: ago(30), running: true },
      cooldown: 600,
      want: { allow: false, reason: RenewRefusal.InProgress, secondsLeft: 570 },
    },
    {
      name: 'refuses while one is running even with no cooldown',
      last: { startedAt: ago(900), running: true },
      cooldown: 0,
      want: { allow: false, reason: RenewRefusal.InProgress, secondsLeft: 0 },
    },
    {
      name: 'refuses one second after the last finished, with the time left',
      last: { startedAt: ago(1), running: false },
      cooldown: 600,
      want: { allow: false, reason: RenewRefusal.Cooldown, secondsLeft: 599 },
    },
    {
      name: 'rounds the time left up, never saying 0 while refusing',
      last: { startedAt: new Date(NOW.getTime() - 599_500), running: false },
      cooldown: 600,
      want: { allow: false, reason: RenewRefusal.Cooldown, secondsLeft: 1 },
    },
    {
      name: 'allows again exactly when the cooldown is over',
      last: { startedAt: ago(600), running: false },
      cooldown: 600,
      want: { allow: true },
    },
    {
      name: 'allows at once with a cooldown of 0 once the last has finished',
      last: { startedAt: ago(0), running: false },
      cooldown: 0,
      want: { allow: true },
    },
  ];
  for (const c of cases) {
    it(c.name, () => assert.deepEqual(forcedRenewDecision(c.last, NOW, c.cooldown), c.want));
  }
});
