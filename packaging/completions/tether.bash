# bash completion for tether(1): commands, their options, files for the
# options that take one. Installed as
# /usr/share/bash-completion/completions/tether. tests/completions.rs keeps
# it in step with `tether help`.

_tether() {
    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}
    case $prev in
        -c|--config|-o|--token-file)
            COMPREPLY=($(compgen -f -- "$cur"))
            return
            ;;
        -d|--conf-dir)
            COMPREPLY=($(compgen -d -- "$cur"))
            return
            ;;
        --check|--reason|--for)
            COMPREPLY=()
            return
            ;;
    esac
    # The command and its subcommand: the first words that are neither an
    # option nor an option's value.
    local i cmd='' sub=''
    for ((i = 1; i < COMP_CWORD; i++)); do
        case ${COMP_WORDS[i]} in
            -c|--config|-d|--conf-dir|-o|--token-file|--check|--reason|--for) ((i++)) ;;
            -*) ;;
            *)
                if [[ -z $cmd ]]; then
                    cmd=${COMP_WORDS[i]}
                elif [[ -z $sub ]]; then
                    sub=${COMP_WORDS[i]}
                fi
                ;;
        esac
    done
    local commands="run check status doctor bundle validate config enroll disable enable help version"
    local global="-c --config -d --conf-dir"
    local words
    case $cmd in
        '') words="$commands $global --version --help" ;;
        check) words="--check --json --table -v --help $global" ;;
        status) words="--json --history --help $global" ;;
        doctor) words="--json --help $global" ;;
        bundle) words="-o --help $global" ;;
        config)
            if [[ -z $sub ]]; then
                words="default effective"
            else
                words="--json --help $global"
            fi
            ;;
        enroll) words="--token-file --help $global" ;;
        disable) words="--reason --for --help $global" ;;
        help) words="$commands" ;;
        *) words="--help $global" ;;
    esac
    COMPREPLY=($(compgen -W "$words" -- "$cur"))
}
complete -F _tether tether
