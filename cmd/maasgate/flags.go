package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

// flagSet is a flag.FlagSet whose flags can also be set from environment
// variables. A flag given on the command line wins over its variables; the
// first variable set, in the order listed, wins over the default.
type flagSet struct {
	*flag.FlagSet
	env map[string][]string // flag name -> variable names
}

func newFlagSet(name, synopsis string, stderr io.Writer) *flagSet {
	fs := &flagSet{FlagSet: flag.NewFlagSet(name, flag.ContinueOnError), env: map[string][]string{}}
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: maasgate %s\n\nFlags:\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// bindEnv makes the named variables set flag name, and says so in its help.
func (fs *flagSet) bindEnv(name string, vars ...string) {
	fs.env[name] = vars
	f := fs.Lookup(name)
	f.Usage += " (env " + strings.Join(vars, ", ") + ")"
}

// parse parses args, then applies environment variables to flags not given
// on the command line.
func (fs *flagSet) parse(args []string, getenv func(string) (string, bool)) error {
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return err
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "unexpected argument %q\n", fs.Arg(0))
		fs.Usage()
		return errUsage
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	for name, vars := range fs.env {
		if given[name] {
			continue
		}
		for _, v := range vars {
			val, ok := getenv(v)
			if !ok || val == "" || serviceLink(val) {
				continue
			}
			if err := fs.Set(name, val); err != nil {
				return fmt.Errorf("environment variable %s: %w", v, err)
			}
			break
		}
	}
	return nil
}

// serviceLink reports whether an environment value is one Kubernetes set
// for a Service (MAASGATE_PORT=tcp://10.0.0.7:4000 for a Service named
// maasgate), not one an operator set: it is ignored.
func serviceLink(val string) bool {
	return strings.HasPrefix(val, "tcp://") || strings.HasPrefix(val, "udp://")
}

var lookupEnv = os.LookupEnv
