#!/bin/bash
# `cmake --install` puts every file where it belongs, with the unit's paths following the prefix
# installed to, and never replaces an edited config.
# Usage: install_test.sh CMAKE BUILD_DIR SOURCE_DIR PROGRAM...
set -u
cmake=$1
build=$2
src=$3
shift 3
programs=("$@")

fail() { echo "FAIL: $*" >&2; exit 1; }
tmp=$(mktemp -d /tmp/claimfs-install.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

etc_existed=no
[[ -e /etc/claimfs ]] && etc_existed=yes

# 1. A prefix of its own: everything under it, the config in PREFIX/etc/claimfs.
prefix=$tmp/prefix
"$cmake" --install "$build" --prefix "$prefix" >"$tmp/log" 2>&1 || { cat "$tmp/log"; fail "cmake --install --prefix failed"; }
for p in "${programs[@]}"; do
  [[ -x "$prefix/bin/$p" ]] || fail "missing program $prefix/bin/$p"
done
unit=$prefix/lib/systemd/system/claimfsd.service
config=$prefix/etc/claimfs/claimfsd.yaml
[[ -f "$unit" ]] || fail "missing unit $unit"
grep -qx "ExecStart=$prefix/bin/claimfsd --config $config" "$unit" ||
  fail "ExecStart= does not follow the prefix: $(grep ^ExecStart= "$unit")"
cmp -s "$config" "$src/config/claimfsd.yaml" || fail "config not installed as shipped: $config"
[[ -f "$prefix/share/doc/claimfs/README.md" ]] || fail "README.md not in share/doc/claimfs"
[[ -f "$prefix/share/doc/claimfs/examples/pvc-dynamic.yaml" ]] || fail "examples not in share/doc/claimfs"
[[ $(stat -c %a "$unit") == 644 && $(stat -c %a "$config") == 644 ]] || fail "unit or config mode is not 0644"
grep -q "^$config\$" "$build/install_manifest.txt" || fail "$config missing from install_manifest.txt"
[[ $etc_existed == no && -e /etc/claimfs ]] && fail "an install to $prefix wrote to /etc/claimfs"

# 2. Again, after the administrator edited the config: kept, the default goes next to it.
echo "maxVolumes: 7" >>"$config"
edited=$(cat "$config")
"$cmake" --install "$build" --prefix "$prefix" >"$tmp/log" 2>&1 || { cat "$tmp/log"; fail "second install failed"; }
[[ "$(cat "$config")" == "$edited" ]] || fail "an edited config was overwritten"
cmp -s "$config.default" "$src/config/claimfsd.yaml" || fail "no claimfsd.yaml.default next to the edited config"
grep -q "Keeping the edited $config" "$tmp/log" || fail "the install did not say it kept the config"

# 3. The system prefix /usr/local, staged with DESTDIR: the unit where systemd looks for an
# administrator's units, the config in /etc/claimfs.
root=$tmp/root
DESTDIR=$root "$cmake" --install "$build" --prefix /usr/local >"$tmp/log" 2>&1 || { cat "$tmp/log"; fail "DESTDIR install failed"; }
unit=$root/usr/local/lib/systemd/system/claimfsd.service
[[ -f "$root/etc/claimfs/claimfsd.yaml" ]] || fail "config not in DESTDIR/etc/claimfs"
grep -qx "ExecStart=/usr/local/bin/claimfsd --config /etc/claimfs/claimfsd.yaml" "$unit" ||
  fail "unexpected ExecStart= for /usr/local: $(grep ^ExecStart= "$unit")"
for p in "${programs[@]}"; do
  [[ -x "$root/usr/local/bin/$p" ]] || fail "missing program $root/usr/local/bin/$p"
done
echo "PASS"
