package cli

// What the command line does with input it cannot take: every refusal is
// a usageError (exit 2) that states the rule and shows the input through
// ui.Quote (escaped, cut short), before anything is changed.

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/velohq/velo/internal/engine"
	"github.com/velohq/velo/internal/ui"
)

// flagError rewrites pflag's refusals, which echo the input raw and whole,
// into messages that quote it safely and say what the flag takes.
func flagError(c *cobra.Command, err error) error {
	see := "see " + c.CommandPath() + " --help"
	var (
		notExist *pflag.NotExistError
		invalid  *pflag.InvalidValueError
		required *pflag.ValueRequiredError
		syntax   *pflag.InvalidSyntaxError
	)
	switch {
	case errors.As(err, &notExist):
		if sh := notExist.GetSpecifiedShortnames(); sh != "" {
			return usageError{fmt.Errorf("unknown shorthand flag %s in %s; %s for the flags it takes", ui.Quote(notExist.GetSpecifiedName()), ui.Quote("-"+sh), see)}
		}
		return usageError{fmt.Errorf("unknown flag %s; %s for the flags it takes", ui.Quote("--"+notExist.GetSpecifiedName()), see)}
	case errors.As(err, &invalid):
		f := invalid.GetFlag()
		why := "is not " + kind(f)
		if errors.Is(err, strconv.ErrRange) {
			why = "is out of range"
		}
		return usageError{fmt.Errorf("--%s %s %s; %s", f.Name, ui.Quote(invalid.GetValue()), why, see)}
	case errors.As(err, &required):
		f := required.GetFlag()
		return usageError{fmt.Errorf("--%s needs a value: %s; %s", f.Name, kind(f), see)}
	case errors.As(err, &syntax):
		return usageError{fmt.Errorf("bad flag syntax %s: write --name or --name=value; %s", ui.Quote(syntax.GetSpecifiedFlag()), see)}
	}
	return usageError{fmt.Errorf("bad flags (%s); %s", ui.Quote(err.Error()), see)}
}

// kind says what a flag's value must be.
func kind(f *pflag.Flag) string {
	switch f.Value.Type() {
	case "int":
		return "a whole number"
	case "duration":
		return "a duration such as 90s, 5m or 2h"
	case "bool":
		return "true or false"
	}
	return "text"
}

// requireValues refuses a string flag given an empty value: --pool "" is
// a mistake (an unset variable, say), never a request for the default.
func requireValues(c *cobra.Command, _ []string) error {
	var err error
	c.Flags().Visit(func(f *pflag.Flag) {
		if err != nil {
			return
		}
		empty := f.Value.Type() == "string" && f.Value.String() == ""
		if sv, ok := f.Value.(pflag.SliceValue); ok && f.Value.Type() == "stringArray" {
			empty = slices.Contains(sv.GetSlice(), "")
		}
		if empty {
			err = usageError{fmt.Errorf("--%s is empty: give it a value (%s), or leave the flag out for its default", f.Name, f.Usage)}
		}
	})
	return err
}

// decimalInt is an int flag that reads base 10 only: pflag's IntVar reads
// 0x10 as 16 and 010 as 8, which no one typing --days 010 means.
type decimalInt struct{ p *int }

func (d decimalInt) String() string { return strconv.Itoa(*d.p) }
func (d decimalInt) Type() string   { return "int" }
func (d decimalInt) Set(s string) error {
	n, err := strconv.ParseInt(s, 10, strconv.IntSize)
	if err != nil {
		return err
	}
	*d.p = int(n)
	return nil
}

// intVar defines a base-10 int flag.
func intVar(fs *pflag.FlagSet, p *int, name string, value int, usage string) {
	*p = value
	fs.Var(decimalInt{p}, name, usage)
}

// optionalArg is the one optional argument of a command, checked by
// validate when it is given, even empty: `velo branch list ""` names no
// project, it does not ask for every project's branches.
func optionalArg(args []string, validate func(string) error) (string, error) {
	if len(args) == 0 {
		return "", nil
	}
	if err := validate(args[0]); err != nil {
		return "", err
	}
	return args[0], nil
}

func validateProject(s string) error { return engine.ValidateName("project", s) }

func validateRef(s string) error {
	_, _, err := engine.ParseRef(s)
	return err
}

// validateProjectOrRef takes PROJECT or PROJECT/BRANCH.
func validateProjectOrRef(s string) error {
	if strings.Contains(s, "/") {
		return validateRef(s)
	}
	return validateProject(s)
}

// unknownSubcommand is the Args of a command that only groups others: an
// argument is a subcommand that does not exist.
func unknownSubcommand(c *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	hint := ""
	if s := c.SuggestionsFor(args[0]); len(s) > 0 {
		hint = "; did you mean " + strings.Join(s, " or ") + "?"
	}
	return usageError{fmt.Errorf("unknown command %s for %s%s; see %s --help", ui.Quote(args[0]), c.CommandPath(), hint, c.CommandPath())}
}

func showHelp(c *cobra.Command, _ []string) error { return c.Help() }

// newHelpCommand replaces cobra's help, which answers an unknown topic
// with exit code 0 and the topic echoed raw.
func newHelpCommand(root *cobra.Command) *cobra.Command {
	return &cobra.Command{
		Use:   "help [command]",
		Short: "Help about any command",
		RunE: func(c *cobra.Command, args []string) error {
			cmd, rest, err := root.Find(args)
			if err != nil || len(rest) > 0 {
				return usageError{fmt.Errorf("unknown help topic %s; see velo --help for the commands", ui.Quote(strings.Join(args, " ")))}
			}
			return cmd.Help()
		},
	}
}

// strictCompletion makes cobra's completion command refuse what it does
// not know (it showed its help and exited 0).
func strictCompletion(root *cobra.Command) {
	root.InitDefaultCompletionCmd()
	for _, c := range root.Commands() {
		if c.Name() != "completion" {
			continue
		}
		c.Args, c.RunE = unknownSubcommand, showHelp
		for _, sub := range c.Commands() {
			sub.Args = exactArgs(0)
		}
	}
}
