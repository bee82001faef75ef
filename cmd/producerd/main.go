// Command producerd is a RocketMQ producer daemon: applications hand it messages over
// gRPC or HTTP/JSON and it sends them to RocketMQ brokers, with queue-selection
// strategies running as plugins that can be swapped while traffic flows.
//
// Run `producerd help` for the commands and `producerd COMMAND -h` for each one's
// flags and examples.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strings"
)

// version is set at build time with -ldflags "-X main.version=v1.2.3"; otherwise the
// module version from the build info is used.
var version = ""

func versionString() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

// env is what a command may touch: its standard streams.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
}

type command struct {
	name    string
	summary string
	run     func(e *env, args []string) int
	hidden  bool
}

func commands() []command {
	return []command{
		{name: "run", summary: "run the daemon with a config file", run: cmdRun},
		{name: "validate", summary: "check a config file without starting anything", run: cmdValidate},
		{name: "send", summary: "send one message through a running daemon (gRPC)", run: cmdSend},
		{name: "bench", summary: "drive a running daemon with load and report msgs/s and latency", run: cmdBench},
		{name: "status", summary: "show a running daemon's status", run: cmdStatus},
		{name: "strategy", summary: "list strategies or swap the active one (list | swap NAME)", run: cmdStrategy},
		{name: "topic", summary: "create a topic (create NAME), through the daemon or directly", run: cmdTopic},
		{name: "reload", summary: "make a running daemon re-read its config (like SIGHUP)", run: cmdReload},
		{name: "drain", summary: "make a running daemon stop accepting and finish in-flight messages", run: cmdDrain},
		{name: "dev", summary: "start a dev broker (NameServer + 2 brokers) and the daemon in one process", run: cmdDev},
		{name: "simulate", summary: "replay a fault scenario against strategies and compare them", run: cmdSimulate},
		{name: "version", summary: "print the version", run: cmdVersion},
		{name: "plugin", summary: "serve a built-in strategy as a plugin (started by the daemon)", run: cmdPlugin, hidden: true},
	}
}

const overview = `producerd: a RocketMQ producer daemon.

Usage:
  producerd COMMAND [flags] [args]

Commands:
%s
Quick start:
  producerd dev                                  # dev broker + daemon, prints what to do next
  producerd send TopicTest 'hello'               # in another terminal
  producerd status

Run 'producerd COMMAND -h' for a command's flags and examples.
`

func usage(w io.Writer) {
	var b strings.Builder
	for _, c := range commands() {
		if !c.hidden {
			fmt.Fprintf(&b, "  %-10s %s\n", c.name, c.summary)
		}
	}
	fmt.Fprintf(w, overview, b.String())
}

func main() {
	os.Exit(run(&env{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr}, os.Args[1:]))
}

func run(e *env, args []string) int {
	if len(args) == 0 {
		usage(e.stderr)
		return 2
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		if len(args) > 1 {
			return run(e, []string{args[1], "-h"})
		}
		usage(e.stdout)
		return 0
	case "-version", "--version":
		return cmdVersion(e, nil)
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(e, args[1:])
		}
	}
	fmt.Fprintf(e.stderr, "producerd: unknown command %q\n\n", args[0])
	usage(e.stderr)
	return 2
}

// newFlags returns a flag set whose -h prints the synopsis, the description, the flags
// and the examples.
func newFlags(e *env, name, synopsis, description, examples string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintf(w, "Usage:\n  producerd %s %s\n\n%s\n", name, synopsis, strings.TrimSpace(description))
		var hasFlags bool
		fs.VisitAll(func(*flag.Flag) { hasFlags = true })
		if hasFlags {
			fmt.Fprintf(w, "\nFlags:\n")
			fs.PrintDefaults()
		}
		if examples != "" {
			fmt.Fprintf(w, "\nExamples:\n%s\n", strings.TrimRight(examples, "\n"))
		}
	}
	return fs
}

// parse parses args, flags and positional arguments in any order (a body that starts
// with "-" goes after "--"); it returns the positional arguments, or (nil, code, false)
// when the command should exit with code (0 after -h).
func parse(fs *flag.FlagSet, args []string) ([]string, int, bool) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if err == flag.ErrHelp {
				return nil, 0, false
			}
			return nil, 2, false
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, 0, true
		}
		// flag stops at "--" (consumed) or at the first positional argument.
		consumed := len(args) - len(rest)
		if consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), 0, true
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

func cmdVersion(e *env, args []string) int {
	fs := newFlags(e, "version", "", "Print producerd's version.", "  producerd version\n")
	if _, code, ok := parse(fs, args); !ok {
		return code
	}
	fmt.Fprintf(e.stdout, "producerd %s\n", versionString())
	return 0
}

func fail(e *env, format string, args ...any) int {
	fmt.Fprintf(e.stderr, "producerd: "+format+"\n", args...)
	return 1
}
