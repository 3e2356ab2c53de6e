# bash completion for claimctl: subcommands, their flags, resource types, and the names of the
# objects the running claimfsd holds (through `claimctl get TYPE -o name`). Needs no
# bash-completion package; installed as <prefix>/share/bash-completion/completions/claimctl.

_claimctl_types() {
  local with_all=$1
  local types="pv pvc sc persistentvolumes persistentvolumeclaims storageclasses"
  [[ $with_all == yes ]] && types+=" all"
  echo "$types"
}

# Object names of TYPE, from the daemon; nothing when it does not answer.
_claimctl_names() {
  local type=$1
  shift
  [[ $type == all ]] && return
  "${COMP_WORDS[0]}" "$@" get "$type" -o name 2>/dev/null | sed 's|^[^/]*/||'
}

_claimctl() {
  local cur=${COMP_WORDS[COMP_CWORD]}
  local prev=
  ((COMP_CWORD > 0)) && prev=${COMP_WORDS[COMP_CWORD - 1]}
  local subcommands="apply get describe delete patch wait use df kubeconfig version"
  local globals="--socket -n --namespace -h --help --version"

  # The subcommand, the global options to pass on to name look-ups, and the positional
  # arguments before the word being completed.
  local command= i word
  local -a global_args=() positional=()
  for ((i = 1; i < COMP_CWORD; i++)); do
    word=${COMP_WORDS[i]}
    case $word in
      --)
        # use CLAIM -- COMMAND ARGS...: a command name, then files.
        if [[ $command == use ]]; then
          if ((i == COMP_CWORD - 1)); then
            COMPREPLY=($(compgen -c -- "$cur" | sort -u))
          else
            COMPREPLY=($(compgen -f -- "$cur"))
          fi
          return 0
        fi
        ;;
      --socket | -n | --namespace)
        global_args+=("$word" "${COMP_WORDS[i + 1]}")
        ((i++))
        ;;
      --socket=* | --namespace=* | -n=*) global_args+=("$word") ;;
      -o | --output | -f | --filename | -l | --selector | -p | --patch | --type | --dry-run | \
        --for | --timeout)
        ((i++))
        ;;
      -*) ;;
      *)
        if [[ -z $command ]]; then
          command=$word
        else
          positional+=("$word")
        fi
        ;;
    esac
  done

  case $prev in
    --socket | -f | --filename)
      COMPREPLY=($(compgen -f -- "$cur"))
      return 0
      ;;
    -n | --namespace)
      COMPREPLY=($(compgen -W "default $("${COMP_WORDS[0]}" "${global_args[@]}" get pvc -A \
        -o 'jsonpath={.items[*].metadata.namespace}' 2>/dev/null)" -- "$cur"))
      return 0
      ;;
    -o | --output)
      case $command in
        apply) COMPREPLY=($(compgen -W "yaml json name" -- "$cur")) ;;
        *) COMPREPLY=($(compgen -W "wide yaml json name jsonpath=" -- "$cur")) ;;
      esac
      return 0
      ;;
    --type)
      COMPREPLY=($(compgen -W "strategic merge json" -- "$cur"))
      return 0
      ;;
    --dry-run)
      case $command in
        patch) COMPREPLY=($(compgen -W "none server" -- "$cur")) ;;
        *) COMPREPLY=($(compgen -W "none client server" -- "$cur")) ;;
      esac
      return 0
      ;;
    --for)
      COMPREPLY=($(compgen -W "delete condition= jsonpath=" -- "$cur"))
      return 0
      ;;
    -l | --selector | -p | --patch | --timeout)
      return 0
      ;;
  esac

  if [[ -z $command ]]; then
    if [[ $cur == -* ]]; then
      COMPREPLY=($(compgen -W "$globals" -- "$cur"))
    else
      COMPREPLY=($(compgen -W "$subcommands" -- "$cur"))
    fi
    return 0
  fi

  local flags=
  case $command in
    apply) flags="-f --filename --dry-run -o --output" ;;
    get) flags="-o --output -A --all-namespaces -l --selector --no-headers" ;;
    describe) flags="-A --all-namespaces -l --selector" ;;
    delete) flags="-f --filename --all --wait --timeout --ignore-not-found" ;;
    patch) flags="-p --patch --type --dry-run" ;;
    wait) flags="--for --timeout" ;;
    df) flags="-A --all-namespaces --bytes" ;;
  esac
  if [[ $cur == -* ]]; then
    COMPREPLY=($(compgen -W "$flags -h --help" -- "$cur"))
    return 0
  fi

  case $command in
    get | describe | delete | patch | wait)
      if ((${#positional[@]} == 0)); then
        if [[ $cur == */* ]]; then
          local type=${cur%%/*}
          COMPREPLY=($(compgen -P "$type/" -W "$(_claimctl_names "$type" "${global_args[@]}")" \
            -- "${cur#*/}"))
        else
          local with_all=no
          [[ $command == get ]] && with_all=yes
          COMPREPLY=($(compgen -W "$(_claimctl_types $with_all)" -- "$cur"))
        fi
      elif [[ ${positional[0]} != */* ]]; then
        COMPREPLY=($(compgen -W "$(_claimctl_names "${positional[0]}" "${global_args[@]}")" \
          -- "$cur"))
      fi
      ;;
    use)
      if ((${#positional[@]} == 0)); then
        COMPREPLY=($(compgen -W "$(_claimctl_names pvc "${global_args[@]}")" -- "$cur"))
      else
        COMPREPLY=($(compgen -W "--" -- "$cur"))
      fi
      ;;
  esac
  return 0
}

complete -F _claimctl claimctl
