package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/schemagate/pipeline/internal/auth"
)

func tokenCommand() *cobra.Command {
	var name, role string
	var subjects []string
	newCmd := &cobra.Command{
		Use:   "new --name N --role R [--subject S ...]",
		Short: "Make a bearer token and the auth.tokens entry that accepts it",
		Long: `Print a fresh random bearer token once, and the auth.tokens entry (its
SHA-256, never the token) that makes a server accept it. Roles: admin,
registrar, producer, viewer; --subject (repeatable, glob patterns such as
"payments.*") limits the token to those subjects.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if err := required(c, "name", "role"); err != nil {
				return err
			}
			if err := auth.CheckRole(role, subjects); err != nil {
				return usageErrorf("%v", err)
			}
			token, sum := auth.NewToken()
			entry, err := yaml.Marshal(map[string][]auth.TokenConfig{"tokens": {{Name: name, Role: role, Subjects: subjects, SHA256: sum}}})
			if err != nil {
				return failed(fmt.Errorf("encode the entry: %w", err))
			}
			fmt.Fprintf(c.OutOrStdout(), "token (shown once, keep it secret): %s\n\n# the config entry that accepts it (merge into an existing auth section):\n%s", token, indent(string(entry)))
			return nil
		},
	}
	newCmd.Flags().StringVar(&name, "name", "", "the caller's name (audit log, logs, metrics)")
	newCmd.Flags().StringVar(&role, "role", "", "admin, registrar, producer or viewer")
	newCmd.Flags().StringArrayVar(&subjects, "subject", nil, "subject glob the token may use (repeatable; none: every subject)")
	_ = newCmd.RegisterFlagCompletionFunc("role", fixedCompletion("admin", "registrar", "producer", "viewer"))
	return group("token", "Make bearer tokens for auth.tokens", newCmd)
}

func indent(s string) string {
	lines := strings.SplitAfter(s, "\n")
	for i, l := range lines {
		if l != "" {
			lines[i] = "  " + l
		}
	}
	return "auth:\n" + strings.Join(lines, "")
}
