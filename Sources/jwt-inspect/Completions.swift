/// Shell completion scripts for jwt-inspect (`--generate-completion-script bash|zsh|fish`):
/// options, the values the closed ones accept, files for the key options and directories
/// for `--keys-dir`. `make install` puts them where each shell looks.
enum Completions {
    enum Shell: String, CaseIterable {
        case bash, zsh, fish
    }

    static func script(for shell: Shell) -> String {
        switch shell {
        case .bash: bash
        case .zsh: zsh
        case .fish: fish
        }
    }

    static let policies = "1h 24h 30d auto"
    static let algorithms = "ES256 ES384 EdDSA RS256 PS256 HS256"

    static let bash = """
        # bash completion for jwt-inspect
        _jwt_inspect() {
            local cur prev
            COMPREPLY=()
            cur="${COMP_WORDS[COMP_CWORD]}"
            prev="${COMP_WORDS[COMP_CWORD-1]}"
            local IFS=$'\\n'
            case "$prev" in
                --key|--jwks|--secret-file)
                    compopt -o filenames 2>/dev/null
                    COMPREPLY=($(compgen -f -- "$cur"))
                    return 0
                    ;;
                --keys-dir)
                    compopt -o filenames 2>/dev/null
                    COMPREPLY=($(compgen -d -- "$cur"))
                    return 0
                    ;;
                --policy)
                    COMPREPLY=($(IFS=' ' compgen -W "\(policies)" -- "$cur"))
                    return 0
                    ;;
                --alg)
                    COMPREPLY=($(IFS=' ' compgen -W "\(algorithms)" -- "$cur"))
                    return 0
                    ;;
                --generate-completion-script)
                    COMPREPLY=($(IFS=' ' compgen -W "bash zsh fish" -- "$cur"))
                    return 0
                    ;;
                --now|--leeway|--iss|--aud|--typ)
                    return 0
                    ;;
            esac
            if [[ "$cur" == -* ]]; then
                COMPREPLY=($(IFS=' ' compgen -W "--policy --key --jwks --keys-dir --secret-file --alg --now --leeway --iss --aud --typ --json --quiet -q --generate-completion-script --version --help -h" -- "$cur"))
            fi
            return 0
        }
        complete -F _jwt_inspect jwt-inspect

        """

    static let zsh = """
        #compdef jwt-inspect
        # zsh completion for jwt-inspect

        _jwt-inspect() {
            _arguments -s -S \\
                '--policy[lifetime policy to check: 1h, 24h, 30d, auto, or a duration like 15m]:policy:(\(policies))' \\
                '*--key[PEM public key, certificate, private key, or JWK file]:file:_files' \\
                '*--jwks[JWK Set file (e.g. a saved jwks.json)]:file:_files' \\
                '--keys-dir[tokend key directory (keyring.json and <kid>.pem)]:dir:_files -/' \\
                '--secret-file[HS256 shared secret file]:file:_files' \\
                '--alg[algorithm of the key files, for an RSA key used with PS256]:alg:(\(algorithms))' \\
                '--now[check as of this time: ISO 8601 or epoch seconds]:time:' \\
                '--leeway[clock skew allowed on exp, nbf and iat]:duration:' \\
                '--iss[required issuer]:issuer:' \\
                '--aud[required audience]:audience:' \\
                '--typ[required typ, e.g. at+jwt]:type:' \\
                '(-q --quiet)--json[print one JSON object instead of text]' \\
                '(-q --quiet --json)'{-q,--quiet}'[print nothing; only the exit code tells]' \\
                '--generate-completion-script[print a completion script]:shell:(bash zsh fish)' \\
                '(- *)--version[show the version]' \\
                '(- *)'{-h,--help}'[show help information]' \\
                ':token: '
        }

        _jwt-inspect "$@"

        """

    static let fish = """
        # fish completion for jwt-inspect
        complete -c jwt-inspect -f
        complete -c jwt-inspect -l 'policy' -x -a '\(policies)' -d 'Lifetime policy to check'
        complete -c jwt-inspect -l 'key' -r -F -d 'PEM public key, certificate, private key, or JWK file'
        complete -c jwt-inspect -l 'jwks' -r -F -d 'JWK Set file'
        complete -c jwt-inspect -l 'keys-dir' -x -a '(__fish_complete_directories)' -d 'tokend key directory'
        complete -c jwt-inspect -l 'secret-file' -r -F -d 'HS256 shared secret file'
        complete -c jwt-inspect -l 'alg' -x -a '\(algorithms)' -d 'Algorithm of the --key files'
        complete -c jwt-inspect -l 'now' -x -d 'Check as of this time (ISO 8601 or epoch seconds)'
        complete -c jwt-inspect -l 'leeway' -x -d 'Clock skew allowed on exp, nbf and iat'
        complete -c jwt-inspect -l 'iss' -x -d 'Required issuer'
        complete -c jwt-inspect -l 'aud' -x -d 'Required audience'
        complete -c jwt-inspect -l 'typ' -x -d 'Required typ'
        complete -c jwt-inspect -l 'json' -d 'Print one JSON object instead of text'
        complete -c jwt-inspect -s 'q' -l 'quiet' -d 'Print nothing; only the exit code tells'
        complete -c jwt-inspect -l 'generate-completion-script' -x -a 'bash zsh fish' -d 'Print a completion script'
        complete -c jwt-inspect -l 'version' -d 'Show the version'
        complete -c jwt-inspect -s 'h' -l 'help' -d 'Show help information'

        """
}
