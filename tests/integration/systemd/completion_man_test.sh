#!/bin/bash
# `cmake --install` puts the man pages and the bash and zsh completion of claimctl, claimfsd and
# claimfs where man, bash-completion and zsh look; every page renders without a warning, and the
# installed bash completion completes claimctl's commands, types, flags and object names.
# Usage: completion_man_test.sh CMAKE BUILD_DIR VERSION
set -u
cmake=$1
build=$2
version=$3

fail() { echo "FAIL: $*" >&2; exit 1; }
tmp=$(mktemp -d /tmp/claimfs-completion.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

prefix=$tmp/prefix
"$cmake" --install "$build" --prefix "$prefix" >"$tmp/log" 2>&1 || { cat "$tmp/log"; fail "cmake --install failed"; }

# Manual pages: installed, rendered by man -l with no groff warning, named and versioned.
for page in man1/claimctl.1.gz man8/claimfsd.8.gz man8/claimfs.8.gz; do
  file=$prefix/share/man/$page
  [[ -f "$file" ]] || fail "missing man page $file"
  grep -q "^$file\$" "$build/install_manifest.txt" || fail "$file missing from install_manifest.txt"
  name=$(basename "$page" .gz); name=${name%.*}
  # Debian policy: gzip -9n, so no file name or time stamp inside (byte 3 flags, bytes 4-7 mtime).
  [[ "$(head -c 8 "$file" | od -An -tx1 | tr -d ' \n')" == 1f8b080000000000 ]] ||
    fail "$file is not gzip -n (flags or time stamp set)"
  LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -l "$file" >"$tmp/page" 2>"$tmp/warnings" ||
    { cat "$tmp/warnings"; fail "man -l $file failed"; }
  [[ ! -s "$tmp/warnings" ]] || { cat "$tmp/warnings"; fail "man -l $file warns"; }
  grep -q "^NAME" "$tmp/page" && grep -Eq "^ +$name +- " "$tmp/page" ||
    { cat "$tmp/page"; fail "$page has no NAME section for $name"; }
  grep -q "^SYNOPSIS" "$tmp/page" || fail "$page has no SYNOPSIS"
  grep -q "claimfs $version" "$tmp/page" || fail "$page does not carry the version $version"
done

# Completion files.
for program in claimctl claimfsd claimfs; do
  [[ -f "$prefix/share/bash-completion/completions/$program" ]] || fail "no bash completion for $program"
  [[ -f "$prefix/share/zsh/site-functions/_$program" ]] || fail "no zsh completion for $program"
  head -1 "$prefix/share/zsh/site-functions/_$program" | grep -qx "#compdef $program" ||
    fail "_$program does not start with #compdef $program"
done

# bash: load the installed script in a clean shell and complete as readline would. A stand-in
# claimctl on PATH answers `get TYPE -o name` the way the real one does with a daemon.
mkdir "$tmp/bin"
cat >"$tmp/bin/claimctl" <<'STUB'
#!/bin/bash
[[ " $* " == *" get pvc -o name "* ]] && printf 'persistentvolumeclaim/data\npersistentvolumeclaim/logs\n'
[[ " $* " == *" get pv -o name "* ]] && printf 'persistentvolume/pv-hostpath\n'
exit 0
STUB
chmod +x "$tmp/bin/claimctl"
complete_line() {  # complete_line PROGRAM WORD... (the last word is the one being completed)
  PATH="$tmp/bin:$PATH" bash --norc --noprofile -c '
    source "$1" || exit 3
    shift
    COMP_WORDS=("$@")
    COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
    COMP_LINE="$*"
    COMP_POINT=${#COMP_LINE}
    fn=$(complete -p "$1" | sed -n "s/.*-F \([^ ]*\) .*/\1/p")
    [[ -n $fn ]] || exit 4
    "$fn" "$1" "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
    printf "%s\n" "${COMPREPLY[@]}" | sort | tr "\n" " "
  ' bash "$prefix/share/bash-completion/completions/$1" "$@"
}
expect() {  # expect "WANTED WORDS " PROGRAM WORD...
  local want=$1
  shift
  local got
  got=$(complete_line "$@") || fail "completion of '$*' failed (exit $?)"
  [[ "$got" == "$want" ]] || fail "'$* <TAB>' completes to '$got', not '$want'"
}
expect "persistentvolumeclaims persistentvolumes pv pvc " claimctl get p
expect "apply delete describe df get kubeconfig patch use version wait " claimctl ""
expect "delete describe df " claimctl d
expect "data logs " claimctl get pvc ""
expect "data " claimctl -n default describe pvc d
expect "pv/pv-hostpath " claimctl delete pv/
expect "data logs " claimctl use ""
expect "strategic " claimctl patch pvc data --type s
expect "yaml " claimctl get pv -o y
expect "--all-namespaces " claimctl get --al
expect "--all " claimctl delete --al
expect "truncate " claimctl use data -- trunc
expect "--namespace " claimctl --na
expect "--data-dir " claimfsd --d
expect "debug " claimfsd --log-level deb
expect "capacity= " claimfs -o cap
expect "ro,capacity= " claimfs -o ro,cap

# zsh, where it is installed: the files parse and compinit binds them to the programs.
if command -v zsh >/dev/null; then
  for program in claimctl claimfsd claimfs; do
    zsh -n "$prefix/share/zsh/site-functions/_$program" || fail "_$program does not parse in zsh"
  done
  bound=$(zsh -f -c 'fpath=("$1" $fpath); autoload -Uz compinit; compinit -u -d "$2/zcompdump";
                     print -r -- $_comps[claimctl] $_comps[claimfsd] $_comps[claimfs]' \
          zsh "$prefix/share/zsh/site-functions" "$tmp")
  [[ "$bound" == "_claimctl _claimfsd _claimfs" ]] || fail "zsh binds: '$bound'"
else
  echo "zsh not installed: zsh completion only checked for presence"
fi

# The Debian prefix /usr puts zsh's files in vendor-completions, which Debian's zsh searches.
root=$tmp/root
DESTDIR=$root "$cmake" --install "$build" --prefix /usr >"$tmp/log" 2>&1 || { cat "$tmp/log"; fail "DESTDIR install to /usr failed"; }
[[ -f "$root/usr/share/zsh/vendor-completions/_claimctl" ]] || fail "zsh completion not in /usr/share/zsh/vendor-completions"
[[ -f "$root/usr/share/man/man1/claimctl.1.gz" ]] || fail "man page not in /usr/share/man/man1"
echo "PASS"
