package cli

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/ks-clean/ks-clean/internal/exitcode"
)

// completeFlag, as the last argument, asks for the words that may come next
// (urfave/cli's convention, which its fish script uses too).
const completeFlag = "--generate-bash-completion"

// complete answers a completion request itself, never running a command
// (urfave/cli would run one for some argument lists, apply included): the
// flags of the command typed so far when the word being completed is a
// flag, else the commands when none is typed yet.
func complete(a *cli.App, args []string, w io.Writer) {
	cur := ""
	if n := len(args); n > 1 {
		cur = args[n-1]
	}
	cmd := a.Command(commandOf(args))
	switch {
	case strings.HasPrefix(cur, "-"):
		flags := a.Flags
		if cmd != nil {
			flags = cmd.Flags
		}
		for _, f := range flags {
			for _, n := range f.Names() {
				if len(n) > 1 {
					fmt.Fprintln(w, "--"+n)
				}
			}
		}
	case cmd == nil:
		for _, c := range a.Commands {
			if !c.Hidden {
				fmt.Fprintln(w, c.Name)
			}
		}
	}
}

// The scripts ask ks-clean itself what may follow the words typed so far,
// so they never go stale; anything else (a plan file) completes as a file
// name.
const bashCompletion = `# bash completion for ks-clean (and the kubectl plugin kubectl-ks_clean)
_ks_clean_complete() {
  local cur="${COMP_WORDS[COMP_CWORD]}" words
  words=("${COMP_WORDS[@]:0:COMP_CWORD}")
  [[ "${words[0]}" == kubectl ]] && words=(kubectl-ks_clean "${words[@]:2}")
  local opts
  if [[ "$cur" == -* ]]; then
    opts=$("${words[@]}" -- --generate-bash-completion 2>/dev/null)
  else
    opts=$("${words[@]}" --generate-bash-completion 2>/dev/null)
  fi
  COMPREPLY=($(compgen -W "$opts" -- "$cur"))
}
complete -o default -o bashdefault -F _ks_clean_complete ks-clean kubectl-ks_clean
`

const zshCompletion = `#compdef ks-clean kubectl-ks_clean
# zsh completion for ks-clean
_ks_clean() {
  local -a opts
  local cur=${words[-1]}
  if [[ "$cur" == -* ]]; then
    opts=("${(@f)$(${words[@]:0:#words[@]-1} -- --generate-bash-completion 2>/dev/null)}")
  else
    opts=("${(@f)$(${words[@]:0:#words[@]-1} --generate-bash-completion 2>/dev/null)}")
  fi
  if [[ -n "${opts[1]}" ]]; then
    _describe 'values' opts
  else
    _files
  fi
}
if [[ "$funcstack[1]" == "_ks_clean" ]]; then
  _ks_clean "$@"
else
  compdef _ks_clean ks-clean kubectl-ks_clean
fi
`

func completionCommand() *cli.Command {
	return &cli.Command{
		Name:      "completion",
		Usage:     "print the shell completion script for bash, zsh or fish",
		ArgsUsage: "bash|zsh|fish",
		Description: `Examples:
   # bash, this shell only; add the line to ~/.bashrc to keep it
   source <(ks-clean completion bash)

   # zsh (a directory on $fpath)
   ks-clean completion zsh > "${fpath[1]}/_ks-clean"

   # fish
   ks-clean completion fish > ~/.config/fish/completions/ks-clean.fish`,
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return exitcode.New(exitcode.Usage, errors.New("completion takes one argument, the shell: ks-clean completion bash|zsh|fish"))
			}
			var script string
			switch shell := c.Args().First(); shell {
			case "bash":
				script = bashCompletion
			case "zsh":
				script = zshCompletion
			case "fish":
				s, err := c.App.ToFishCompletion()
				if err != nil {
					return err
				}
				script = s
			default:
				return exitcode.New(exitcode.Usage, fmt.Errorf("completion %q: use bash, zsh or fish", shell))
			}
			_, err := fmt.Fprint(c.App.Writer, script)
			return err
		},
	}
}
