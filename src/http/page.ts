import {
  EXPIRING_SOON_SECONDS,
  type CertState,
  type StatusCertificate,
  type StatusSnapshot,
} from '../domain/status.js';
import { secondsUntil, span } from '../util/durations.js';
import { certState } from './status.js';

/**
 * The status page: one server-rendered HTML document with its CSS inline, no
 * script and no external resource, so it works under
 * `default-src 'none'; style-src 'unsafe-inline'`.
 *
 * Every string from a snapshot goes through {@link esc}: hostnames, labels
 * and error messages come from the platform and the CA and are untrusted.
 */

/** The bar is drawn as a fraction of this (Let's Encrypt's lifetime). */
export const REFERENCE_LIFETIME_SECONDS = 90 * 24 * 60 * 60;

const SEVERITY: Record<CertState, number> = { error: 0, warning: 1, ok: 2 };
const STATE_LABEL: Record<CertState, string> = {
  error: 'needs attention',
  warning: 'expiring soon',
  ok: 'healthy',
};

export function renderStatusPage(s: StatusSnapshot, now: Date): string {
  // Worst first, so the card that needs a person is at the top of the screen.
  const certs = s.certificates
    .map((c) => ({ c, state: certState(c, now) }))
    .sort((a, b) => SEVERITY[a.state] - SEVERITY[b.state] || cmp(a.c.name, b.c.name));
  const count = (st: CertState) => certs.filter((x) => x.state === st).length;
  const worst: CertState = count('error') ? 'error' : count('warning') ? 'warning' : 'ok';

  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="refresh" content="30">
<title>${esc(titleFor(worst, certs.length))} · acme-sidecar</title>
<style>${CSS}</style>
</head>
<body>
<header class="top">
  <div class="brand">
    <h1>acme-sidecar</h1>
    <span class="overall overall-${worst}" data-overall="${worst}">${esc(overallText(count('error'), count('warning'), certs.length))}</span>
  </div>
  <dl class="facts">
    <div><dt>Target CA</dt><dd>${phaseBadge(s.target)}</dd></div>
    <div><dt>Platform</dt><dd><strong>${esc(s.platform)}</strong></dd></div>
    <div><dt>Last pass</dt><dd>${lastPass(s, now)}</dd></div>${
      s.cluster
        ? `
    <div><dt>Cluster</dt><dd><strong>${esc(s.cluster.node)}</strong> is ${esc(s.cluster.role)} · leader ${esc(s.cluster.leader ?? 'none')} · ${s.cluster.replicas.filter((r) => r.inSync).length}/${s.cluster.replicas.length} replicas in sync</dd></div>`
        : ''
    }
    <div><dt>Certificates</dt><dd><span class="tally"><b class="t-ok">${count('ok')}</b> healthy · <b class="t-warning">${count('warning')}</b> expiring soon · <b class="t-error">${count('error')}</b> need attention</span></dd></div>
  </dl>
</header>
<main>
${discoveryError(s)}
<section aria-labelledby="certs-h">
  <h2 id="certs-h">Certificates</h2>
  ${
    certs.length
      ? `<div class="certs">${certs.map(({ c, state }) => card(c, state, now)).join('\n')}</div>`
      : '<p class="empty">No certificates wanted yet: discovery found no hostnames.</p>'
  }
</section>
${persistRecords(s)}
${problems(s)}
</main>
<footer>Generated ${esc(fmtTime(s.generatedAt))} · refreshes every 30 s · <a href="/status">/status</a> (JSON)</footer>
</body>
</html>
`;
}

/** Where the renewal time came from; the CA's explanation (http(s) only: parseRenewalInfo) as a link. */
function renewSourceLine(c: StatusCertificate): string {
  if (!c.renewSource) return '';
  const what = c.renewSource === 'ari' ? 'CA renewal window (ARI)' : 'lifetime rule';
  const why = c.explanationUrl
    ? ` · <a href="${esc(c.explanationUrl)}" rel="noopener noreferrer">why</a>`
    : '';
  return `<div class="muted" data-renew-source="${c.renewSource}">${what}${why}</div>`;
}

/** The ACME profile ordered under, beside the renewal time: it sets the lifetime. */
function profileLine(c: StatusCertificate): string {
  const name = c.profile ?? 'CA default';
  return `<div class="muted" data-profile="${esc(c.profile ?? '')}">profile ${esc(name)}</div>`;
}

function card(c: StatusCertificate, state: CertState, now: Date): string {
  const left = secondsUntil(c.notAfter, now);
  const frac = left === null ? 0 : Math.min(1, Math.max(0, left / REFERENCE_LIFETIME_SECONDS));
  const renewIn = secondsUntil(c.renewAt, now);
  const hosts = c.domains.map((d) => `<li>${esc(d)}</li>`).join('');
  const err = c.lastError
    ? `<div class="err" role="alert">
        <div class="err-head"><code class="code">${esc(c.lastError.code)}</code><span class="muted">failed ${esc(fmtTime(c.lastError.at))} · ${esc(relative(c.lastError.at, now))}</span></div>
        <p class="msg">${esc(c.lastError.message)}</p>
        <p class="retry">Attempt ${c.attempts}${c.nextRetry ? ` · next retry ${esc(fmtTime(c.nextRetry))} (${esc(relative(c.nextRetry, now))})` : ''}</p>
      </div>`
    : !c.ready
      ? `<div class="pending">${esc(notReadyText(c))}</div>`
      : '';
  return `<article class="cert s-${state}" data-cert="${esc(c.name)}" data-state="${state}">
  <div class="who">
    <h3 title="certificate name">${esc(c.name)}</h3>
    <ul class="hosts" aria-label="hostnames">${hosts}</ul>
  </div>
  <div class="phase">${phaseBadge(c.phase)}</div>
  <div class="life">
    <div class="bar ${barClass(c, left, renewIn)}" role="meter" aria-valuemin="0" aria-valuemax="100" aria-valuenow="${Math.round(frac * 100)}" aria-label="validity left, of 90 days"><div class="fill" style="width:${(frac * 100).toFixed(1)}%"></div></div>
    <div class="left">${esc(timeLeftText(left))}</div>
    <div class="muted">${c.notAfter ? `${left !== null && left <= 0 ? 'expired' : 'expires'} ${esc(fmtDate(c.notAfter))}` : 'no certificate served'}</div>
  </div>
  <div class="renew">
    <div class="label">Renewal</div>
    <div>${c.renewAt ? esc(fmtDate(c.renewAt)) : '—'}</div>
    <div class="muted">${renewIn === null ? '' : renewIn <= 0 ? `<span class="due">${renewIn < -3600 ? `${esc(span(-renewIn))} overdue` : 'due now'}</span>` : esc(relative(c.renewAt ?? '', now))}</div>
    ${renewSourceLine(c)}
    ${profileLine(c)}
  </div>
  <div class="state">
    <span class="st st-${state}">${STATE_LABEL[state]}</span>
    <div class="muted" title="reason of the last decision">${esc(c.reason)}</div>
  </div>
  ${err}
</article>`;
}

/**
 * The bar tells time only: green, amber under 7 days or past renewal, red
 * under a day. Grey when what is served is not trusted anyway (placeholder,
 * staging): its clock is not what matters.
 */
function barClass(c: StatusCertificate, left: number | null, renewIn: number | null): string {
  if (!c.ready) return 'bar-untrusted';
  if (left === null || left < 86400) return 'bar-critical';
  if (left < EXPIRING_SOON_SECONDS || (renewIn !== null && renewIn <= 0)) return 'bar-soon';
  return 'bar-fine';
}

function notReadyText(c: StatusCertificate): string {
  if (c.phase === 'none') return 'Nothing served yet for these hostnames.';
  if (c.phase === 'self-signed') return 'Serving a self-signed placeholder: browsers will warn.';
  if (c.phase === 'staging')
    return 'Serving a staging certificate: browsers will not trust it until production is issued.';
  if (c.phase === 'foreign') return 'Serving a certificate the sidecar did not issue.';
  return `Not yet served from the target CA (${c.reason}).`;
}

function lastPass(s: StatusSnapshot, now: Date): string {
  const p = s.lastPass;
  if (!p) return '<span class="muted">no pass finished yet</span>';
  const took = (Date.parse(p.finishedAt) - Date.parse(p.startedAt)) / 1000;
  const status = p.ok
    ? '<span class="st st-ok">succeeded</span>'
    : '<span class="st st-error">failed</span>';
  return `<strong>${esc(fmtTime(p.finishedAt))}</strong> <span class="muted">(${esc(relative(p.finishedAt, now))}${
    Number.isFinite(took) && took >= 0
      ? `, took ${took < 10 ? took.toFixed(1) : Math.round(took)} s`
      : ''
  })</span> ${status}`;
}

function discoveryError(s: StatusSnapshot): string {
  const e = s.lastPass?.discoveryError;
  if (e === undefined) return '';
  return `<div class="banner" role="alert" data-discovery-error><strong>Discovery failed</strong> on the last pass; the certificates below are from the pass before. <span class="msg">${esc(e)}</span></div>`;
}

function problems(s: StatusSnapshot): string {
  if (!s.problems.length) return '';
  const rows = s.problems
    .map(
      (p) =>
        `<tr data-problem><td><code>${esc(p.value)}</code></td><td>${esc(p.source)}</td><td><code class="code">${esc(p.code)}</code></td><td>${esc(p.message)}</td></tr>`,
    )
    .join('\n');
  return `<section aria-labelledby="problems-h" class="problems">
  <h2 id="problems-h">Skipped hostnames <span class="count">${s.problems.length}</span></h2>
  <p class="muted">Discovery found these and left them out. Fix them where they are declared.</p>
  <table><thead><tr><th>Value</th><th>Source</th><th>Code</th><th>Why</th></tr></thead>
  <tbody>${rows}</tbody></table>
</section>`;
}

/** dns-persist-01: the TXT records to set once, copyable as written. */
function persistRecords(s: StatusSnapshot): string {
  if (!s.dnsPersist?.length) return '';
  const rows = s.dnsPersist
    .map(
      (r) =>
        `<tr data-persist-record="${esc(r.name)}"><td>${phaseBadge(r.phase)}</td><td><code>${esc(r.name)}.</code></td><td>TXT</td><td><code data-persist-value>${esc(`"${r.value}"`)}</code></td><td>${esc(r.domains.join(', '))}</td></tr>`,
    )
    .join('\n');
  return `<section aria-labelledby="persist-h" class="problems">
  <h2 id="persist-h">dns-persist-01 records <span class="count">${s.dnsPersist.length}</span></h2>
  <p class="muted">Set each once in DNS; no change is needed per order. One per CA account (staging and production each have theirs).</p>
  <table><thead><tr><th>CA</th><th>Name</th><th>Type</th><th>Value</th><th>For</th></tr></thead>
  <tbody>${rows}</tbody></table>
</section>`;
}

function phaseBadge(phase: string): string {
  const known = ['self-signed', 'staging', 'production', 'foreign', 'none'];
  const cls = known.includes(phase) ? phase : 'none';
  return `<span class="badge b-${cls}">${esc(phase)}</span>`;
}

function titleFor(worst: CertState, n: number): string {
  return worst === 'error' ? 'Failing' : worst === 'warning' ? 'Expiring' : n ? 'OK' : 'Idle';
}

function overallText(errors: number, warnings: number, n: number): string {
  if (errors)
    return `${errors} of ${n} ${n === 1 ? 'certificate needs' : 'certificates need'} attention`;
  if (warnings) return `${warnings} of ${n} expiring soon`;
  return n ? 'All certificates healthy' : 'No certificates';
}

/** "61 days left", "5 hours left", "expired 2 days ago". */
export function timeLeftText(seconds: number | null): string {
  if (seconds === null) return 'no expiry known';
  if (seconds <= 0) return seconds > -60 ? 'expired just now' : `expired ${span(-seconds)} ago`;
  return `${span(seconds)} left`;
}

function relative(iso: string, now: Date): string {
  const s = secondsUntil(iso, now);
  if (s === null) return '';
  if (Math.abs(s) < 5) return s >= 0 ? 'now' : 'just now';
  return s > 0 ? `in ${span(s)}` : `${span(-s)} ago`;
}

/** "2026-06-01 14:03 UTC": one zone for everyone reading the same page. */
function fmtTime(iso: string): string {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return `${d.toISOString().slice(0, 16).replace('T', ' ')} UTC`;
}

function fmtDate(iso: string): string {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toISOString().slice(0, 10);
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** HTML-escapes text for element content and double- or single-quoted attributes. */
export function esc(s: string): string {
  return s
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

const CSS = `
:root{--bg:#f3f4f6;--card:#fff;--ink:#1f2328;--muted:#5d6670;--line:#d8dde3;
--ok:#1a7f37;--ok-bg:#dafbe1;--warn:#9a6700;--warn-line:#d4a72c;--warn-bg:#fff8c5;
--err:#cf222e;--err-bg:#ffebe9;--grey:#6e7781;--grey-bg:#eaeef2;--blue:#0969da;--blue-bg:#ddf4ff}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--ink);font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
code,.code{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,"Liberation Mono",monospace;font-size:12.5px}
.top{background:#1f2937;color:#f9fafb;padding:18px 28px 16px}
.brand{display:flex;align-items:center;gap:16px;flex-wrap:wrap}
h1{margin:0;font-size:20px;font-weight:650;letter-spacing:.2px}
.overall{padding:3px 12px;border-radius:999px;font-weight:600;font-size:13px}
.overall-ok{background:var(--ok-bg);color:var(--ok)}
.overall-warning{background:var(--warn-bg);color:var(--warn)}
.overall-error{background:var(--err-bg);color:var(--err)}
.facts{display:flex;flex-wrap:wrap;gap:10px 36px;margin:14px 0 0}
.facts>div{min-width:0}
.facts dt{font-size:11px;text-transform:uppercase;letter-spacing:.6px;color:#9ca3af;margin-bottom:3px}
.facts dd{margin:0}
.top .muted{color:#c3c9d1}
.tally b{font-weight:650}.t-ok{color:#4ade80}.t-warning{color:#fbbf24}.t-error{color:#f87171}
main{padding:8px 28px 24px;max-width:1400px}
h2{font-size:15px;margin:18px 0 10px;color:var(--ink)}
.count{display:inline-block;min-width:20px;padding:0 7px;border-radius:999px;background:var(--warn-bg);color:var(--warn);font-size:12px;text-align:center}
.certs{display:flex;flex-direction:column;gap:10px}
.cert{display:grid;grid-template-columns:minmax(220px,2.2fr) 110px minmax(200px,2fr) 150px 150px;gap:6px 22px;align-items:center;
background:var(--card);border:1px solid var(--line);border-left:6px solid var(--ok);border-radius:8px;padding:14px 18px}
.cert.s-warning{border-color:var(--warn-line);border-left-color:var(--warn-line);background:#fffdf0}
.cert.s-error{border-color:#ff8182;border-left-color:var(--err);background:#fff7f7}
.who{min-width:0}
h3{margin:0 0 3px;font-size:15px;font-weight:650;overflow-wrap:anywhere}
.hosts{list-style:none;margin:0;padding:0;display:flex;flex-wrap:wrap;gap:4px}
.hosts li{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,"Liberation Mono",monospace;font-size:12px;background:var(--grey-bg);color:#32383f;padding:1px 7px;border-radius:4px;overflow-wrap:anywhere}
.badge{display:inline-block;padding:2px 10px;border-radius:999px;font-size:12px;font-weight:650;border:1px solid transparent;white-space:nowrap}
.b-production{background:var(--ok-bg);color:var(--ok);border-color:#9be9a8}
.b-staging{background:var(--warn-bg);color:var(--warn);border-color:var(--warn-line)}
.b-self-signed{background:var(--grey-bg);color:#424a53;border-color:#c4cbd3}
.b-foreign{background:var(--blue-bg);color:var(--blue);border-color:#80ccff}
.b-none{background:transparent;color:var(--grey);border-color:#c4cbd3;border-style:dashed}
.bar{height:10px;background:#e5e8ec;border-radius:5px;overflow:hidden}
.fill{height:100%;background:var(--ok);border-radius:5px}
.bar-soon .fill{background:#d4a72c}.bar-critical .fill{background:var(--err)}.bar-untrusted .fill{background:#8c959f}
.left{font-weight:650;margin-top:4px}
.muted{color:var(--muted);font-size:12.5px}
.label{font-size:11px;text-transform:uppercase;letter-spacing:.6px;color:var(--muted)}
.due{color:var(--warn);font-weight:650}
.st{display:inline-block;font-weight:650;font-size:13px}
.st::before{content:"";display:inline-block;width:9px;height:9px;border-radius:50%;margin-right:6px;vertical-align:0}
.st-ok{color:var(--ok)}.st-ok::before{background:var(--ok)}
.st-warning{color:var(--warn)}.st-warning::before{background:#d4a72c}
.st-error{color:var(--err)}.st-error::before{background:var(--err)}
.top .st-ok{color:#4ade80}.top .st-error{color:#f87171}
.err,.pending{grid-column:1/-1;border-radius:6px;padding:8px 12px;margin-top:6px}
.err{background:var(--err-bg);border:1px solid #ffcecb}
.pending{background:var(--err-bg);color:#82071e;font-size:13px}
.err-head{display:flex;gap:12px;align-items:baseline}
.err .code{color:#82071e;font-weight:700;background:#ffd8d3;padding:1px 6px;border-radius:4px}
.msg{margin:4px 0 2px;overflow-wrap:anywhere;white-space:pre-wrap}
.retry{margin:0;color:#82071e;font-size:12.5px}
.banner{margin-top:16px;padding:10px 14px;border-radius:8px;background:var(--err-bg);border:1px solid #ffcecb;color:#82071e}
.banner .msg{display:block;color:var(--ink)}
.empty{color:var(--muted)}
.problems table{border-collapse:collapse;width:100%;background:var(--card);border:1px solid var(--line);border-radius:8px;overflow:hidden}
.problems th,.problems td{text-align:left;padding:7px 12px;border-bottom:1px solid #eaeef2;vertical-align:top;overflow-wrap:anywhere}
.problems th{font-size:11px;text-transform:uppercase;letter-spacing:.6px;color:var(--muted);background:#f6f8fa}
.problems tr:last-child td{border-bottom:0}
.problems td:first-child code{background:var(--grey-bg);padding:1px 6px;border-radius:4px}
.problems .code{color:var(--warn);font-weight:650}
footer{padding:6px 28px 22px;color:var(--muted);font-size:12px}
footer a{color:var(--blue)}
@media (max-width:900px){.cert{grid-template-columns:1fr 1fr}.who{grid-column:1/-1}.top,main,footer{padding-left:14px;padding-right:14px}}
`.replace(/\n/g, '');
