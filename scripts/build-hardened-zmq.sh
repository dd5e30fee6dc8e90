#!/usr/bin/env bash
# Build an opt-in hardened zeromq.js addon: libzmq from Debian's source package
# (zeromq3), patched with scripts/hardened-zmq/*.patch, linked statically into
# zeromq.js's own C++ sources (node_modules/zeromq/src). See docs/hardened-zmq.md.
#
#   scripts/build-hardened-zmq.sh              build only (node_modules untouched)
#   scripts/build-hardened-zmq.sh --install    build, then make node_modules/zeromq load it
#   scripts/build-hardened-zmq.sh --uninstall  make node_modules/zeromq load its stock addon again
#   scripts/build-hardened-zmq.sh --status     say which addon node_modules/zeromq loads
#
# Options:
#   --work-dir DIR  where everything is fetched and built (default: .hardened-zmq in the
#                   repository, or $HARDENED_ZMQ_DIR); nothing outside it is written by a
#                   build, except apt's own state (packages, a deb-src entry) when missing
#   --jobs N        parallel compile jobs (default: $HARDENED_ZMQ_JOBS or 2)
#   --no-patch      build the same thing without our patch (a control for tests; output
#                   goes to DIR/unpatched instead of DIR/hardened; cannot be installed)
#   --force         rebuild even if DIR already holds a build of the same inputs
#   -h, --help      this text
set -euo pipefail

REPO_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PATCH_FILE="$REPO_DIR/scripts/hardened-zmq/libzmq-router-reserved-routing-ids.patch"
SCRIPT_FILE="$REPO_DIR/scripts/build-hardened-zmq.sh"
SRC_PACKAGE=zeromq3
WORK_DIR="${HARDENED_ZMQ_DIR:-$REPO_DIR/.hardened-zmq}"
JOBS="${HARDENED_ZMQ_JOBS:-2}"
ACTION=build
APPLY_PATCH=1
FORCE=0
# Marker and backup names inside node_modules/zeromq/build when installed.
MARKER_NAME=zeropeer-hardened.json
BACKUP_NAME=manifest.json.zeropeer-stock

log() { printf '[hardened-zmq] %s\n' "$*" >&2; }
die() { printf '[hardened-zmq] error: %s\n' "$*" >&2; exit 1; }
usage() { sed -n '2,/^set -euo/p' "$SCRIPT_FILE" | sed -e '$d' -e 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
  case "$1" in
    --work-dir) [ $# -ge 2 ] || die "--work-dir needs a value"; WORK_DIR=$2; shift 2 ;;
    --work-dir=*) WORK_DIR=${1#*=}; shift ;;
    --jobs) [ $# -ge 2 ] || die "--jobs needs a value"; JOBS=$2; shift 2 ;;
    --jobs=*) JOBS=${1#*=}; shift ;;
    --install) ACTION=install; shift ;;
    --uninstall) ACTION=uninstall; shift ;;
    --status) ACTION=status; shift ;;
    --no-patch) APPLY_PATCH=0; shift ;;
    --force) FORCE=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
done
case "$JOBS" in ''|*[!0-9]*|0) die "--jobs must be a positive integer" ;; esac
[ "$APPLY_PATCH" = 1 ] || [ "$ACTION" = build ] || die "--no-patch builds a control only: it cannot be combined with --$ACTION"
case "$WORK_DIR" in /*) ;; *) WORK_DIR="$PWD/$WORK_DIR" ;; esac
if [ "$APPLY_PATCH" = 1 ]; then VARIANT=hardened; else VARIANT=unpatched; fi
VDIR="$WORK_DIR/$VARIANT"

command -v node >/dev/null || die "node is not on PATH"

# The zeromq package this repository resolves (the one zeropeer imports).
project_zeromq_dir() {
  (cd "$REPO_DIR" && node -p "require('path').dirname(require.resolve('zeromq/package.json'))" 2>/dev/null) \
    || die "node_modules/zeromq not found: run 'npm ci' in $REPO_DIR first"
}

# Where this platform's addon lives inside a zeromq package's build/ folder, and the
# manifest entry that cmake-ts's loader (zeromq/lib/load-addon.js) matches on.
platform_json() {
  node -e '
    const fs = require("fs");
    const libc = process.platform === "linux" ? (fs.existsSync("/etc/alpine-release") ? "musl" : "glibc")
      : process.platform === "darwin" ? "libc" : process.platform === "win32" ? "msvc" : "unknown";
    const rel = `${process.platform}/${process.arch}/node/zeropeer-hardened-${libc}/addon.node`;
    const config = { name: "zeropeer-hardened", cross: false, os: process.platform, arch: process.arch,
      runtime: "node", nodeAPI: "node-addon-api", runtimeVersion: process.versions.node, buildType: "Release",
      abi: Number(process.versions.modules), libc, hardened: process.argv[1] };
    console.log(JSON.stringify({ rel, manifest: { [JSON.stringify(config)]: rel } }));
  ' "$1"
}

# What zmq.version a zeromq package directory reports (loads its addon in a fresh node).
zmq_version_of() {
  node -e 'console.log(require(process.argv[1]).version)' "$1"
}

# ---------------------------------------------------------------- status / uninstall
manifest_is_ours() { grep -q 'zeropeer-hardened' "$1" 2>/dev/null; }

status() {
  local pkg build
  pkg=$(project_zeromq_dir); build="$pkg/build"
  if manifest_is_ours "$build/manifest.json"; then
    echo "node_modules/zeromq: HARDENED addon installed ($build/$MARKER_NAME)"
    cat "$build/$MARKER_NAME" 2>/dev/null || echo "(its record $MARKER_NAME is missing)"
  else
    echo "node_modules/zeromq: stock prebuilt addon (not hardened)"
    [ ! -f "$build/$MARKER_NAME" ] || echo "(a leftover $MARKER_NAME: --uninstall clears it)"
  fi
  echo "zmq.version reported: $(zmq_version_of "$pkg")"
}

uninstall() {
  local pkg build rel
  pkg=$(project_zeromq_dir); build="$pkg/build"
  if [ ! -f "$build/$MARKER_NAME" ] && [ ! -f "$build/$BACKUP_NAME" ]; then
    log "node_modules/zeromq has no hardened addon installed: nothing to undo"
    return 0
  fi
  rel=$(node -p 'JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).rel' "$build/$MARKER_NAME" 2>/dev/null || true)
  if [ -f "$build/$BACKUP_NAME" ]; then
    mv -f "$build/$BACKUP_NAME" "$build/manifest.json"
  elif manifest_is_ours "$build/manifest.json"; then
    die "backup $build/$BACKUP_NAME is missing: run 'npm ci' to reinstall the stock zeromq package"
  fi # else: an earlier --uninstall stopped half-way, after restoring the manifest
  if [ -n "$rel" ] && [ -d "$build/$(dirname "$rel")" ]; then rm -rf "${build:?}/$(dirname "$rel")"; fi
  rm -f "$build/$MARKER_NAME"
  log "restored the stock addon of $pkg (zmq.version $(zmq_version_of "$pkg"))"
}

case "$ACTION" in
  status) status; exit 0 ;;
  uninstall) uninstall; exit 0 ;;
esac

# ---------------------------------------------------------------- build tools (apt)
APT_UPDATED=0
apt_update() {
  if [ "$APT_UPDATED" = 0 ]; then
    log "apt-get update"
    apt-get update -qq || log "warning: apt-get update reported errors (continuing)"
    APT_UPDATED=1
  fi
}

ensure_packages() {
  local missing=() p
  for p in build-essential cmake pkg-config dpkg-dev libsodium-dev patch; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  [ "$(id -u)" = 0 ] || die "missing Debian packages: ${missing[*]} (run: sudo apt-get install ${missing[*]})"
  apt_update
  log "apt-get install ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

have_source_index() {
  apt-cache showsrc --only-source "$SRC_PACKAGE" 2>/dev/null | grep -q '^Package:'
}

# Writes deb-src entries that mirror the active 'deb' entries of this release's suites
# (deb822 *.sources and one-line *.list files alike) to /etc/apt/sources.list.d/.
add_deb_src_entries() {
  local codename files=() f out
  codename=$(. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}")
  [ -n "$codename" ] || die "cannot tell this system's release codename from /etc/os-release"
  for f in /etc/apt/sources.list.d/*.sources; do if [ -f "$f" ]; then files+=("$f"); fi; done
  if [ ${#files[@]} -gt 0 ]; then
    out=$(awk -v codename="$codename" '
      function flush(   n, s, j, keep) {
        if (types ~ /(^|[ \t])deb([ \t]|$)/ && enabled != "no" && uris != "") {
          n = split(suites, s, /[ \t]+/); keep = ""
          for (j = 1; j <= n; j++)
            if (s[j] == codename || index(s[j], codename "-") == 1) keep = keep (keep == "" ? "" : " ") s[j]
          if (keep != "") {
            print "Types: deb-src"; print "URIs: " uris; print "Suites: " keep
            if (comps != "") print "Components: " comps
            if (signed != "") print "Signed-By: " signed
            if (trusted != "") print "Trusted: " trusted
            print ""
          }
        }
        types = uris = suites = comps = signed = trusted = enabled = key = ""
      }
      /^[ \t]*$/ { flush(); next }
      /^#/ { next }
      /^[ \t]/ { if (key == "signed-by") signed = signed "\n" $0; next }
      {
        key = tolower(substr($0, 1, index($0, ":") - 1)); val = substr($0, index($0, ":") + 1)
        gsub(/^[ \t]+|[ \t]+$/, "", val)
        if (key == "types") types = val; else if (key == "uris") uris = val
        else if (key == "suites") suites = val; else if (key == "components") comps = val
        else if (key == "signed-by") signed = val; else if (key == "trusted") trusted = val
        else if (key == "enabled") enabled = tolower(val)
      }
      END { flush() }' "${files[@]}")
    if [ -n "$out" ]; then
      printf '# Added by zeropeer scripts/build-hardened-zmq.sh: source packages for apt-get source.\n%s\n' "$out" \
        > /etc/apt/sources.list.d/zeropeer-deb-src.sources
      log "wrote /etc/apt/sources.list.d/zeropeer-deb-src.sources"
    fi
  fi
  files=()
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do if [ -f "$f" ]; then files+=("$f"); fi; done
  if [ ${#files[@]} -gt 0 ]; then
    out=$(awk -v codename="$codename" '
      $1 == "deb" {
        i = 2; opts = ""
        if ($2 ~ /^\[/) { while (i <= NF && $i !~ /\]$/) { opts = opts " " $i; i++ } opts = opts " " $i; i++ }
        suite = $(i + 1)
        if (suite == codename || index(suite, codename "-") == 1) {
          line = "deb-src" opts; for (j = i; j <= NF; j++) line = line " " $j; print line
        }
      }' "${files[@]}")
    if [ -n "$out" ]; then
      printf '# Added by zeropeer scripts/build-hardened-zmq.sh: source packages for apt-get source.\n%s\n' "$out" \
        > /etc/apt/sources.list.d/zeropeer-deb-src.list
      log "wrote /etc/apt/sources.list.d/zeropeer-deb-src.list"
    fi
  fi
}

ensure_deb_src() {
  have_source_index && return 0
  [ "$(id -u)" = 0 ] || die "apt has no deb-src entry for $SRC_PACKAGE; add one (see docs/hardened-zmq.md) or run as root"
  if ! grep -qsE '^[[:space:]]*deb-src[[:space:]]|^Types:.*deb-src' /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; then
    add_deb_src_entries
  fi
  APT_UPDATED=0; apt_update
  have_source_index || die "apt-get still finds no source package $SRC_PACKAGE after adding deb-src entries and apt-get update"
}

# ---------------------------------------------------------------- inputs and cache key
ensure_packages
ensure_deb_src

SRC_DIR="$WORK_DIR/src"
mkdir -p "$SRC_DIR" "$VDIR"
WORK_DIR=$(cd "$WORK_DIR" && pwd); SRC_DIR="$WORK_DIR/src"; VDIR="$WORK_DIR/$VARIANT"
# (--print-uris from an empty folder: in SRC_DIR it would skip files already downloaded)
PRINT_DIR=$(mktemp -d)
DSC_NAME=$(cd "$PRINT_DIR" && apt-get source --only-source --print-uris "$SRC_PACKAGE" 2>/dev/null | awk '$2 ~ /\.dsc$/ { print $2; exit }')
rmdir "$PRINT_DIR"
[ -n "$DSC_NAME" ] || die "apt-get source --print-uris $SRC_PACKAGE named no .dsc file"
DEB_VERSION=${DSC_NAME#"${SRC_PACKAGE}"_}; DEB_VERSION=${DEB_VERSION%.dsc}
if [ "$APPLY_PATCH" = 1 ]; then
  PATCH_SHA=$(sha256sum "$PATCH_FILE" | cut -d' ' -f1)
  BUILD_LABEL="libzmq ${DEB_VERSION} (Debian $SRC_PACKAGE) + zeropeer patch ${PATCH_SHA:0:12}"
else
  PATCH_SHA=none
  BUILD_LABEL="libzmq ${DEB_VERSION} (Debian $SRC_PACKAGE), UNPATCHED control build"
fi
PKG_SRC=$(project_zeromq_dir)
ZEROMQ_JS_VERSION=$(node -p 'require(process.argv[1] + "/package.json").version' "$PKG_SRC")
PLATFORM=$(platform_json "$BUILD_LABEL")
ADDON_REL=$(node -p 'JSON.parse(process.argv[1]).rel' "$PLATFORM")
CACHE_KEY=$(printf '%s\n' "$DSC_NAME" "$PATCH_SHA" "$(sha256sum "$SCRIPT_FILE" | cut -d' ' -f1)" \
  "$ZEROMQ_JS_VERSION" "$(node -p process.versions.modules)" "$(uname -m)" | sha256sum | cut -d' ' -f1)
OUT_PKG="$VDIR/node_modules/zeromq"
OUT_ADDON="$OUT_PKG/build/$ADDON_REL"

if [ "$FORCE" = 0 ] && [ -f "$VDIR/BUILD-INFO" ] && [ -f "$OUT_ADDON" ] \
   && grep -qx "cache-key: $CACHE_KEY" "$VDIR/BUILD-INFO"; then
  log "up to date: $OUT_PKG ($BUILD_LABEL); --force rebuilds"
else
  start=$(date +%s)
  rm -f "$VDIR/BUILD-INFO"

  # ------------------------------------------------------------ fetch + patch the source
  log "apt-get source $SRC_PACKAGE ($DSC_NAME) into $SRC_DIR"
  (cd "$SRC_DIR" && apt-get source --only-source --download-only -qq -o APT::Sandbox::User=root "$SRC_PACKAGE" >/dev/null) \
    || die "apt-get source $SRC_PACKAGE failed"
  LIBZMQ_SRC="$VDIR/libzmq-src"
  rm -rf "$LIBZMQ_SRC"
  # apt checked the files against the signed Sources index; dpkg-source also tries the .dsc's
  # own signature and only warns without Debian's keyring (package debian-keyring).
  (cd "$SRC_DIR" && dpkg-source --no-copy -x "$DSC_NAME" "$LIBZMQ_SRC") > "$VDIR/dpkg-source.log" 2>&1 \
    || { cat "$VDIR/dpkg-source.log" >&2; die "dpkg-source -x $DSC_NAME failed"; }
  if [ "$APPLY_PATCH" = 1 ]; then
    patch -d "$LIBZMQ_SRC" -p1 --forward --batch --dry-run < "$PATCH_FILE" >/dev/null \
      || die "$PATCH_FILE does not apply to $SRC_PACKAGE $DEB_VERSION"
    patch -d "$LIBZMQ_SRC" -p1 --forward --batch < "$PATCH_FILE" >/dev/null
    log "applied $(basename "$PATCH_FILE")"
  else
    log "NOT applying the patch (--no-patch control build)"
  fi

  # ------------------------------------------------------------ libzmq (static, PIC)
  PREFIX="$VDIR/prefix"
  rm -rf "$VDIR/libzmq-build" "$PREFIX"
  log "building libzmq (static, drafts, CURVE with libsodium) into $PREFIX"
  cmake -S "$LIBZMQ_SRC" -B "$VDIR/libzmq-build" -G "Unix Makefiles" \
    -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX="$PREFIX" -DCMAKE_INSTALL_LIBDIR=lib \
    -DCMAKE_POSITION_INDEPENDENT_CODE=ON -DBUILD_SHARED=OFF -DBUILD_STATIC=ON -DBUILD_TESTS=OFF \
    -DWITH_DOCS=OFF -DWITH_PERF_TOOL=OFF -DENABLE_CPACK=OFF -DENABLE_PRECOMPILED=OFF \
    -DENABLE_DRAFTS=ON -DENABLE_CURVE=ON -DWITH_LIBSODIUM=ON -DENABLE_WS=ON -DWITH_TLS=OFF \
    -DWITH_LIBBSD=OFF -DWITH_OPENPGM=OFF -DWITH_NORM=OFF -DWITH_VMCI=OFF \
    > "$VDIR/libzmq-cmake.log" 2>&1 || { tail -30 "$VDIR/libzmq-cmake.log" >&2; die "cmake configure of libzmq failed (log: $VDIR/libzmq-cmake.log)"; }
  grep -q 'Using libsodium for CURVE security' "$VDIR/libzmq-cmake.log" \
    || die "libzmq's cmake did not find libsodium (log: $VDIR/libzmq-cmake.log)"
  cmake --build "$VDIR/libzmq-build" --target libzmq-static -j "$JOBS" > "$VDIR/libzmq-build.log" 2>&1 \
    || { tail -30 "$VDIR/libzmq-build.log" >&2; die "libzmq build failed (log: $VDIR/libzmq-build.log)"; }
  # Install headers and the archive only (cmake --install would also want the shared target).
  mkdir -p "$PREFIX/include" "$PREFIX/lib"
  cp "$LIBZMQ_SRC/include/zmq.h" "$LIBZMQ_SRC/include/zmq_utils.h" "$PREFIX/include/"
  cp "$VDIR/libzmq-build/lib/libzmq.a" "$PREFIX/lib/libzmq.a"

  # ------------------------------------------------------------ zeromq.js addon
  NAPI_DIR=$(node -p 'require("path").dirname(require.resolve("node-addon-api/package.json", { paths: [process.argv[1]] }))' "$PKG_SRC") \
    || die "node-addon-api (a dependency of zeromq) not found"
  NODE_INC=""
  for d in "$(dirname "$(dirname "$(command -v node)")")/include/node" /usr/include/node /usr/local/include/node; do
    if [ -f "$d/node_api.h" ]; then NODE_INC=$d; break; fi
  done
  if [ -z "$NODE_INC" ]; then
    # Node-API headers only (no V8 needed: the addon uses Node-API), from the npm registry.
    log "no node_api.h next to node: fetching the node-api-headers package"
    rm -rf "$WORK_DIR/node-api-headers"; mkdir -p "$WORK_DIR/node-api-headers"
    (cd "$WORK_DIR/node-api-headers" && npm pack --silent node-api-headers@1 >/dev/null && tar -xzf node-api-headers-*.tgz) \
      || die "no Node.js headers (node_api.h) found and npm pack node-api-headers failed"
    NODE_INC="$WORK_DIR/node-api-headers/package/include"
  fi
  OBJ_DIR="$VDIR/addon-build"
  rm -rf "$OBJ_DIR"; mkdir -p "$OBJ_DIR"
  log "compiling zeromq.js $ZEROMQ_JS_VERSION addon sources ($PKG_SRC/src) against it"
  CXXFLAGS_ADDON=(-std=c++20 -O3 -DNDEBUG -fPIC -fvisibility=hidden -w
    -DNAPI_CPP_EXCEPTIONS -DZMQ_BUILD_DRAFT_API -DBUILDING_NODE_EXTENSION -DZMQ_STATIC
    -I"$PREFIX/include" -isystem "$NAPI_DIR" -isystem "$NODE_INC")
  export OBJ_DIR
  printf '%s\n' "$PKG_SRC"/src/*.cc \
    | xargs -P "$JOBS" -I{} sh -c 'f="$1"; shift; exec "$@" -c "$f" -o "$OBJ_DIR/$(basename "$f" .cc).o"' _ {} \
        g++ "${CXXFLAGS_ADDON[@]}" > "$VDIR/addon-build.log" 2>&1 \
    || { tail -30 "$VDIR/addon-build.log" >&2; die "compiling the addon failed (log: $VDIR/addon-build.log)"; }
  SODIUM_LIBDIR=$(pkg-config --variable=libdir libsodium)
  rm -rf "$OUT_PKG"
  mkdir -p "$OUT_PKG/build/$(dirname "$ADDON_REL")"
  LINK_COMMON=(-shared -o "$OUT_ADDON" "$OBJ_DIR"/*.o "$PREFIX/lib/libzmq.a")
  # libsodium: statically when Debian's archive allows it (self-contained addon), else shared.
  if [ -f "$SODIUM_LIBDIR/libsodium.a" ] \
     && g++ "${LINK_COMMON[@]}" "$SODIUM_LIBDIR/libsodium.a" -lpthread -Wl,--exclude-libs,ALL >> "$VDIR/addon-build.log" 2>&1; then
    SODIUM_LINK="static ($SODIUM_LIBDIR/libsodium.a)"
  else
    g++ "${LINK_COMMON[@]}" -lsodium -lpthread -Wl,--exclude-libs,ALL >> "$VDIR/addon-build.log" 2>&1 \
      || { tail -30 "$VDIR/addon-build.log" >&2; die "linking the addon failed (log: $VDIR/addon-build.log)"; }
    SODIUM_LINK="shared (libsodium.so from $SODIUM_LIBDIR)"
  fi
  if ldd "$OUT_ADDON" | grep -q 'not found'; then
    ldd "$OUT_ADDON" >&2; die "the addon links a library this system cannot find"
  fi
  ldd "$OUT_ADDON" | grep -q 'libzmq' && die "the addon links a shared libzmq; it must use the patched static one"

  # ------------------------------------------------------------ a self-contained package copy
  # node_modules/zeromq without its prebuilt addons, plus cmake-ts (its addon loader),
  # so that requiring $OUT_PKG never touches the project's node_modules.
  (cd "$PKG_SRC" && tar --exclude=./build -cf - .) | (cd "$OUT_PKG" && tar -xf -)
  CMAKE_TS_SRC=$(node -p 'require("path").resolve(require.resolve("cmake-ts/build/loader", { paths: [process.argv[1]] }), "../..")' "$PKG_SRC")
  rm -rf "$VDIR/node_modules/cmake-ts"; mkdir -p "$VDIR/node_modules/cmake-ts"
  (cd "$CMAKE_TS_SRC" && tar -cf - package.json build) | (cd "$VDIR/node_modules/cmake-ts" && tar -xf -)
  node -e 'require("fs").writeFileSync(process.argv[2], JSON.stringify(JSON.parse(process.argv[1]).manifest))' \
    "$PLATFORM" "$OUT_PKG/build/manifest.json"

  got=$(zmq_version_of "$OUT_PKG") || die "the new addon does not load: node -e \"require('$OUT_PKG')\""
  node -e '
    const zmq = require(process.argv[1]);
    if (!zmq.capability.curve || !zmq.capability.draft) { console.error("capabilities:", zmq.capability); process.exit(1); }
    const r = new zmq.Router(); r.close();' "$OUT_PKG" || die "the new addon lacks CURVE or draft support"
  {
    echo "build: $BUILD_LABEL"
    echo "cache-key: $CACHE_KEY"
    echo "source: $SRC_PACKAGE $DEB_VERSION via apt-get source ($SRC_DIR/$DSC_NAME)"
    echo "patch: $([ "$APPLY_PATCH" = 1 ] && echo "$PATCH_FILE sha256 $PATCH_SHA" || echo none)"
    echo "zmq.version: $got"
    echo "zeromq.js: $ZEROMQ_JS_VERSION (sources from $PKG_SRC/src)"
    echo "libsodium: $SODIUM_LINK"
    echo "addon: $OUT_ADDON"
    echo "built: $(date -u +%Y-%m-%dT%H:%M:%SZ) in $(( $(date +%s) - start )) s"
  } > "$VDIR/BUILD-INFO"
  log "built $OUT_ADDON in $(( $(date +%s) - start )) s"
fi
cat "$VDIR/BUILD-INFO" >&2

[ "$ACTION" = install ] || { log "package with the $VARIANT addon: $OUT_PKG (node_modules untouched; --install switches to it)"; exit 0; }

# ---------------------------------------------------------------- install into node_modules/zeromq
BUILD="$PKG_SRC/build"
[ -f "$BUILD/manifest.json" ] || die "$BUILD/manifest.json is missing: is $PKG_SRC a zeromq 6 package?"
# The stock manifest is backed up once: a second --install (or one that failed half-way) keeps it.
if [ ! -f "$BUILD/$BACKUP_NAME" ]; then
  manifest_is_ours "$BUILD/manifest.json" \
    && die "$BUILD/manifest.json is ours but the stock backup $BACKUP_NAME is gone: run 'npm ci' to reinstall zeromq"
  cp -p "$BUILD/manifest.json" "$BUILD/$BACKUP_NAME"
fi
mkdir -p "$BUILD/$(dirname "$ADDON_REL")"
cp "$OUT_ADDON" "$BUILD/$ADDON_REL.tmp" && mv -f "$BUILD/$ADDON_REL.tmp" "$BUILD/$ADDON_REL"
node -e '
  const fs = require("fs");
  const info = Object.fromEntries(fs.readFileSync(process.argv[2], "utf8").trim().split("\n")
    .map((l) => [l.slice(0, l.indexOf(":")), l.slice(l.indexOf(":") + 1).trim()]));
  fs.writeFileSync(process.argv[1], JSON.stringify({ rel: process.argv[3], backup: process.argv[4], ...info }, null, 2) + "\n");
' "$BUILD/$MARKER_NAME" "$VDIR/BUILD-INFO" "$ADDON_REL" "$BACKUP_NAME"
cp "$OUT_PKG/build/manifest.json" "$BUILD/manifest.json.tmp" && mv -f "$BUILD/manifest.json.tmp" "$BUILD/manifest.json"
log "installed: $PKG_SRC now loads $BUILD/$ADDON_REL (zmq.version $(zmq_version_of "$PKG_SRC")); undo with --uninstall"
