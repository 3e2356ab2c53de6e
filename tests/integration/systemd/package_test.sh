#!/bin/bash
# `cpack -G DEB` builds claimfs_<version>_<arch>.deb: programs in /usr/bin, the unit in
# /usr/lib/systemd/system running /usr/bin/claimfsd, /etc/claimfs/claimfsd.yaml as a conffile,
# library dependencies from dpkg-shlibdeps, and a postinst that reloads systemd only when it
# runs. Built in a temporary directory, so it does not race a package built by hand.
# Usage: package_test.sh CPACK BUILD_DIR VERSION PROGRAM...
set -u
cpack=$1
build=$2
version=$3
shift 3
programs=("$@")

fail() { echo "FAIL: $*" >&2; exit 1; }
tmp=$(mktemp -d /tmp/claimfs-deb.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

(cd "$build" && "$cpack" -G DEB -B "$tmp" --config "$build/CPackConfig.cmake") >"$tmp/log" 2>&1 ||
  { cat "$tmp/log"; fail "cpack -G DEB failed"; }
arch=$(dpkg --print-architecture)
deb=$tmp/claimfs_${version}_${arch}.deb
[[ -f "$deb" ]] || { ls "$tmp"; fail "no $deb"; }

dpkg-deb -c "$deb" | awk '{print $6}' >"$tmp/files"
for f in ./etc/claimfs/claimfsd.yaml ./usr/lib/systemd/system/claimfsd.service \
         ./usr/share/doc/claimfs/README.md ./usr/share/man/man1/claimctl.1.gz \
         ./usr/share/man/man8/claimfsd.8.gz ./usr/share/man/man8/claimfs.8.gz \
         ./usr/share/bash-completion/completions/claimctl \
         ./usr/share/bash-completion/completions/claimfsd \
         ./usr/share/bash-completion/completions/claimfs \
         ./usr/share/zsh/vendor-completions/_claimctl ./usr/share/zsh/vendor-completions/_claimfsd \
         ./usr/share/zsh/vendor-completions/_claimfs; do
  grep -qx "$f" "$tmp/files" || { cat "$tmp/files"; fail "$f not in the package"; }
done
for p in "${programs[@]}"; do
  grep -qx "./usr/bin/$p" "$tmp/files" || { cat "$tmp/files"; fail "/usr/bin/$p not in the package"; }
done

dpkg-deb -I "$deb" >"$tmp/info"
field() { sed -n "s/^ $1: //p" "$tmp/info"; }
[[ $(field Package) == claimfs ]] || fail "Package: $(field Package)"
[[ $(field Version) == "$version" ]] || fail "Version: $(field Version)"
[[ $(field Section) == admin ]] || fail "Section: $(field Section)"
[[ -n $(field Maintainer) ]] || fail "no Maintainer"
[[ -n $(field Description) ]] || fail "no Description"
depends=$(field Depends)
[[ "$depends" == *fuse3* ]] || fail "Depends lacks fuse3: $depends"
if [[ " ${programs[*]} " == *" claimfs "* ]]; then
  # dpkg-shlibdeps found the libraries the programs link.
  [[ "$depends" == *libfuse3-* && "$depends" == *libc6* ]] || fail "Depends lacks shared libraries: $depends"
fi

dpkg-deb -e "$deb" "$tmp/control"
[[ "$(cat "$tmp/control/conffiles")" == /etc/claimfs/claimfsd.yaml ]] || fail "conffiles: $(cat "$tmp/control/conffiles")"
[[ -x "$tmp/control/postinst" ]] || fail "no executable postinst"
grep -q 'if \[ "$1" = "configure" \] && \[ -d /run/systemd/system \]' "$tmp/control/postinst" ||
  fail "postinst does not check that systemd runs"

dpkg-deb -x "$deb" "$tmp/root"
grep -qx "ExecStart=/usr/bin/claimfsd --config /etc/claimfs/claimfsd.yaml" \
  "$tmp/root/usr/lib/systemd/system/claimfsd.service" ||
  fail "packaged unit: $(grep ^ExecStart= "$tmp/root/usr/lib/systemd/system/claimfsd.service")"
echo "PASS: $deb"
echo "$depends"
