// ACME profiles (src/domain/profiles.ts): what a directory offers, and the
// words a person gets when the profile asked for is not on offer.
import assert from 'node:assert/strict';
import { offeredProfiles, profileProblem, withDefaultProfile } from '../../src/domain/profiles.js';
import type { CertSpec } from '../../src/domain/types.js';

const DIR = 'https://ca.test/dir';

describe('profiles: offeredProfiles', () => {
  const cases: { name: string; directory: unknown; want: Record<string, string> | undefined }[] = [
    {
      name: 'reads meta.profiles, name to description',
      directory: {
        newOrder: 'x',
        meta: { profiles: { classic: '90 days', shortlived: '6 days' } },
      },
      want: { classic: '90 days', shortlived: '6 days' },
    },
    {
      name: 'is undefined for a directory without meta',
      directory: { newOrder: 'x' },
      want: undefined,
    },
    {
      name: 'is undefined for a directory whose meta lists no profiles',
      directory: { meta: { termsOfService: 'x' } },
      want: undefined,
    },
    {
      name: 'is undefined for an empty profiles object',
      directory: { meta: { profiles: {} } },
      want: undefined,
    },
    {
      name: 'is undefined for profiles that are a list',
      directory: { meta: { profiles: ['a'] } },
      want: undefined,
    },
    {
      name: 'keeps a profile whose description is not a string',
      directory: { meta: { profiles: { a: 1 } } },
      want: { a: '' },
    },
    {
      name: 'is undefined for something that is not a directory',
      directory: 'nope',
      want: undefined,
    },
  ];
  for (const c of cases) it(c.name, () => assert.deepEqual(offeredProfiles(c.directory), c.want));
});

describe('profiles: profileProblem', () => {
  it('accepts a profile on offer', () => {
    assert.equal(
      profileProblem('short', 'ACME_PROFILE', { default: 'd', short: 's' }, DIR),
      undefined,
    );
  });

  it('names the setting, the value and every profile on offer for an unknown one', () => {
    const m = profileProblem('nope', 'ACME_PROFILE', { default: '90 days', short: '' }, DIR) ?? '';
    assert.match(
      m,
      /^ACME_PROFILE="nope" is not a profile the CA at https:\/\/ca\.test\/dir offers/,
    );
    assert.match(m, /it offers: default \(90 days\), short$/);
  });

  it('names the label when a label chose the profile', () => {
    const m = profileProblem('nope', 'svc:io.acme-sidecar.profile', { a: '' }, DIR) ?? '';
    assert.match(m, /^svc:io\.acme-sidecar\.profile="nope"/);
  });

  it('says so when the CA offers no profiles at all', () => {
    const m = profileProblem('short', 'ACME_PROFILE', undefined, DIR) ?? '';
    assert.match(
      m,
      /ACME_PROFILE="short", but the CA at https:\/\/ca\.test\/dir offers no profiles/,
    );
  });

  it('does not take a name inherited from Object.prototype as offered', () => {
    assert.notEqual(profileProblem('toString', 'ACME_PROFILE', { a: '' }, DIR), undefined);
  });
});

describe('profiles: withDefaultProfile', () => {
  const spec: CertSpec = { name: 'a', domains: ['a.test'], source: 'env:DOMAINS' };
  it('gives ACME_PROFILE to a certificate without one', () => {
    assert.deepEqual(withDefaultProfile(spec, 'short'), {
      ...spec,
      profile: 'short',
      profileFrom: 'ACME_PROFILE',
    });
  });
  it('keeps the profile a label chose', () => {
    const labelled = { ...spec, profile: 'x', profileFrom: 'svc:io.acme-sidecar.profile' };
    assert.equal(withDefaultProfile(labelled, 'short'), labelled);
  });
  it('leaves a certificate alone when ACME_PROFILE is unset', () => {
    assert.equal(withDefaultProfile(spec, undefined), spec);
  });
});
