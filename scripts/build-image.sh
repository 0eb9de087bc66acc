#!/usr/bin/env bash
# Build the multi-arch (amd64 + arm64) container image from Containerfile with buildah (no
# Docker daemon needed; Debian's package), check it, and run the amd64 image's binary in the
# image's own (empty) root filesystem as uid 5000: serve, log in over IMAP, append, fetch.
#
#   bash scripts/build-image.sh            # after scripts/build-aarch64.sh (the arm64 binary)
#
# Output: target/image/pimap-<version>.oci.tar, an OCI archive holding the image index with
# both architectures (`skopeo copy --all oci-archive:... docker://REGISTRY/pimap:<version>` to
# publish, or `k3s ctr images import` it on a Pi). buildah's vfs storage and the chroot smoke
# test need root: run as a normal user, the script builds the binary as that user and runs the
# rest through `sudo -n`, with the storage in a temp dir and the outputs given back to the user.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
step() { printf '\n==> %s\n' "$*"; }
die() { echo "build-image: $*" >&2; exit 1; }
SECONDS=0

VERSION=$(awk -F'"' '/^version *=/ {print $2; exit}' Cargo.toml)
ARM64_BIN=${PIMAP_ARM64_BIN:-$ROOT/target/debian-aarch64/aarch64-unknown-linux-gnu/release/pimap}
[ -x "$ARM64_BIN" ] || die "no arm64 binary at $ARM64_BIN: run scripts/build-aarch64.sh first"
AMD64_BIN=$ROOT/target/static-amd64/x86_64-unknown-linux-gnu/release/pimap

# Set when a normal user's run handed the rest to root: the binary is built, by that user.
if [ -z "${PIMAP_IMAGE_BUILT_BY:-}" ]; then
    step "static amd64 binary (glibc, +crt-static)"
    # getrandom_backend: see .cargo/config.toml (no /dev/urandom in the image).
    RUSTFLAGS='-C target-feature=+crt-static --cfg getrandom_backend="linux_getrandom"' cargo build --release \
        --locked --target x86_64-unknown-linux-gnu --target-dir "$ROOT/target/static-amd64"
fi
file "$AMD64_BIN" | grep -Eq "static(-pie)? linked|statically linked" || die "$AMD64_BIN is not static: $(file "$AMD64_BIN")"
if [ "$(id -u)" -ne 0 ]; then
    step "the rest as root (sudo -n)"
    exec sudo -n env "PATH=$PATH" "PIMAP_ARM64_BIN=$ARM64_BIN" "PIMAP_IMAGE_BUILT_BY=$(id -u):$(id -g)" \
        bash "$ROOT/scripts/build-image.sh"
fi

step "buildah (Debian package)"
if ! command -v buildah >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends buildah >/dev/null
fi
buildah --version
# Private storage: under target/ for root, so nothing outside the checkout is touched; for a
# normal user's run a temp dir, so no root-owned files stay in that user's checkout.
STORE=$ROOT/target/image/storage
if [ -n "${PIMAP_IMAGE_BUILT_BY:-}" ]; then
    STORE=$(mktemp -d)
fi
B=(buildah --storage-driver vfs --root "$STORE/root" --runroot "$STORE/run")
cleanup() {
    [ -n "${PID:-}" ] && kill "$PID" 2>/dev/null
    if [ -n "${CTR:-}" ]; then
        "${B[@]}" umount "$CTR" >/dev/null 2>&1 || true
        "${B[@]}" rm "$CTR" >/dev/null 2>&1 || true
    fi
    if [ -n "${PIMAP_IMAGE_BUILT_BY:-}" ]; then
        rm -rf "$STORE"
        chown -R "$PIMAP_IMAGE_BUILT_BY" "$ROOT/target/image"
    fi
}
trap cleanup EXIT

DIST=$ROOT/target/image/dist
rm -rf "$DIST" && mkdir -p "$DIST/amd64" "$DIST/arm64"
cp "$AMD64_BIN" "$DIST/amd64/pimap"
cp "$ARM64_BIN" "$DIST/arm64/pimap"

step "build both images and the multi-arch index"
IMAGE=localhost/pimap:$VERSION
"${B[@]}" manifest rm "$IMAGE" >/dev/null 2>&1 || true
"${B[@]}" manifest create "$IMAGE" >/dev/null
for arch in amd64 arm64; do
    "${B[@]}" build --quiet --platform "linux/$arch" -f Containerfile \
        -t "$IMAGE-$arch" "$DIST" >/dev/null
    "${B[@]}" manifest add "$IMAGE" "$IMAGE-$arch" >/dev/null
    # The image config must say what the Containerfile says, for the right architecture.
    cfg=$("${B[@]}" inspect --type image --format \
        '{{.OCIv1.Architecture}} {{.OCIv1.Config.User}} {{.OCIv1.Config.Entrypoint}} {{.OCIv1.Config.Cmd}}' \
        "$IMAGE-$arch")
    echo "$arch: $cfg"
    [ "$cfg" = "$arch 5000:5000 [/pimap] [serve]" ] || die "$arch image config is wrong: $cfg"
done
OUT=$ROOT/target/image/pimap-$VERSION.oci.tar
rm -f "$OUT"
"${B[@]}" manifest push --quiet --all "$IMAGE" "oci-archive:$OUT:$VERSION" >/dev/null
archs=$(tar -xOf "$OUT" index.json | python3 -c '
import json, sys, tarfile
idx = json.load(sys.stdin)
t = tarfile.open(sys.argv[1])
blob = lambda d: json.load(t.extractfile("blobs/" + d["digest"].replace(":", "/")))
inner = blob(idx["manifests"][0])
print(" ".join(sorted(m["platform"]["architecture"] for m in inner["manifests"])))
' "$OUT")
[ "$archs" = "amd64 arm64" ] || die "index lists architectures '$archs', want 'amd64 arm64'"
echo "$OUT: $(du -h "$OUT" | cut -f1), architectures: $archs"

step "run the amd64 image's root filesystem as uid 5000 (chroot, nothing else in it)"
CTR=$("${B[@]}" from --quiet "$IMAGE-amd64")
MNT=$("${B[@]}" mount "$CTR")
listing=$(cd "$MNT" && find . -mindepth 1 | sort | tr '\n' ' ')
[ "$listing" = "./pimap " ] || die "the image holds more than /pimap: $listing"
mode=$(stat -c %a "$MNT/pimap")
[ "$mode" = 555 ] || die "/pimap has mode $mode, want 555"
install -d -o 5000 -g 5000 -m 0700 "$MNT/data"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
chroot --userspec=5000:5000 "$MNT" /pimap serve --data-dir /data \
    --imap-listen "127.0.0.1:$PORT" >"$ROOT/target/image/smoke.log" 2>&1 &
PID=$!
python3 - "$PORT" "$ROOT/target/image/smoke.log" <<'EOF'
import imaplib, re, sys, time
port, log = int(sys.argv[1]), sys.argv[2]
deadline = time.monotonic() + 20
while True:
    try:
        c = imaplib.IMAP4("127.0.0.1", port)
        break
    except OSError:
        if time.monotonic() > deadline:
            sys.exit("image smoke test: no IMAP listener:\n" + open(log).read())
        time.sleep(0.1)
text = open(log).read()
m = re.search(r"demo account: user (\S+), password (\S+)", text)
if not m:
    sys.exit(f"image smoke test: no demo credentials in the log:\n{text}")
c.login(m.group(1), m.group(2))
msg = b"Subject: image smoke\r\n\r\nhello from the container image\r\n"
assert c.append("INBOX", None, None, msg)[0] == "OK"
c.select("INBOX")
typ, data = c.fetch("1", "(BODY[])")
assert typ == "OK" and data[0][1] == msg, data
c.logout()
print("image smoke test: login, append, fetch OK")
EOF
owner=$(stat -c %u:%g "$MNT/data/users")
[ "$owner" = 5000:5000 ] || die "files written in the image are owned by $owner, want 5000:5000"
echo "image checks passed in ${SECONDS}s"
