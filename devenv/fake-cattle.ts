/**
 * A fake Rancher 1.x (Cattle) API server, built from the contract in
 * /work/shared/docs/rancher-api.md ("the doc" below). Each behaviour names the
 * fact it models; where the doc is silent and the fake had to pick, the
 * comment says "inferred". Loopback only (127.0.0.1, port 0).
 */
import { X509Certificate, createHash, createPrivateKey } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface FakeCattleOptions {
  accessKey?: string;
  secretKey?: string;
  projectId?: string;
  /** Default page size of collections (doc: 100). */
  pageLimitDefault?: number;
  /** How many GETs of a certificate report `transitioning: 'yes'` after a PUT. */
  transitioningPolls?: number;
}

export interface LbConfigSpec {
  defaultCertificateId?: string;
  certificateIds?: string[];
}

export interface ServiceSpec {
  name: string;
  labels?: Record<string, string>;
  state?: string;
  secondaryLabels?: Record<string, string>[];
  kind?: 'service' | 'loadBalancerService';
  lbConfig?: LbConfigSpec;
  stackId?: string;
}

export interface CertificateSpec {
  name: string;
  cert: string;
  key: string;
  certChain?: string;
  description?: string;
}

/** A resource as the API renders it (JSON). */
export type CattleObject = Record<string, unknown> & { id: string; type: string };

export interface LoggedRequest {
  method: string;
  /** Path without the query string, e.g. `/v2-beta/certificates`. */
  path: string;
  /** Raw query string without `?` (`new URLSearchParams(query)` to read it). */
  query: string;
  status: number;
  /** Parsed JSON request body, when there was one. */
  body?: unknown;
}

export interface FaultMatcher {
  method?: string;
  /** Substring of the request path + query string. */
  pathIncludes?: string;
  /** How many matching requests fail (default 1). */
  times?: number;
}

export interface FaultResponse {
  /** Status to answer with; when omitted, the request is only delayed and then served normally. */
  status?: number;
  /** Raw body; defaults to a Cattle error body for `status`. */
  body?: string;
  /** Wait this long before answering (to exercise client timeouts). */
  delayMs?: number;
}

export interface FakeCattle {
  /** What Rancher injects as CATTLE_URL: `http://127.0.0.1:<port>/v1`. */
  readonly url: string;
  readonly accessKey: string;
  readonly secretKey: string;
  readonly projectId: string;
  /** Every request, in arrival order. */
  readonly requests: LoggedRequest[];
  /** Ids of load balancers whose `update` action was called, in order. */
  readonly lbUpdateCalls: string[];
  addService(spec: ServiceSpec): CattleObject;
  setLabels(id: string, labels: Record<string, string>): void;
  setState(id: string, state: string): void;
  removeService(id: string): void;
  /** All certificates, removed ones included, WITH their private keys. */
  certificates(): CattleObject[];
  /** Seeds a certificate; validated like a POST (throws CattleApiError). */
  addCertificate(spec: CertificateSpec): CattleObject;
  fail(matcher: FaultMatcher, response: FaultResponse): void;
  /** Drops every fault still pending: the platform is healthy again. */
  clearFaults(): void;
  close(): Promise<void>;
}

/** A Cattle error; rendered as `{type:'error', status, code, message, detail, fieldName?}`. */
export class CattleApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly fieldName?: string,
  ) {
    super(`${status} ${code}${fieldName ? ` (${fieldName})` : ''}: ${message}`);
    this.name = 'CattleApiError';
  }

  toJSON(): Record<string, unknown> {
    return {
      type: 'error',
      status: this.status,
      code: this.code,
      message: this.message,
      detail: null,
      ...(this.fieldName ? { fieldName: this.fieldName } : {}),
    };
  }
}

// ---------------------------------------------------------------------------
// Certificates: what the server parses out of `cert`
// ---------------------------------------------------------------------------

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;
const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** Doc: dates are Java `Date.toString()` strings (`EEE MMM dd HH:mm:ss zzz yyyy`), here in UTC. */
export function javaDate(d: Date): string {
  const p = (n: number) => String(n).padStart(2, '0');
  const time = `${p(d.getUTCHours())}:${p(d.getUTCMinutes())}:${p(d.getUTCSeconds())}`;
  return `${DAYS[d.getUTCDay()]} ${MONTHS[d.getUTCMonth()]} ${p(d.getUTCDate())} ${time} UTC ${d.getUTCFullYear()}`;
}

/** Signature algorithm OIDs, named the BouncyCastle way the doc shows (`SHA256WITHECDSA`). */
const SIG_ALGS: Record<string, string> = {
  '1.2.840.113549.1.1.5': 'SHA1WITHRSA',
  '1.2.840.113549.1.1.10': 'RSASSA-PSS',
  '1.2.840.113549.1.1.11': 'SHA256WITHRSA',
  '1.2.840.113549.1.1.12': 'SHA384WITHRSA',
  '1.2.840.113549.1.1.13': 'SHA512WITHRSA',
  '1.2.840.10045.4.3.2': 'SHA256WITHECDSA',
  '1.2.840.10045.4.3.3': 'SHA384WITHECDSA',
  '1.2.840.10045.4.3.4': 'SHA512WITHECDSA',
  '1.3.101.112': 'ED25519',
};

/** The signatureAlgorithm OID of a DER certificate: SEQUENCE { tbs, SEQUENCE { OID, ... }, sig }. */
function signatureOid(der: Buffer): string | undefined {
  const tlv = (off: number) => {
    const tag = der.readUInt8(off);
    let len = der.readUInt8(off + 1);
    let start = off + 2;
    if (len & 0x80) {
      const n = len & 0x7f;
      len = 0;
      for (let i = 0; i < n; i++) len = len * 256 + der.readUInt8(start + i);
      start += n;
    }
    return { tag, start, end: start + len };
  };
  try {
    const outer = tlv(0);
    const tbs = tlv(outer.start);
    const alg = tlv(tbs.end);
    const oid = tlv(alg.start);
    if (oid.tag !== 0x06) return undefined;
    const bytes = der.subarray(oid.start, oid.end);
    const first = bytes.readUInt8(0);
    const arcs = [Math.floor(first / 40), first % 40];
    let v = 0;
    for (const b of bytes.subarray(1)) {
      v = v * 128 + (b & 0x7f);
      if (!(b & 0x80)) {
        arcs.push(v);
        v = 0;
      }
    }
    return arcs.join('.');
  } catch {
    return undefined;
  }
}

interface CertFields {
  CN: string | null;
  subjectAlternativeNames: string[];
  issuer: string;
  issuedAt: string;
  expiresAt: string;
  serialNumber: string;
  certFingerprint: string;
  algorithm: string;
  keySize: number | null;
  version: string;
}

/** Doc: read-only fields "computed by the server from `cert`". */
function computeFields(x: X509Certificate): CertFields {
  const keyType = x.publicKey.asymmetricKeyType;
  // node prints DNs one RDN per line in encoding order; Java (RFC 2253)
  // prints them reversed and comma-joined: `CN=R3,O=Let's Encrypt,C=US` (doc).
  // Escaping of special characters is not modelled.
  const dn = (s: string | undefined) => (s ?? '').split('\n').filter(Boolean).reverse().join(',');
  // An empty subject (Let's Encrypt's tlsserver and shortlived profiles put no
  // CN in it) reads as undefined in node, and as CN null in Rancher.
  const cns = ((x.subject as string | undefined) ?? '')
    .split('\n')
    .filter((l) => l.startsWith('CN='));
  return {
    CN: cns.length ? (cns[cns.length - 1] as string).slice(3) : null,
    subjectAlternativeNames: (x.subjectAltName ?? '')
      .split(/,\s*/)
      .filter((s) => s.startsWith('DNS:'))
      .map((s) => s.slice(4)),
    issuer: dn(x.issuer),
    issuedAt: javaDate(new Date(x.validFrom)),
    expiresAt: javaDate(new Date(x.validTo)),
    // Doc: "serialNumber is decimal".
    serialNumber: BigInt('0x' + x.serialNumber).toString(10),
    // Doc: "certFingerprint is lowercase hex" and nothing more; SHA-1 of the
    // DER without separators is this fake's choice (compare ignoring case).
    certFingerprint: createHash('sha1').update(x.raw).digest('hex'),
    // Doc: "the signature algorithm (SHA256WITHECDSA)". Read from the DER;
    // the key-type fallback and the naming of rarer algorithms are approximate.
    algorithm:
      SIG_ALGS[signatureOid(x.raw) ?? ''] ??
      (keyType === 'rsa' ? 'SHA256WITHRSA' : 'SHA256WITHECDSA'),
    // Doc: "keySize is computed for RSA only (null for EC)".
    keySize: keyType === 'rsa' ? (x.publicKey.asymmetricKeyDetails?.modulusLength ?? null) : null,
    version: '3',
  };
}

const invalid = (fieldName: string, message: string) =>
  new CattleApiError(422, 'InvalidFormat', message, fieldName);

/**
 * Doc: "The server rejects (422 InvalidFormat) a key that does not match the
 * cert, or a chain that does not verify" (older Cattle; a correct sidecar
 * passes both). The chain must be the intermediates only: sending the leaf in
 * `certChain` makes the leaf "signed by itself" check fail here.
 */
function parseCertificate(cert: string, key: string, certChain: string | null): CertFields {
  const pems = cert.match(PEM_CERT);
  let leaf: X509Certificate;
  try {
    leaf = new X509Certificate(pems?.[0] ?? '');
  } catch {
    throw invalid('cert', 'cert is not a PEM encoded certificate');
  }
  try {
    if (!leaf.checkPrivateKey(createPrivateKey(key))) throw new Error('mismatch');
  } catch {
    throw invalid('key', 'key does not match the certificate');
  }
  if (certChain && certChain.trim() !== '') {
    const blocks = certChain.match(PEM_CERT);
    if (!blocks) throw invalid('certChain', 'certChain holds no PEM certificate');
    let chain: X509Certificate[];
    try {
      chain = blocks.map((b) => new X509Certificate(b));
    } catch {
      throw invalid('certChain', 'certChain holds an unparseable certificate');
    }
    const signers = [leaf, ...chain];
    for (let i = 0; i < chain.length; i++) {
      const child = signers[i] as X509Certificate;
      if (!child.verify((chain[i] as X509Certificate).publicKey)) {
        throw invalid('certChain', `certificate ${i} is not signed by chain certificate ${i}`);
      }
    }
  }
  return computeFields(leaf);
}

// ---------------------------------------------------------------------------
// Records
// ---------------------------------------------------------------------------

interface ServiceRecord {
  id: string;
  name: string;
  kind: 'service' | 'loadBalancerService';
  state: string;
  stackId: string;
  labels: Record<string, string>;
  secondaryLabels: Record<string, string>[];
  lbConfig?: LbConfigSpec;
  created: Date;
  removed: Date | null;
}

interface CertRecord {
  id: string;
  name: string;
  cert: string;
  key: string;
  certChain: string | null;
  description: string | null;
  fields: CertFields;
  created: Date;
  removed: Date | null;
  state: string;
  /** GETs left that report `transitioning: 'yes'` (after a PUT). */
  transitioningLeft: number;
}

interface Fault {
  method?: string;
  pathIncludes?: string;
  left: number;
  response: FaultResponse;
}

const MAX_LIMIT = 1000; // doc: "?limit= up to 1000"
const MODIFIERS = [
  'eq',
  'ne',
  'lt',
  'lte',
  'gt',
  'gte',
  'prefix',
  'like',
  'notlike',
  'null',
  'notnull',
];
const NOT_FILTERS = new Set(['limit', 'marker', '_removed', 'sort', 'order', 'include', 'action']);
// Which fields a collection can be filtered on (inferred: the schema's common
// filterable fields). Doc: any other filter is silently ignored (`?CN=x`).
const SERVICE_FILTERS = ['id', 'name', 'state', 'kind', 'removed', 'stackId', 'accountId'];
const CERT_FILTERS = ['id', 'name', 'state', 'kind', 'removed', 'description', 'accountId'];
const PROJECT_FILTERS = ['id', 'name', 'state', 'kind', 'removed'];

type Condition = { modifier: string; value: string };

/** One filter condition. String comparisons ignore case (doc: "Name matching is case-insensitive"). */
function conditionHolds(actual: unknown, { modifier, value }: Condition): boolean {
  if (modifier === 'null') return actual === null || actual === undefined;
  if (modifier === 'notnull') return actual !== null && actual !== undefined;
  // SQL semantics (inferred): a NULL column matches no comparison, `ne` included.
  if (actual === null || actual === undefined) return false;
  const a = String(actual).toLowerCase();
  const v = value.toLowerCase();
  const numeric = a !== '' && v !== '' && !isNaN(Number(a)) && !isNaN(Number(v));
  const cmp = numeric ? Number(a) - Number(v) : a < v ? -1 : a > v ? 1 : 0;
  const like = () => {
    const re = v
      .replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
      .replace(/%/g, '.*')
      .replace(/_/g, '.');
    return new RegExp(`^${re}$`, 's').test(a);
  };
  switch (modifier) {
    case 'eq':
      return a === v;
    case 'ne':
      return a !== v;
    case 'lt':
      return cmp < 0;
    case 'lte':
      return cmp <= 0;
    case 'gt':
      return cmp > 0;
    case 'gte':
      return cmp >= 0;
    case 'prefix':
      return a.startsWith(v);
    case 'like':
      return like();
    default: // notlike
      return !like();
  }
}

// ---------------------------------------------------------------------------
// The server
// ---------------------------------------------------------------------------

export async function startFakeCattle(opts: FakeCattleOptions = {}): Promise<FakeCattle> {
  const accessKey = opts.accessKey ?? 'FAKEACCESSKEY0000001';
  const secretKey = opts.secretKey ?? 'fakeSecretKey0000000000000000000000000001';
  const projectId = opts.projectId ?? '1a5';
  const pageLimitDefault = opts.pageLimitDefault ?? 100;
  const transitioningPolls = opts.transitioningPolls ?? 2;

  const services = new Map<string, ServiceRecord>();
  const certs = new Map<string, CertRecord>();
  const requests: LoggedRequest[] = [];
  const lbUpdateCalls: string[] = [];
  const faults: Fault[] = [];
  const timers = new Set<NodeJS.Timeout>();
  // Cattle ids: a type prefix and a per-table sequence (`1s17`, `1c5`).
  let serviceSeq = 0;
  let certSeq = 0;
  let origin = '';

  // ---- rendering ----------------------------------------------------------

  const common = (base: string, path: string, r: { created: Date; removed: Date | null }) => ({
    accountId: projectId,
    created: r.created.toISOString(),
    createdTS: r.created.getTime(),
    removed: r.removed?.toISOString() ?? null,
    links: { self: `${base}/${path}` },
  });

  function renderService(s: ServiceRecord, base: string): CattleObject {
    const lb = s.kind === 'loadBalancerService';
    return {
      id: s.id,
      type: s.kind,
      kind: s.kind,
      name: s.name,
      state: s.state,
      stackId: s.stackId,
      transitioning: 'no',
      transitioningMessage: null,
      ...common(base, `${lb ? 'loadBalancerServices' : 'services'}/${s.id}`, s),
      // Doc: labels live in launchConfig.labels and secondaryLaunchConfigs[].labels.
      launchConfig: { labels: { ...s.labels } },
      secondaryLaunchConfigs: s.secondaryLabels.map((labels) => ({ labels: { ...labels } })),
      // Doc: the balancer's `update` action is POSTed to `lb.actions.update`.
      // Inferred: a removed balancer offers no actions.
      actions:
        lb && !s.removed ? { update: `${base}/loadBalancerServices/${s.id}/?action=update` } : {},
      ...(lb
        ? {
            // Doc: certificates referenced by id. Inferred: unset fields are
            // null (Java serialisation), not empty arrays.
            lbConfig: {
              type: 'lbConfig',
              defaultCertificateId: s.lbConfig?.defaultCertificateId ?? null,
              certificateIds: s.lbConfig?.certificateIds ? [...s.lbConfig.certificateIds] : null,
            },
          }
        : {}),
    };
  }

  function renderCert(c: CertRecord, base: string, withKey: boolean): CattleObject {
    const moving = c.transitioningLeft > 0;
    return {
      id: c.id,
      type: 'certificate',
      kind: 'certificate',
      name: c.name,
      description: c.description,
      // Inferred: Cattle names the transitioning state of an update `updating-active`.
      state: moving && !c.removed ? 'updating-active' : c.state,
      transitioning: moving ? 'yes' : 'no',
      transitioningMessage: moving ? 'In Progress' : null,
      ...common(base, `certificates/${c.id}`, c),
      actions: {},
      cert: c.cert,
      certChain: c.certChain,
      // Doc: "`key` is returned by the create call only, never by GET or PUT".
      ...(withKey ? { key: c.key } : {}),
      ...c.fields,
    };
  }

  function project(base: string): CattleObject {
    const self = `${base}/projects/${projectId}`;
    return {
      id: projectId,
      type: 'project',
      kind: 'project',
      name: 'Default',
      state: 'active',
      removed: null,
      links: {
        self,
        certificates: `${self}/certificates`,
        services: `${self}/services`,
        loadBalancerServices: `${self}/loadBalancerServices`,
      },
      actions: {},
    };
  }

  /** Doc "Collections": the envelope, filters, `m<offset>` markers, `total` always null. */
  function collection(
    u: URL,
    resourceType: string,
    items: CattleObject[],
    filterable: string[],
  ): Record<string, unknown> {
    const q = u.searchParams;
    const filters: Record<string, Condition[] | null> = Object.fromEntries(
      filterable.map((f) => [f, null]),
    );
    for (const [param, value] of q) {
      if (NOT_FILTERS.has(param)) continue;
      const m = /^(.+)_([a-z]+)$/.exec(param);
      const [field, modifier] =
        m && MODIFIERS.includes(m[2] as string) ? [m[1] as string, m[2] as string] : [param, 'eq'];
      if (!filterable.includes(field)) continue; // doc: unknown filters are silently ignored
      (filters[field] ??= []).push({ modifier, value });
    }
    // Doc: removed objects are hidden from lists unless `?_removed` is given.
    const visible = items.filter((o) => q.has('_removed') || o.removed === null);
    const matched = visible.filter((o) =>
      Object.entries(filters).every(
        ([f, conds]) => !conds || conds.every((c) => conditionHolds(o[f], c)),
      ),
    );
    const asked = Number(q.get('limit'));
    const limit =
      Number.isInteger(asked) && asked > 0 ? Math.min(asked, MAX_LIMIT) : pageLimitDefault;
    const offset = Number(/^m(\d+)$/.exec(q.get('marker') ?? '')?.[1] ?? 0);
    const page = matched.slice(offset, offset + limit);
    let next: string | null = null;
    if (offset + limit < matched.length) {
      const nu = new URL(u.href);
      nu.searchParams.set('marker', `m${offset + limit}`);
      next = nu.href;
    }
    return {
      type: 'collection',
      resourceType,
      links: { self: u.href },
      createTypes: {},
      actions: {},
      pagination: { first: null, previous: null, next, limit, total: null, partial: next !== null },
      sort: null,
      filters,
      data: page,
    };
  }

  // ---- certificate writes (shared by HTTP and the test controls) ----------

  const str = (body: Record<string, unknown>, field: string, required: boolean): string | null => {
    const v = body[field];
    // Inferred: an empty string counts as missing.
    if (v === undefined || v === null || v === '') {
      if (required) throw new CattleApiError(422, 'MissingRequired', `${field} is required`, field);
      return null;
    }
    if (typeof v !== 'string') throw invalid(field, `${field} must be a string`);
    return v;
  };

  /** Doc: name matching is case-insensitive, uniqueness included (among non-removed). */
  const assertUnique = (name: string, except?: string) => {
    for (const c of certs.values()) {
      if (!c.removed && c.id !== except && c.name.toLowerCase() === name.toLowerCase()) {
        throw new CattleApiError(422, 'NotUnique', `name ${name} is not unique`, 'name');
      }
    }
  };

  function createCert(body: Record<string, unknown>): CertRecord {
    // Order (inferred): schema checks (required, unique), then the cert parse.
    const name = str(body, 'name', true) as string;
    const cert = str(body, 'cert', true) as string;
    const key = str(body, 'key', true) as string;
    const certChain = str(body, 'certChain', false);
    const description = str(body, 'description', false);
    assertUnique(name);
    const fields = parseCertificate(cert, key, certChain);
    const rec: CertRecord = {
      id: `1c${++certSeq}`,
      name,
      cert,
      key,
      certChain,
      description,
      fields,
      created: new Date(),
      removed: null,
      state: 'active',
      transitioningLeft: 0,
    };
    certs.set(rec.id, rec);
    return rec;
  }

  /** Doc: "A PUT must carry `cert` again (it is parsed on every update)". */
  function updateCert(rec: CertRecord, body: Record<string, unknown>): void {
    if (rec.removed) throw new CattleApiError(422, 'InvalidState', 'certificate is removed'); // inferred
    const cert = str(body, 'cert', true) as string;
    const name = str(body, 'name', false) ?? rec.name;
    // Fields left out keep their stored value; the stored key and chain are
    // checked against the new cert (inferred: the update is validated whole).
    const key = str(body, 'key', false) ?? rec.key;
    const certChain = 'certChain' in body ? str(body, 'certChain', false) : rec.certChain;
    const description = 'description' in body ? str(body, 'description', false) : rec.description;
    assertUnique(name, rec.id);
    rec.fields = parseCertificate(cert, key, certChain);
    Object.assign(rec, { name, cert, key, certChain, description });
    // Doc: after an update, clients poll `links.self` until transitioning != 'yes'.
    rec.transitioningLeft = transitioningPolls;
  }

  // ---- HTTP ---------------------------------------------------------------

  const json = (status: number, body: unknown) => ({ status, body: JSON.stringify(body) });
  const notFound = () => new CattleApiError(404, 'NotFound', 'Not Found');
  const notAllowed = () => new CattleApiError(405, 'MethodNotAllowed', 'Method not allowed');

  function parseBody(raw: string): Record<string, unknown> {
    try {
      const v: unknown = JSON.parse(raw === '' ? '{}' : raw);
      if (v && typeof v === 'object' && !Array.isArray(v)) return v as Record<string, unknown>;
    } catch {
      // fall through
    }
    // Doc: "Malformed JSON in a request body gets 400 InvalidBodyContent".
    throw new CattleApiError(400, 'InvalidBodyContent', 'request body is not a JSON object');
  }

  function authorized(req: http.IncomingMessage): boolean {
    // Doc: HTTP Basic, access key as user, secret key as password.
    const m = /^Basic\s+(.+)$/i.exec(req.headers.authorization ?? '');
    if (!m) return false;
    const decoded = Buffer.from(m[1] as string, 'base64').toString('utf8');
    const i = decoded.indexOf(':');
    return i >= 0 && decoded.slice(0, i) === accessKey && decoded.slice(i + 1) === secretKey;
  }

  function route(
    method: string,
    u: URL,
    base: string,
    segs: string[],
    raw: string,
  ): { status: number; body: string } {
    const [collName, id, ...extra] = segs;
    const coll = (collName ?? '').toLowerCase(); // inferred: collection names ignore case
    if (extra.length) throw notFound();

    if (coll === 'services' || coll === 'loadbalancerservices') {
      // Inferred: `services` lists every kind (balancers too), `loadBalancerServices` only balancers.
      const lbOnly = coll === 'loadbalancerservices';
      const all = [...services.values()].filter((s) => !lbOnly || s.kind === 'loadBalancerService');
      if (id === undefined) {
        if (method !== 'GET') throw notAllowed(); // creating services is not modelled
        const type = lbOnly ? 'loadBalancerService' : 'service';
        const items = all.map((s) => renderService(s, base));
        return json(200, collection(u, type, items, SERVICE_FILTERS));
      }
      const svc = all.find((s) => s.id === id);
      if (!svc) throw notFound();
      if (method === 'GET') return json(200, renderService(svc, base));
      const action = u.searchParams.get('action');
      if (method !== 'POST' || action === null) throw notAllowed();
      // Doc: "calls the balancer's update action (POST <lb.actions.update>)".
      if (action !== 'update' || svc.kind !== 'loadBalancerService' || svc.removed) {
        throw new CattleApiError(422, 'ActionNotAvailable', `action ${action} is not available`);
      }
      if (raw !== '') parseBody(raw);
      lbUpdateCalls.push(svc.id);
      return json(200, renderService(svc, base));
    }

    if (coll === 'certificates') {
      if (id === undefined) {
        if (method === 'GET') {
          const items = [...certs.values()].map((c) => renderCert(c, base, false));
          return json(200, collection(u, 'certificate', items, CERT_FILTERS));
        }
        if (method !== 'POST') throw notAllowed();
        // Doc: the create response is the only one that carries `key`.
        return json(201, renderCert(createCert(parseBody(raw)), base, true));
      }
      // Doc: removed objects "stay readable by id"; unknown ids get 404.
      const rec = certs.get(id);
      if (!rec) throw notFound();
      if (method === 'GET') {
        const out = renderCert(rec, base, false);
        if (rec.transitioningLeft > 0) rec.transitioningLeft--;
        return json(200, out);
      }
      if (method === 'PUT') {
        updateCert(rec, parseBody(raw));
        return json(200, renderCert(rec, base, false));
      }
      if (method === 'DELETE') {
        // Doc: "Deleting a certificate that a load balancer uses as its default
        // is refused". Cattle's LoadBalancerServiceCertificateRemoveFilter
        // answers 405 InvalidAction for any certificate a live balancer maps.
        const users = [...services.values()].filter(
          (s) =>
            !s.removed &&
            (s.lbConfig?.defaultCertificateId === id || s.lbConfig?.certificateIds?.includes(id)),
        );
        if (users.length) {
          const names = users.map((s) => s.name).join(',');
          throw new CattleApiError(
            405,
            'InvalidAction',
            `Certificate is in use by load balancer services: ${names}`,
          );
        }
        if (!rec.removed) Object.assign(rec, { removed: new Date(), state: 'removed' });
        return json(200, renderCert(rec, base, false));
      }
      throw notAllowed();
    }
    throw notFound();
  }

  function handle(method: string, u: URL, raw: string): { status: number; body: string } {
    // Doc: CATTLE_URL ends in /v1; the Go client rewrites it to /v2-beta. Both are served.
    const m = /^\/(v1|v2-beta)(?:\/(.*))?$/.exec(u.pathname);
    if (!m) throw notFound();
    const base = `${origin}/${m[1]}`;
    const segs = (m[2] ?? '').split('/').filter(Boolean).map(decodeURIComponent);
    if (segs.length === 0) {
      if (method !== 'GET') throw notAllowed();
      // Doc: "GET <base> returns the API root with links to each collection".
      return json(200, {
        id: m[1],
        type: 'apiVersion',
        links: {
          self: base,
          projects: `${base}/projects`,
          certificates: `${base}/certificates`,
          services: `${base}/services`,
          loadBalancerServices: `${base}/loadBalancerServices`,
          schemas: `${base}/schemas`,
        },
        actions: {},
      });
    }
    if (segs[0] === 'schemas' && segs.length === 1 && method === 'GET') {
      const schemas = ['project', 'service', 'loadBalancerService', 'certificate'].map((id) => ({
        id,
        type: 'schema',
        links: { self: `${base}/schemas/${id}`, collection: `${base}/${id}s` },
      }));
      return json(200, collection(u, 'schema', schemas, ['id']));
    }
    if (segs[0] === 'projects') {
      if (segs.length === 1) {
        if (method !== 'GET') throw notAllowed();
        // Doc: the project id is `GET <base>/projects` -> data[0].id.
        return json(200, collection(u, 'project', [project(base)], PROJECT_FILTERS));
      }
      if (segs[1] !== projectId) throw notFound(); // inferred: an environment key sees one project
      if (segs.length === 2) {
        if (method !== 'GET') throw notAllowed();
        return json(200, project(base));
      }
      // Doc: `<base>/projects/<projectId>/<collection>` and `<base>/<collection>` are equivalent.
      return route(method, u, base, segs.slice(2), raw);
    }
    return route(method, u, base, segs, raw);
  }

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks).toString('utf8');
      const method = (req.method ?? 'GET').toUpperCase();
      const u = new URL(req.url ?? '/', origin);
      const entry: LoggedRequest = {
        method,
        path: u.pathname,
        query: u.search.slice(1),
        status: 0,
      };
      try {
        if (raw !== '') entry.body = JSON.parse(raw);
      } catch {
        entry.body = raw;
      }
      requests.push(entry);

      const send = (status: number, body: string, extraHeaders: Record<string, string> = {}) => {
        entry.status = status;
        if (res.destroyed) return;
        const version = /^\/(v1|v2-beta)\b/.exec(u.pathname)?.[1] ?? 'v2-beta';
        res.writeHead(status, {
          'Content-Type': 'application/json',
          // Doc: "Every response carries an X-API-Schemas header".
          'X-API-Schemas': `${origin}/${version}/schemas`,
          ...extraHeaders,
        });
        res.end(body);
      };

      const serve = () => {
        if (!authorized(req)) {
          // Doc: 401 without or with wrong credentials. (Header inferred.)
          const err = new CattleApiError(401, 'Unauthorized', 'Unauthorized');
          return send(401, JSON.stringify(err), {
            'WWW-Authenticate': 'Basic realm="Rancher API"',
          });
        }
        try {
          const out = handle(method, u, raw);
          send(out.status, out.body);
        } catch (err) {
          if (err instanceof CattleApiError) return send(err.status, JSON.stringify(err));
          const e = new CattleApiError(500, 'ServerError', (err as Error).message);
          send(500, JSON.stringify(e));
        }
      };

      // Test-injected faults come first (as if from a proxy in front of Cattle).
      const target = `${u.pathname}${u.search}`;
      const fault = faults.find(
        (f) =>
          f.left > 0 &&
          (!f.method || f.method.toUpperCase() === method) &&
          (!f.pathIncludes || target.includes(f.pathIncludes)),
      );
      if (!fault) return serve();
      fault.left--;
      const { status, body, delayMs } = fault.response;
      const answer = () => {
        if (status === undefined) return serve();
        const err = new CattleApiError(status, 'ServerError', 'injected fault');
        send(status, body ?? JSON.stringify(err));
      };
      if (!delayMs) return answer();
      const t = setTimeout(() => {
        timers.delete(t);
        answer();
      }, delayMs);
      timers.add(t);
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const testBase = `${origin}/v2-beta`;

  const serviceRecord = (id: string): ServiceRecord => {
    const s = services.get(id);
    if (!s) throw new Error(`fake-cattle: no service ${id}`);
    return s;
  };

  return {
    url: `${origin}/v1`,
    accessKey,
    secretKey,
    projectId,
    requests,
    lbUpdateCalls,
    addService(spec) {
      const rec: ServiceRecord = {
        id: `1s${++serviceSeq}`,
        name: spec.name,
        kind: spec.kind ?? 'service',
        state: spec.state ?? 'active',
        stackId: spec.stackId ?? '1st1',
        labels: { ...spec.labels },
        secondaryLabels: (spec.secondaryLabels ?? []).map((l) => ({ ...l })),
        lbConfig: spec.lbConfig && {
          defaultCertificateId: spec.lbConfig.defaultCertificateId,
          certificateIds: spec.lbConfig.certificateIds && [...spec.lbConfig.certificateIds],
        },
        created: new Date(),
        removed: spec.state === 'removed' ? new Date() : null,
      };
      services.set(rec.id, rec);
      return renderService(rec, testBase);
    },
    setLabels(id, labels) {
      serviceRecord(id).labels = { ...labels };
    },
    setState(id, state) {
      serviceRecord(id).state = state;
    },
    removeService(id) {
      Object.assign(serviceRecord(id), { state: 'removed', removed: new Date() });
    },
    certificates() {
      return [...certs.values()].map((c) => renderCert(c, testBase, true));
    },
    addCertificate(spec) {
      return renderCert(createCert({ ...spec }), testBase, true);
    },
    fail(matcher, response) {
      faults.push({
        method: matcher.method,
        pathIncludes: matcher.pathIncludes,
        left: matcher.times ?? 1,
        response,
      });
    },
    clearFaults() {
      faults.length = 0;
    },
    async close() {
      for (const t of timers) clearTimeout(t);
      timers.clear();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
