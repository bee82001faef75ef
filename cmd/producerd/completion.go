package main

import (
	"fmt"
	"strings"
)

// The scripts complete command names from the list below and a command's flags from
// its own -h output at completion time, so they never fall out of date.
const bashCompletion = `# bash completion for producerd; load with: source <(producerd completion bash)
_producerd() {
  local cur=${COMP_WORDS[COMP_CWORD]}
  if [[ $COMP_CWORD -eq 1 ]]; then
    COMPREPLY=($(compgen -W "%s" -- "$cur"))
    return
  fi
  if [[ $cur == -* ]]; then
    local flags
    flags=$("${COMP_WORDS[0]}" "${COMP_WORDS[1]}" -h 2>/dev/null | sed -n 's/^  \(-[A-Za-z0-9-]*\).*/\1/p')
    COMPREPLY=($(compgen -W "$flags" -- "$cur"))
    return
  fi
  COMPREPLY=($(compgen -f -- "$cur"))
}
complete -o filenames -F _producerd producerd
`

const zshCompletion = `#compdef producerd
# zsh completion for producerd; load with: source <(producerd completion zsh)
# (or save it as _producerd in a directory of $fpath)
_producerd() {
  if (( CURRENT == 2 )); then
    compadd -- %s
    return
  fi
  if [[ $PREFIX == -* ]]; then
    compadd -- ${(f)"$(${words[1]} ${words[2]} -h 2>/dev/null | sed -n 's/^  \(-[A-Za-z0-9-]*\).*/\1/p')"}
    return
  fi
  _files
}
if (( $+functions[compdef] )); then compdef _producerd producerd; fi
`

func cmdCompletion(e *env, args []string) int {
	fs := newFlags(e, "completion", "bash | zsh", `
Print a shell completion script for producerd: command names, each command's flags and
file names.`,
		`  producerd completion bash > /etc/bash_completion.d/producerd
  source <(producerd completion bash)
  producerd completion zsh > "${fpath[1]}/_producerd"`)
	pos, code, ok := parse(fs, args)
	if !ok {
		return code
	}
	if len(pos) != 1 {
		return usageError(fs, "want one shell: bash or zsh")
	}
	var names []string
	for _, c := range commands() {
		if !c.hidden {
			names = append(names, c.name)
		}
	}
	names = append(names, "help")
	switch pos[0] {
	case "bash":
		fmt.Fprintf(e.stdout, bashCompletion, strings.Join(names, " "))
	case "zsh":
		fmt.Fprintf(e.stdout, zshCompletion, strings.Join(names, " "))
	default:
		return usageError(fs, "unknown shell %q: want bash or zsh", pos[0])
	}
	return 0
}
