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
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				return "(devel " + s.Value[:12] + ")"
			}
		}
	}
	return "(devel)"
}

// env is what a command may touch: its standard streams.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	// reexec replaces the process with this executable, its arguments and environ
	// (same PID); it returns only on failure. Nil (tests running commands in process)
	// never re-executes.
	reexec func(environ []string) error
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
		{name: "completion", summary: "print a bash or zsh completion script (completion bash|zsh)", run: cmdCompletion},
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

Exit codes:
  0  success (and -h)
  1  the command failed (daemon unreachable, send refused, bad config, ...)
  2  usage error (unknown command or flag, missing or extra argument)

Environment:
  PRODUCERD_<SECTION>_<KEY> overrides a config key (see 'producerd validate -print');
  PRODUCERD_ADDR, PRODUCERD_ADMIN, PRODUCERD_ADMIN_TOKEN(_FILE) are the CLI's defaults.
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
	os.Exit(run(&env{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, reexec: reexec}, os.Args[1:]))
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
	fmt.Fprintf(e.stderr, "producerd: unknown command %q (run 'producerd -h' for the commands)\n", args[0])
	return 2
}

// cliOut is the output of a command's flag set: parse writes -h to stdout and errors
// to stderr.
type cliOut struct{ e *env }

func (c *cliOut) Write(p []byte) (int, error) { return c.e.stderr.Write(p) }

// newFlags returns a flag set whose -h prints the synopsis, the description, the flags
// and the examples, on standard output.
func newFlags(e *env, name, synopsis, description, examples string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(&cliOut{e: e})
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
	out, _ := fs.Output().(*cliOut)
	if out == nil {
		out = &cliOut{e: &env{stdout: io.Discard, stderr: io.Discard}}
	}
	var pos []string
	for {
		// flag's own error text and usage dump are dropped: -h prints the usage on
		// stdout, an error is one line on stderr.
		fs.SetOutput(io.Discard)
		err := fs.Parse(args)
		fs.SetOutput(out)
		if err != nil {
			if err == flag.ErrHelp {
				fs.SetOutput(out.e.stdout)
				fs.Usage()
				fs.SetOutput(out)
				return nil, 0, false
			}
			return nil, usageError(fs, "%v", err), false
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

// usageError prints one line naming what is wrong with the command line and where the
// usage is, on stderr, and returns exit code 2.
func usageError(fs *flag.FlagSet, format string, args ...any) int {
	w := io.Writer(os.Stderr)
	if out, ok := fs.Output().(*cliOut); ok {
		w = out.e.stderr
	}
	fmt.Fprintf(w, "producerd %s: %s (run 'producerd %s -h' for usage)\n", fs.Name(), fmt.Sprintf(format, args...), fs.Name())
	return 2
}

func fail(e *env, format string, args ...any) int {
	fmt.Fprintf(e.stderr, "producerd: "+format+"\n", args...)
	return 1
}
