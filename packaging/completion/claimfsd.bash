# bash completion for claimfsd; installed as <prefix>/share/bash-completion/completions/claimfsd.
_claimfsd() {
  local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD - 1]}
  case $prev in
    -c | --config)
      COMPREPLY=($(compgen -f -- "$cur"))
      return 0
      ;;
    --data-dir)
      COMPREPLY=($(compgen -d -- "$cur"))
      return 0
      ;;
    --kube-api)
      COMPREPLY=($(compgen -W "127.0.0.1:6443 127.0.0.1:0 off" -- "$cur"))
      return 0
      ;;
    --log-level)
      COMPREPLY=($(compgen -W "trace debug info warn error off" -- "$cur"))
      return 0
      ;;
  esac
  COMPREPLY=($(compgen -W "-c --config --data-dir --kube-api --log-level --version -h --help" -- "$cur"))
}

complete -F _claimfsd claimfsd
