#!/usr/bin/env bash
# tokend benchmarks (DESIGN §9): tokend's verifier beside its references, in one run, on
# one pinned core.
#
#   bash Benchmarks/run.sh
#
# 1. in-process: jose-bench (JWTVerifier.verify, single thread) against `openssl speed`
#    for the same primitives, both under `taskset -c $BENCH_CORE`;
# 2. CLI: hyperfine `jwt-inspect TOKEN` against the Go `jwt -show FILE` (Debian's `jwt`)
#    on the same token, and, when jwt-inspect takes --key, the verifying forms of both.
#
# Raw output goes to Benchmarks/results/<UTC timestamp>/ (gitignored; `latest` points at
# the newest); a Markdown summary is printed and saved there as summary.md.
#
# Environment:
#   BENCH_CORE=1              core to pin every measurement to
#   BENCH_SECONDS=3           seconds per in-process measurement (and per openssl speed test)
#   BENCH_ROUNDS=3            rounds of openssl speed + jose-bench (full, raw); medians are reported
#   BENCH_ALGS="ES256 ES384 EdDSA RS256 PS256 HS256"
#   BENCH_CLI=1               0 skips the CLI part
#   BENCH_CLI_WAIT_MINUTES=40 how long to keep retrying a jwt-inspect build that fails
#   BENCH_CLI_RETRY_SECONDS=180
#   BENCH_CLI_RUNS=200  BENCH_CLI_WARMUP=20
#   BENCH_CLI_DYNAMIC=1       also build jwt-inspect the way it shipped before (static Swift
#                             runtime only; libcrypto and glibc dynamic; scratch .build-release)
#                             and time it beside the shipped, fully static build, for scale
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

CORE="${BENCH_CORE:-1}"
SECS="${BENCH_SECONDS:-3}"
ROUNDS="${BENCH_ROUNDS:-3}"
ALGS="${BENCH_ALGS:-ES256 ES384 EdDSA RS256 PS256 HS256}"
CLI="${BENCH_CLI:-1}"
CLI_WAIT_MINUTES="${BENCH_CLI_WAIT_MINUTES:-40}"
CLI_RETRY_SECONDS="${BENCH_CLI_RETRY_SECONDS:-180}"
CLI_RUNS="${BENCH_CLI_RUNS:-200}"
CLI_WARMUP="${BENCH_CLI_WARMUP:-20}"
CLI_DYNAMIC="${BENCH_CLI_DYNAMIC:-1}"
HS256_TARGET=500000
RATIO_TARGET=0.9
CLI_TARGET=0.8

# shellcheck source=Benchmarks/common.sh
source "$ROOT/Benchmarks/common.sh"

# --- tools -----------------------------------------------------------------------------


need taskset util-linux
need openssl openssl
need python3 python3
if ! command -v swift >/dev/null 2>&1 && [ -x /opt/swift/usr/bin/swift ]; then PATH="/opt/swift/usr/bin:$PATH"; fi
command -v swift >/dev/null 2>&1 || { log "swift is not on PATH (expected the toolchain at /opt/swift)"; exit 1; }
if [ "$CLI" = 1 ]; then
    need hyperfine hyperfine
    need jwt jwt # the Go golang-jwt CLI (github.com/golang-jwt/jwt cmd/jwt)
fi

nproc_count="$(nproc)"
if [ "$CORE" -ge "$nproc_count" ]; then CORE=$((nproc_count - 1)); fi
PIN=(taskset -c "$CORE")

STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
OUT="$ROOT/Benchmarks/results/$STAMP"
mkdir -p "$OUT"
ln -sfn "$STAMP" "$ROOT/Benchmarks/results/latest"
log "results in $OUT"

# --- machine ---------------------------------------------------------------------------

cpu_model="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
{
    echo "date_utc=$STAMP"
    echo "nproc=$nproc_count"
    echo "cpu_model=$cpu_model"
    echo "kernel=$(uname -r)"
    echo "openssl=$(openssl version)"
    echo "swift=$(swift --version 2>&1 | head -1)"
    echo "pinned_core=$CORE"
    # "+dirty" when the measured modules differ from the commit
    echo "git_commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$ROOT" diff --quiet HEAD -- \
        Package.swift Sources/COpenSSL Sources/TokenCrypto Sources/JOSE Sources/jwt-inspect 2>/dev/null || echo '+dirty')"
    echo "loadavg_before=$(cut -d' ' -f1-3 /proc/loadavg)"
} >"$OUT/machine.txt"

# --- in-process ------------------------------------------------------------------------

log "building jose-bench (release)"
# SwiftPM keeps a build plan for the root package's sources (a path dependency here) and does
# not always notice a source file added to it; dropping the plan makes it look again.
rm -f Benchmarks/.build/release.yaml
swift build -c release --package-path Benchmarks 2>&1 | tail -3 >&2
BENCH="$(swift build -c release --package-path Benchmarks --show-bin-path)/jose-bench"

speed_algs=()
for alg in $ALGS; do
    case "$alg" in
    ES256) speed_algs+=(ecdsap256) ;;
    ES384) speed_algs+=(ecdsap384) ;;
    EdDSA) speed_algs+=(ed25519) ;;
    RS256 | PS256) speed_algs+=(rsa2048) ;;
    esac
done
if [ "${#speed_algs[@]}" -gt 0 ]; then mapfile -t speed_algs < <(printf '%s\n' "${speed_algs[@]}" | sort -u); fi

# Rounds: openssl speed, then jose-bench full and raw, ROUNDS times in turn on the same core;
# each side's rate is the median of its rounds, so a burst of load during one measurement
# does not decide a ratio. openssl speed's -mr lines: +F2:k:bits:sign/s:verify/s (RSA),
# +F4:k:bits:sign/s:verify/s (ECDSA), +F6:k:bits:name:sign/s:verify/s (EdDSA); its rates are
# per second of user CPU time.
for round in $(seq 1 "$ROUNDS"); do
    if [ "${#speed_algs[@]}" -gt 0 ]; then
        log "round $round/$ROUNDS: openssl speed -seconds $SECS ${speed_algs[*]} (core $CORE)"
        "${PIN[@]}" openssl speed -mr -seconds "$SECS" "${speed_algs[@]}" >"$OUT/openssl-speed-r$round.txt" 2>&1
    fi
    log "round $round/$ROUNDS: jose-bench verify --modes full,raw --seconds $SECS (core $CORE)"
    "${PIN[@]}" "$BENCH" verify --alg "$(echo "$ALGS" | tr ' ' ',')" --modes full,raw --seconds "$SECS" --warmup 1 |
        tee "$OUT/jose-bench-r$round.txt" >&2
    echo "loadavg_after_round$round=$(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/machine.txt"
done

# What callers pay beyond verify, and the tree-based parse, once (no target depends on them).
log "jose-bench verify --modes introspect,members,tree-parse --seconds $SECS (core $CORE)"
"${PIN[@]}" "$BENCH" verify --alg "$(echo "$ALGS" | tr ' ' ',')" --modes introspect,members,tree-parse \
    --seconds "$SECS" --warmup 1 | tee "$OUT/jose-bench-extra.txt" >&2

# HMAC reference: openssl speed's HMAC-SHA256 over a buffer the size of the HS256 signing input.
hs_input="$(sed -n 's/^mode=full alg=HS256 .*signing_input_bytes=\([0-9]*\).*/\1/p' "$OUT/jose-bench-r1.txt")"
if [ -n "$hs_input" ]; then
    log "openssl speed -seconds $SECS -hmac sha256 -bytes $hs_input (core $CORE)"
    "${PIN[@]}" openssl speed -mr -seconds "$SECS" -hmac sha256 -bytes "$hs_input" >"$OUT/openssl-speed-hmac.txt" 2>&1
fi
echo "loadavg_after_inprocess=$(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/machine.txt"

# --- CLI -------------------------------------------------------------------------------

cli_status="skipped (BENCH_CLI=0)"
if [ "$CLI" = 1 ]; then
    cli_status="not built"
    deadline=$(($(date +%s) + CLI_WAIT_MINUTES * 60))
    while :; do
        # Exactly `make release`'s jwt-inspect: one static executable.
        log "building jwt-inspect as shipped (release, -static-executable, scratch .build-static)"
        if swift build -c release --static-swift-stdlib -Xswiftc -static-executable --scratch-path .build-static \
            --product jwt-inspect >"$OUT/jwt-inspect-build.log" 2>&1; then
            cli_status="built"
            break
        fi
        tail -5 "$OUT/jwt-inspect-build.log" >&2
        if [ "$(date +%s)" -ge "$deadline" ]; then
            log "jwt-inspect still does not build after $CLI_WAIT_MINUTES minutes; skipping the CLI part"
            break
        fi
        log "jwt-inspect does not build yet; retrying in ${CLI_RETRY_SECONDS}s"
        sleep "$CLI_RETRY_SECONDS"
    done
fi

if [ "$cli_status" = built ]; then
    INSPECT="$ROOT/.build-static/release/jwt-inspect"
    JWT="$(command -v jwt)"
    mkdir -p "$OUT/cli"
    DYNAMIC=""
    if [ "$CLI_DYNAMIC" = 1 ]; then
        log "building jwt-inspect with a static Swift runtime only (for scale, scratch .build-release)"
        if swift build -c release --product jwt-inspect --static-swift-stdlib \
            --scratch-path .build-release >"$OUT/jwt-inspect-dynamic-build.log" 2>&1; then
            DYNAMIC="$ROOT/.build-release/release/jwt-inspect"
        else
            log "the dynamically linked build failed (see jwt-inspect-dynamic-build.log); leaving it out"
        fi
    fi
    {
        echo "jwt-inspect (shipped, -static-executable): $(stat -c %s "$INSPECT") bytes; $(file -b "$INSPECT" | cut -d, -f1-5)"
        [ -z "$DYNAMIC" ] || echo "jwt-inspect (static Swift runtime, dynamic libcrypto/glibc): $(stat -c %s "$DYNAMIC") bytes; $(file -b "$DYNAMIC" | cut -d, -f1-5)"
        echo "jwt: $(stat -c %s "$JWT") bytes; $(file -b "$JWT" | cut -d, -f1-5); $(dpkg-query -W -f '${Package} ${Version}' jwt 2>/dev/null || true)"
    } >"$OUT/cli/binaries.txt"

    # A token valid for a day, so neither tool takes an error path.
    "$BENCH" token --alg ES256 --out "$OUT/cli" --lifetime 86400 >"$OUT/cli/token.txt"
    TOKEN_FILE="$OUT/cli/ES256.jwt"
    TOKEN="$(cat "$TOKEN_FILE")"
    PUB="$OUT/cli/ES256.pub.pem"

    # exit status of a command line (no shell), recorded beside its output
    run_rc() { local out="$1"; shift; set +e; "$@" >"$out" 2>&1; local rc=$?; set -e; echo "$rc"; }

    # hyperfine over commands given as name/command pairs; -i only if one of them exits non-zero
    time_commands() {
        local json="$1"; shift
        local args=() ignore=() i=0
        while [ $# -gt 0 ]; do
            local name="$1" command="$2"; shift 2
            local rc
            rc="$(run_rc "$OUT/cli/$(basename "$json" .json)-$i.out" $command)"
            echo "$name: exit $rc" >>"$OUT/cli/exit-codes.txt"
            [ "$rc" -eq 0 ] || ignore=(-i)
            args+=(-n "$name" "$command")
            i=$((i + 1))
        done
        "${PIN[@]}" hyperfine -N "${ignore[@]}" --warmup "$CLI_WARMUP" --runs "$CLI_RUNS" --export-json "$json" "${args[@]}" \
            >"${json%.json}.txt" 2>&1
        cat "${json%.json}.txt" >&2
    }

    : >"$OUT/cli/exit-codes.txt"
    log "hyperfine: jwt-inspect TOKEN vs jwt -show FILE (core $CORE)"
    show=("jwt-inspect TOKEN" "$INSPECT $TOKEN")
    [ -z "$DYNAMIC" ] || show+=("jwt-inspect TOKEN (dynamic libcrypto/glibc)" "$DYNAMIC $TOKEN")
    show+=("jwt -show FILE" "$JWT -show $TOKEN_FILE")
    time_commands "$OUT/cli/show.json" "${show[@]}"

    # Verifying forms, when jwt-inspect takes a key.
    if "$INSPECT" --help 2>&1 | grep -q -- '--key'; then
        log "hyperfine: jwt-inspect TOKEN --key PEM vs jwt -alg ES256 -key PEM -verify FILE (core $CORE)"
        verify=("jwt-inspect TOKEN --key PEM" "$INSPECT $TOKEN --key $PUB")
        [ -z "$DYNAMIC" ] || verify+=("jwt-inspect TOKEN --key PEM (dynamic libcrypto/glibc)" "$DYNAMIC $TOKEN --key $PUB")
        verify+=("jwt -alg ES256 -key PEM -verify FILE" "$JWT -alg ES256 -key $PUB -verify $TOKEN_FILE")
        time_commands "$OUT/cli/verify.json" "${verify[@]}"
    fi
    # Process start-up alone, for scale.
    log "hyperfine: start-up only (jwt-inspect --version, jwt -h)"
    startup=("jwt-inspect --version" "$INSPECT --version")
    [ -z "$DYNAMIC" ] || startup+=("jwt-inspect --version (dynamic libcrypto/glibc)" "$DYNAMIC --version")
    startup+=("jwt -h" "$JWT -h")
    time_commands "$OUT/cli/startup.json" "${startup[@]}"
fi
echo "loadavg_after=$(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/machine.txt"
echo "cli_status=$cli_status" >>"$OUT/machine.txt"

# --- summary ---------------------------------------------------------------------------

python3 - "$OUT" "$HS256_TARGET" "$RATIO_TARGET" "$CLI_TARGET" "$CORE" "$SECS" >"$OUT/summary.md" <<'PY'
import json, os, sys

out, hs_target, ratio_target, cli_target, core, secs = sys.argv[1:7]
hs_target, ratio_target, cli_target = int(hs_target), float(ratio_target), float(cli_target)

def kv(line):
    return dict(part.split("=", 1) for part in line.split() if "=" in part)

machine = {}
for line in open(os.path.join(out, "machine.txt")):
    k, _, v = line.rstrip("\n").partition("=")
    machine[k] = v

import glob, statistics

def median(values):
    return statistics.median(values) if values else None

# jose-bench: every line of every round; rates are the medians over rounds.
bench_rounds = {}
for path in sorted(glob.glob(os.path.join(out, "jose-bench-r*.txt"))) + [os.path.join(out, "jose-bench-extra.txt")]:
    if not os.path.exists(path):
        continue
    for line in open(path):
        if line.startswith("mode="):
            d = kv(line)
            bench_rounds.setdefault((d["mode"], d["alg"]), []).append(d)
bench = {}
for key, rows in bench_rounds.items():
    merged = dict(rows[0])
    for field in ("cpu_verifies_per_sec", "verifies_per_sec", "median_batch_per_sec", "user_verifies_per_sec"):
        values = [float(r[field]) for r in rows if field in r]
        if values:
            merged[field] = str(median(values))
    merged["rounds"] = ",".join(f'{float(r["cpu_verifies_per_sec"]):.0f}' for r in rows if "cpu_verifies_per_sec" in r)
    bench[key] = merged

speed_rounds = {}  # openssl speed verify/s per user CPU second, per round
for path in sorted(glob.glob(os.path.join(out, "openssl-speed-r*.txt"))):
    for line in open(path):
        f = line.strip().split(":")
        if f[0] == "+F2" and f[2] == "2048":
            speed_rounds.setdefault("rsa2048", []).append(float(f[4]))
        elif f[0] == "+F4" and f[2] in ("256", "384"):
            speed_rounds.setdefault("ecdsap" + f[2], []).append(float(f[4]))
        elif f[0] == "+F6" and f[3] == "Ed25519":
            speed_rounds.setdefault("ed25519", []).append(float(f[5]))
speed = {k: median(v) for k, v in speed_rounds.items()}
path = os.path.join(out, "openssl-speed-hmac.txt")
hmac_bytes = None
if os.path.exists(path):
    for line in open(path):
        f = line.strip().split(":")
        if f[0] == "+H":
            hmac_bytes = int(f[1])
        elif f[0] == "+F" and "hmac" in f[2].lower() and hmac_bytes:
            speed["hmac"] = float(f[3]) / hmac_bytes

refs = {
    "ES256": ("ecdsap256", "ecdsap256 verify"),
    "ES384": ("ecdsap384", "ecdsap384 verify"),
    "EdDSA": ("ed25519", "ed25519 verify"),
    "RS256": ("rsa2048", "rsa2048 verify"),
    "PS256": ("rsa2048", "rsa2048 verify¹"),
    "HS256": ("hmac", f"hmac(sha256), {hmac_bytes} B" if hmac_bytes else "hmac(sha256)"),
}

def n(x):
    return f"{x:,.0f}"

rounds = len(glob.glob(os.path.join(out, "openssl-speed-r*.txt")))
print(f"### In-process verification (single thread, `taskset -c {core}`, {secs} s per measurement, median of {rounds} rounds)")
print()
print("Rates are per second of CPU time of the measuring thread (`openssl speed` reports per second of")
print("user CPU time); the wall-clock rate is shown too. *full* = `JWTVerifier.verify` (split, base64url,")
print("header rules, kid lookup, signature, claims, time and identity checks, 1h lifetime policy); *raw* =")
print("`VerifyingKey.verify(signature:message:)` on pre-decoded bytes; *overhead* = full − raw, per token.")
print()
print("| alg | tokend verify/s | openssl speed verify/s | ratio | target | result | tokend wall verify/s | raw verify/s | raw ratio | full ns | raw ns | overhead ns |")
print("|---|---:|---:|---:|---|---|---:|---:|---:|---:|---:|---:|")
results = []
for alg in ["ES256", "ES384", "EdDSA", "RS256", "PS256", "HS256"]:
    full = bench.get(("full", alg))
    if not full:
        continue
    raw = bench.get(("raw", alg), {})
    rate = float(full["cpu_verifies_per_sec"])
    wall = float(full["verifies_per_sec"])
    key, label = refs[alg]
    ref = speed.get(key)
    ratio = rate / ref if ref else None
    raw_rate = float(raw["cpu_verifies_per_sec"]) if raw else None
    raw_ratio = raw_rate / ref if (ref and raw_rate) else None
    if alg in ("ES256", "EdDSA", "RS256"):
        target = f"≥ {ratio_target} × openssl"
        ok = ratio is not None and ratio >= ratio_target
    elif alg == "HS256":
        target = f"≥ {hs_target:,}/s"
        ok = rate >= hs_target
    else:
        target, ok = "—", None
    verdict = "—" if ok is None else ("PASS" if ok else "**FAIL**")
    if ok is not None:
        results.append((alg, ok))
    print(
        f"| {alg} | {n(rate)} | {n(ref) + ' (' + label + ')' if ref else 'n/a'} | "
        f"{f'{ratio:.2f}' if ratio else 'n/a'} | {target} | {verdict} | {n(wall)} | "
        f"{n(raw_rate) if raw_rate else 'n/a'} | {f'{raw_ratio:.2f}' if raw_ratio else 'n/a'} | "
        f"{n(1e9 / rate)} | {n(1e9 / raw_rate) if raw_rate else 'n/a'} | "
        f"{n(1e9 / rate - 1e9 / raw_rate) if raw_rate else 'n/a'} |"
    )
print()
print("Each round (openssl speed, then tokend full, on the same core), verify/s:")
print()
print("| alg | openssl speed | tokend full | ratio |")
print("|---|---|---|---|")
for alg in ["ES256", "EdDSA", "RS256"]:
    key = refs[alg][0]
    rows = bench_rounds.get(("full", alg), [])
    refs_r = speed_rounds.get(key, [])
    if rows and refs_r:
        pairs = list(zip(refs_r, [float(r["cpu_verifies_per_sec"]) for r in rows]))
        print(f"| {alg} | {', '.join(n(a) for a, _ in pairs)} | {', '.join(n(b) for _, b in pairs)} | "
              f"{', '.join(f'{b / a:.3f}' for a, b in pairs)} |")
rows = bench_rounds.get(("full", "HS256"), [])
if rows:
    print(f"| HS256 | — | {', '.join(n(float(r['cpu_verifies_per_sec'])) for r in rows)} | — |")
print()
print("What a caller pays beyond `verify` (same run, ns per token, CPU time): *introspect* = verify, then")
print("every claim tokend's introspection reads, the way `TokenService` reads them today (custom claims")
print("through `claims.json`, which builds the claim set's tree); *members* = the same reads with")
print("`JWTClaims.member(_:)`; *tree-parse* = the tree-based parse without the signature (`CompactJWS`,")
print("`JWTClaims(payload:)`, the checks), i.e. what each verification spent on parsing before the scanner.")
print()
print("| alg | full ns | introspect ns | members ns | tree-parse ns |")
print("|---|---:|---:|---:|---:|")
def ns(mode, alg):
    d = bench.get((mode, alg))
    return n(1e9 / float(d["cpu_verifies_per_sec"])) if d else "n/a"
for alg in ["ES256", "ES384", "EdDSA", "RS256", "PS256", "HS256"]:
    if ("full", alg) in bench:
        print(f"| {alg} | {ns('full', alg)} | {ns('introspect', alg)} | {ns('members', alg)} | {ns('tree-parse', alg)} |")
print()
print("¹ openssl speed has no RSA-PSS test; PS256 is shown against its PKCS#1 v1.5 rsa2048 verify, for scale only.")
any_full = next(iter(v for k, v in bench.items() if k[0] == "full"), None)
if any_full:
    print()
    print(f"Token: {any_full['claims_bytes']} bytes of claims (iss, sub, aud, iat, nbf, exp, jti, scope, client_id, azp, auth_time, acr, amr), "
          f"{bench[('full', 'ES256')]['token_bytes'] if ('full', 'ES256') in bench else '?'} bytes as an ES256 compact JWS.")
print()

print("### CLI: one process per token (hyperfine, `-N`, pinned)")
print()
cli = os.path.join(out, "cli")
status = machine.get("cli_status", "")
if status != "built":
    print(f"Not measured: jwt-inspect {status}.")
else:
    codes = "; ".join(l.strip() for l in open(os.path.join(cli, "exit-codes.txt")) if l.strip())
    print("| command | median | mean ± σ | min | ratio to jwt | target | result |")
    print("|---|---:|---:|---:|---:|---|---|")
    for name in ("show.json", "verify.json", "startup.json"):
        p = os.path.join(cli, name)
        if not os.path.exists(p):
            continue
        r = json.load(open(p))["results"]
        ref = r[-1]["median"]  # the jwt command is always last
        for i, row in enumerate(r):
            is_ref = i == len(r) - 1
            ratio = row["median"] / ref
            if name == "show.json" and i == 0:
                ok = ratio <= cli_target
                tgt, verdict = f"≤ {cli_target}", ("PASS" if ok else "**FAIL**")
                results.append(("CLI (jwt-inspect TOKEN vs jwt -show)", ok))
            else:
                tgt, verdict = "—", "—"
            print(f"| `{row['command']}` | {row['median'] * 1000:.2f} ms | {row['mean'] * 1000:.2f} ± {row['stddev'] * 1000:.2f} ms | "
                  f"{row['min'] * 1000:.2f} ms | {'(reference)' if is_ref else f'{ratio:.2f}'} | {tgt} | {verdict} |")
    print()
    print(f"Exit codes: {codes}.")
    bins = os.path.join(cli, "binaries.txt")
    if os.path.exists(bins):
        print()
        for line in open(bins):
            print(f"- {line.strip()}")
print()
print("### Targets")
print()
for alg, ok in results:
    print(f"- {alg}: {'PASS' if ok else 'FAIL'}")
print()
print(f"Machine: {machine.get('nproc')} cores, {machine.get('cpu_model')}; {machine.get('openssl')}; {machine.get('swift')}; "
      f"kernel {machine.get('kernel')}; commit {machine.get('git_commit')}. Load average before/after: "
      f"{machine.get('loadavg_before')} / {machine.get('loadavg_after')}. Raw results: Benchmarks/results/{os.path.basename(out)}/.")
PY
cat "$OUT/summary.md"
if [ "$CLI" = 1 ] && [ "$cli_status" != built ]; then exit 3; fi
