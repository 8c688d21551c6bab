package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
)

// completeCommand is the hidden command the completion script runs for
// server names and tags: `collector [--config FILE] __complete servers|tags`.
const completeCommand = "__complete"

func cmdCompletion(_ context.Context, e *env, args []string) error {
	fs := e.newFlagSet("completion", "Usage: collector completion bash|zsh\n\n"+
		"Print a shell completion script: commands, their flags, server names and tags\n"+
		"(read from the servers.toml that --config names, or the default). Install it with\n"+
		"  collector completion bash > /etc/bash_completion.d/collector\n"+
		"  collector completion zsh > \"${fpath[1]}/_collector\"\n"+
		"or load it in a shell: source <(collector completion bash)\n\n")
	shells, err := parseArgs(fs, args, 1, 1)
	if err != nil {
		return err
	}
	switch shells[0] {
	case "bash":
		return writeCompletion(e.stdout, false)
	case "zsh":
		return writeCompletion(e.stdout, true)
	}
	return usagef("completion: unknown shell %q: want bash or zsh", shells[0])
}

// commandFlags returns each command's flags, as the command itself defines
// them: each is run with -h against a discarding environment.
func commandFlags() map[string][]string {
	out := map[string][]string{}
	for _, c := range commands {
		var sets []*flag.FlagSet
		e := &env{stdout: io.Discard, stderr: io.Discard, getenv: func(string) string { return "" },
			flagSets: func(fs *flag.FlagSet) { sets = append(sets, fs) }}
		_ = c.run(context.Background(), e, []string{"-h"})
		var flags []string
		for _, fs := range sets {
			fs.VisitAll(func(f *flag.Flag) { flags = append(flags, "--"+f.Name) })
		}
		slices.Sort(flags)
		out[c.name] = slices.Compact(flags)
	}
	return out
}

// selectingCommands take server names as arguments.
var selectingCommands = []string{"once", "check", "collect", "trust", "status", "report", "silence"}

func writeCompletion(w io.Writer, zsh bool) error {
	var names []string
	for _, c := range commands {
		names = append(names, c.name)
	}
	flags := commandFlags()
	var cases strings.Builder
	for _, n := range names {
		if len(flags[n]) > 0 {
			fmt.Fprintf(&cases, "    %s) flags=%q ;;\n", n, strings.Join(flags[n], " "))
		}
	}
	var b strings.Builder
	if zsh {
		b.WriteString("#compdef collector\n# zsh completion for collector (the bash completion, through bashcompinit).\n" +
			"autoload -U +X bashcompinit && bashcompinit\n")
	} else {
		b.WriteString("# bash completion for collector: collector completion bash > /etc/bash_completion.d/collector\n")
	}
	fmt.Fprintf(&b, `_collector() {
  local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}
  local cmd="" cfg=() i flags=""
  for ((i = 1; i < COMP_CWORD; i++)); do
    case ${COMP_WORDS[i]} in
      --config) cfg=(--config "${COMP_WORDS[i+1]}"); ((i++)) ;;
      --log-level) ((i++)) ;;
      -*) ;;
      *) cmd=${COMP_WORDS[i]}; break ;;
    esac
  done
  if [[ -z $cmd ]]; then
    case $prev in
      --config) COMPREPLY=($(compgen -f -- "$cur")); return ;;
      --log-level) COMPREPLY=($(compgen -W "debug info warn error" -- "$cur")); return ;;
    esac
    COMPREPLY=($(compgen -W "%s --config --log-level" -- "$cur"))
    return
  fi
  case $prev in
    --tag) COMPREPLY=($(compgen -W "$("${COMP_WORDS[0]}" "${cfg[@]}" %s tags 2>/dev/null)" -- "$cur")); return ;;
    --out) COMPREPLY=($(compgen -f -- "$cur")); return ;;
    --format) COMPREPLY=($(compgen -W "html json" -- "$cur")); return ;;
  esac
  case $cmd in
%s  esac
  if [[ $cur == -* ]]; then
    COMPREPLY=($(compgen -W "$flags" -- "$cur"))
    return
  fi
  case $cmd in
    %s) COMPREPLY=($(compgen -W "$("${COMP_WORDS[0]}" "${cfg[@]}" %s servers 2>/dev/null)" -- "$cur")) ;;
    completion) COMPREPLY=($(compgen -W "bash zsh" -- "$cur")) ;;
    import) if [[ $prev == import ]]; then COMPREPLY=($(compgen -W "ansible" -- "$cur")); else COMPREPLY=($(compgen -f -- "$cur")); fi ;;
    alerts) COMPREPLY=($(compgen -W "test" -- "$cur")) ;;
  esac
}
complete -F _collector collector
`, strings.Join(names, " "), completeCommand, cases.String(), strings.Join(selectingCommands, "|"), completeCommand)
	_, err := io.WriteString(w, b.String())
	return err
}

// runComplete prints the server names or tags of the inventory, one a line,
// for the completion script; it prints nothing when the inventory cannot
// be read.
func runComplete(e *env, args []string) error {
	if len(args) != 1 {
		return nil
	}
	inv, err := e.inventory()
	if err != nil {
		return nil
	}
	switch args[0] {
	case "servers":
		for _, s := range inv.Servers {
			fmt.Fprintln(e.stdout, s.Name)
		}
	case "tags":
		for _, t := range inv.Tags() {
			fmt.Fprintln(e.stdout, t)
		}
	}
	return nil
}
