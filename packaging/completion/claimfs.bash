# bash completion for claimfs (SOURCE MOUNTPOINT [-o OPTIONS]); installed as
# <prefix>/share/bash-completion/completions/claimfs.
_claimfs() {
  local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD - 1]}
  if [[ $prev == -o ]]; then
    local options="capacity= inodes= quota_errno=ENOSPC quota_errno=EDQUOT ro allow_other noexec
                   nosuid nodev noatime fsname= cache_timeout= threads="
    local done_part=
    [[ $cur == *,* ]] && done_part=${cur%,*},
    COMPREPLY=($(compgen -P "$done_part" -W "$options" -- "${cur##*,}"))
    compopt -o nospace 2>/dev/null
    return 0
  fi
  if [[ $cur == -* ]]; then
    COMPREPLY=($(compgen -W "-o -f --foreground -d --debug -V --version -h --help" -- "$cur"))
    return 0
  fi
  COMPREPLY=($(compgen -d -- "$cur"))
}

complete -F _claimfs claimfs
