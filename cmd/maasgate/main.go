// Command maasgate is an OpenAI-compatible gateway that load-balances model
// groups over GPU servers, with LiteLLM's config format and admin API.
//
// Subcommands: serve, check, mock, demo, bench, import-litellm, version.
// Run "maasgate help" or "maasgate <command> --help" for their flags.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

var commands = []command{
	{"serve", "run the gateway with a config.yaml", runServe},
	{"check", "validate a config.yaml without serving", runCheck},
	{"mock", "run a simulated vLLM backend (for tests, demos and benchmarks)", runMock},
	{"demo", "run three simulated backends and the gateway in one process", runDemo},
	{"bench", "measure the latency, CPU and memory the gateway adds, and compare routing strategies", runBench},
	{"import-litellm", "copy the keys, teams and database models of a LiteLLM proxy's database", runImportLiteLLM},
	{"version", "print the version", runVersion},
	{"bare-proxy", "", runBareProxy}, // the bench's floor; unlisted
}

// run executes one subcommand and returns the process exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, c := range commands {
		if c.name != args[0] {
			continue
		}
		err := c.run(ctx, args[1:], stdout, stderr)
		switch {
		case err == nil:
			return 0
		case errors.Is(err, flag.ErrHelp):
			return 0
		case errors.Is(err, errUsage):
			return 2
		default:
			fmt.Fprintf(stderr, "maasgate %s: %v\n", c.name, err)
			return 1
		}
	}
	fmt.Fprintf(stderr, "maasgate: unknown command %q\n\n", args[0])
	usage(stderr)
	return 2
}

// errUsage reports a command-line mistake already explained by the flag
// package.
var errUsage = errors.New("usage")

func usage(w io.Writer) {
	fmt.Fprintln(w, "maasgate: an OpenAI-compatible gateway for GPU model servers (LiteLLM-compatible routing)")
	fmt.Fprintln(w, "\nUsage: maasgate <command> [flags]\n\nCommands:")
	for _, c := range commands {
		if c.summary != "" {
			fmt.Fprintf(w, "  %-14s %s\n", c.name, c.summary)
		}
	}
	fmt.Fprintln(w, "\nRun \"maasgate <command> --help\" for the flags of a command.")
}
