package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"

	pipelinev1 "github.com/schemagate/pipeline/gen/pipeline/v1"
	"github.com/schemagate/pipeline/gen/pipeline/v1/pipelinev1connect"
)

func schemaCommand() *cobra.Command {
	c := group("schema", "Register, check and read schemas in a running pipeline's registry")
	cf := addClientFlags(c)
	client := func(cmd *cobra.Command) (pipelinev1connect.SchemaServiceClient, *call, error) {
		httpClient, base, ctx, cancel, err := cf.connect(cmd)
		if err != nil {
			return nil, nil, err
		}
		return pipelinev1connect.NewSchemaServiceClient(httpClient, base), &call{ctx: ctx, cancel: cancel, flags: cf, w: cmd.OutOrStdout(), errw: cmd.ErrOrStderr()}, nil
	}
	c.AddCommand(
		schemaRegisterCommand(client, true),
		schemaRegisterCommand(client, false),
		schemaGetCommand(client),
		schemaListCommand(client),
		schemaVersionsCommand(client),
		schemaDeleteCommand(client),
		schemaConfigCommand(client),
	)
	return c
}

type schemaClient func(*cobra.Command) (pipelinev1connect.SchemaServiceClient, *call, error)

func schemaRegisterCommand(client schemaClient, register bool) *cobra.Command {
	var subject, message, root string
	var out *output
	c := &cobra.Command{
		Use:   "register --subject S --message M [--root DIR] PATH...",
		Short: "Register .proto files (files or directories) as a new version",
		Long: `Register .proto files as a new version of a subject. Each PATH is a .proto
file or a directory (every .proto file under it). A file's registered path,
the one imports name, is relative to --root, else to the directory given,
else to the file's own directory: pass the import root (the directory that
holds shop/v1/...) rather than single files when they import each other.
A version that breaks the subject's compatibility mode is refused (exit 1)
with every violation.`,
		Example: "  pipeline schema register --subject orders --message shop.v1.OrderCreated protos/",
	}
	if !register {
		c.Use = "check --subject S --message M [--root DIR] PATH..."
		c.Short = "Check .proto files against a subject's history without registering (exit 1 when breaking)"
		c.Long = "Check whether .proto files would be accepted as the subject's next version,\nwithout registering them: exit 0 when compatible, 1 with every violation\nwhen breaking. PATH and --root as for register."
		c.Example = "  pipeline schema check --subject orders --message shop.v1.OrderCreated protos/"
	}
	c.RunE = func(cmd *cobra.Command, args []string) error {
		if err := required(cmd, "subject", "message"); err != nil {
			return err
		}
		if len(args) == 0 {
			return usageErrorf("%s needs at least one .proto file or directory", cmd.CommandPath())
		}
		if err := out.check(); err != nil {
			return err
		}
		files, err := readProtoFiles(root, args)
		if err != nil {
			return usageErrorf("%v", err)
		}
		sc, call, err := client(cmd)
		if err != nil {
			return err
		}
		defer call.cancel()
		if register {
			resp, err := sc.RegisterSchema(call.ctx, connect.NewRequest(&pipelinev1.RegisterSchemaRequest{Subject: subject, Message: message, Files: files}))
			if err != nil {
				return call.fail(err, importHint(err, root, args))
			}
			if out.json() {
				return printJSON(call.w, resp.Msg)
			}
			fmt.Fprintf(call.w, "registered %s version %d (schema id %d)\n", subject, resp.Msg.GetVersion(), resp.Msg.GetSchemaId())
			return nil
		}
		resp, err := sc.CheckCompatibility(call.ctx, connect.NewRequest(&pipelinev1.CheckCompatibilityRequest{Subject: subject, Message: message, Files: files}))
		if err != nil {
			return call.fail(err, importHint(err, root, args))
		}
		if out.json() {
			if err := printJSON(call.w, resp.Msg); err != nil {
				return err
			}
		} else if resp.Msg.GetCompatible() {
			fmt.Fprintf(call.w, "compatible with %s\n", subject)
		} else {
			fmt.Fprintf(call.w, "NOT compatible with %s:\n", subject)
			printViolations(call.w, resp.Msg.GetViolations())
		}
		if !resp.Msg.GetCompatible() {
			return &exitError{code: exitRefused}
		}
		return nil
	}
	f := c.Flags()
	f.StringVar(&subject, "subject", "", "subject name")
	f.StringVar(&message, "message", "", "full name of the event message, e.g. shop.v1.OrderCreated")
	f.StringVar(&root, "root", "", "import root: file paths are registered relative to it (default: each directory PATH, or a file's own directory)")
	_ = c.MarkFlagDirname("root")
	out = addOutputFlag(c)
	return c
}

func schemaGetCommand(client schemaClient) *cobra.Command {
	var subject string
	var version int32
	var id int64
	var out *output
	c := &cobra.Command{
		Use:   "get (--subject S [--version N] | --id N)",
		Short: "Print a schema's files",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if subject == "" && id == 0 {
				return usageErrorf("%s needs --subject or --id", cmd.CommandPath())
			}
			if err := out.check(); err != nil {
				return err
			}
			sc, call, err := client(cmd)
			if err != nil {
				return err
			}
			defer call.cancel()
			resp, err := sc.GetSchema(call.ctx, connect.NewRequest(&pipelinev1.GetSchemaRequest{Subject: subject, Version: version, SchemaId: id}))
			if err != nil {
				return call.fail(err, "")
			}
			if out.json() {
				return printJSON(call.w, resp.Msg)
			}
			sch := resp.Msg.GetSchema()
			fmt.Fprintf(call.w, "# subject %s version %d, schema id %d, message %s\n", sch.GetSubject(), sch.GetVersion(), sch.GetSchemaId(), sch.GetMessage())
			for _, file := range sch.GetFiles() {
				fmt.Fprintf(call.w, "\n# file %s\n%s\n", file.GetPath(), file.GetContent())
			}
			return nil
		},
	}
	c.Flags().StringVar(&subject, "subject", "", "subject name")
	c.Flags().Int32Var(&version, "version", 0, "version (0: the latest)")
	c.Flags().Int64Var(&id, "id", 0, "global schema id (instead of --subject)")
	out = addOutputFlag(c)
	return c
}

func schemaListCommand(client schemaClient) *cobra.Command {
	var prefix string
	var out *output
	c := &cobra.Command{
		Use:   "list [--prefix P]",
		Short: "List subjects with their latest version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := out.check(); err != nil {
				return err
			}
			sc, call, err := client(cmd)
			if err != nil {
				return err
			}
			defer call.cancel()
			resp, err := sc.ListSubjects(call.ctx, connect.NewRequest(&pipelinev1.ListSubjectsRequest{Prefix: prefix}))
			if err != nil {
				return call.fail(err, "")
			}
			if out.json() {
				return printJSON(call.w, resp.Msg)
			}
			var rows [][]string
			for _, s := range resp.Msg.GetSubjects() {
				rows = append(rows, []string{s.GetName(), itoa(s.GetLatestVersion()), itoa(s.GetLatestSchemaId()), s.GetMessage(), modeName(s.GetCompatibility())})
			}
			return table(call.w, []string{"SUBJECT", "VERSION", "SCHEMA ID", "MESSAGE", "COMPATIBILITY"}, rows)
		},
	}
	c.Flags().StringVar(&prefix, "prefix", "", "only subjects that start with this")
	out = addOutputFlag(c)
	return c
}

func schemaVersionsCommand(client schemaClient) *cobra.Command {
	var subject string
	var deleted bool
	var out *output
	c := &cobra.Command{
		Use:   "versions --subject S [--deleted]",
		Short: "List a subject's versions",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := required(cmd, "subject"); err != nil {
				return err
			}
			if err := out.check(); err != nil {
				return err
			}
			sc, call, err := client(cmd)
			if err != nil {
				return err
			}
			defer call.cancel()
			resp, err := sc.ListVersions(call.ctx, connect.NewRequest(&pipelinev1.ListVersionsRequest{Subject: subject, IncludeDeleted: deleted}))
			if err != nil {
				return call.fail(err, "")
			}
			if out.json() {
				return printJSON(call.w, resp.Msg)
			}
			var rows [][]string
			for _, v := range resp.Msg.GetVersions() {
				created := ""
				if v.GetCreatedAt() != nil {
					created = v.GetCreatedAt().AsTime().UTC().Format("2006-01-02 15:04:05Z")
				}
				rows = append(rows, []string{itoa(v.GetVersion()), itoa(v.GetSchemaId()), created, strconv.FormatBool(v.GetDeleted())})
			}
			return table(call.w, []string{"VERSION", "SCHEMA ID", "CREATED", "DELETED"}, rows)
		},
	}
	c.Flags().StringVar(&subject, "subject", "", "subject name")
	c.Flags().BoolVar(&deleted, "deleted", false, "list soft-deleted versions too")
	out = addOutputFlag(c)
	return c
}

func schemaDeleteCommand(client schemaClient) *cobra.Command {
	var subject string
	var version int32
	var permanent bool
	c := &cobra.Command{
		Use:   "delete --subject S --version N [--permanent]",
		Short: "Soft-delete a version (--permanent: remove a soft-deleted one for good)",
		Long: `Soft-delete a version: it is hidden from the subject and new events can no
longer pin it, while events already in the bus still resolve it by id.
--permanent removes a soft-deleted version for good (refused while a route
or another subject's reference uses it). Version numbers are never handed
out again.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := required(cmd, "subject", "version"); err != nil {
				return err
			}
			if version <= 0 {
				return usageErrorf("--version %d: give the version number to delete (schema versions lists them)", version)
			}
			sc, call, err := client(cmd)
			if err != nil {
				return err
			}
			defer call.cancel()
			if _, err := sc.DeleteSchemaVersion(call.ctx, connect.NewRequest(&pipelinev1.DeleteSchemaVersionRequest{Subject: subject, Version: version, Permanent: permanent})); err != nil {
				return call.fail(err, "")
			}
			how := "soft-deleted"
			if permanent {
				how = "permanently deleted"
			}
			fmt.Fprintf(call.w, "%s %s version %d\n", how, subject, version)
			return nil
		},
	}
	c.Flags().StringVar(&subject, "subject", "", "subject name")
	c.Flags().Int32Var(&version, "version", 0, "the version to delete")
	c.Flags().BoolVar(&permanent, "permanent", false, "remove a soft-deleted version for good")
	return c
}

// modes are the compatibility modes' names as the commands take them.
func modes() []string {
	var out []string
	for i := int32(1); ; i++ {
		name, ok := pipelinev1.Compatibility_name[i]
		if !ok {
			return out
		}
		out = append(out, strings.TrimPrefix(name, "COMPATIBILITY_"))
	}
}

func validationModes() []string {
	var out []string
	for i := int32(1); ; i++ {
		name, ok := pipelinev1.ValidationCompatibility_name[i]
		if !ok {
			return out
		}
		out = append(out, strings.TrimPrefix(name, "VALIDATION_COMPATIBILITY_"))
	}
}

func modeName(m pipelinev1.Compatibility) string {
	return strings.TrimPrefix(m.String(), "COMPATIBILITY_")
}

func schemaConfigCommand(client schemaClient) *cobra.Command {
	var subject, set, validation string
	var out *output
	c := &cobra.Command{
		Use:   "config [--subject S] [--set MODE] [--validation V]",
		Short: "Show or set a subject's compatibility mode (no --subject: the global default)",
		Long: fmt.Sprintf(`Show or set the compatibility mode of a subject, or without --subject the
global default that every subject without a mode of its own follows.
Modes: %s.
Validation compatibility (--validation): %s.
A subject that has no version is an error (exit 3) when read; its mode may
be set before its first version.`, strings.Join(modes(), ", "), strings.Join(validationModes(), ", ")),
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := out.check(); err != nil {
				return err
			}
			req := &pipelinev1.UpdateSubjectConfigRequest{Subject: subject}
			if set != "" {
				mode, ok := pipelinev1.Compatibility_value["COMPATIBILITY_"+strings.ToUpper(set)]
				if !ok || mode == 0 {
					return usageErrorf("unknown compatibility mode %q: use one of %s", set, strings.Join(modes(), ", "))
				}
				req.Compatibility = pipelinev1.Compatibility(mode)
			}
			if validation != "" {
				v, ok := pipelinev1.ValidationCompatibility_value["VALIDATION_COMPATIBILITY_"+strings.ToUpper(validation)]
				if !ok || v == 0 {
					return usageErrorf("unknown validation compatibility %q: use one of %s", validation, strings.Join(validationModes(), ", "))
				}
				req.ValidationCompatibility = pipelinev1.ValidationCompatibility(v)
			}
			sc, call, err := client(cmd)
			if err != nil {
				return err
			}
			defer call.cancel()
			if set == "" && validation == "" {
				if subject != "" {
					// GetSubjectConfig answers the global default for any
					// name, so a typo would read as a mode: ask for the subject.
					if _, err := sc.ListVersions(call.ctx, connect.NewRequest(&pipelinev1.ListVersionsRequest{Subject: subject, IncludeDeleted: true})); err != nil {
						return call.fail(err, "")
					}
				}
				resp, err := sc.GetSubjectConfig(call.ctx, connect.NewRequest(&pipelinev1.GetSubjectConfigRequest{Subject: subject}))
				if err != nil {
					return call.fail(err, "")
				}
				if out.json() {
					return printJSON(call.w, resp.Msg)
				}
				fmt.Fprintln(call.w, modeName(resp.Msg.GetCompatibility()))
				return nil
			}
			resp, err := sc.UpdateSubjectConfig(call.ctx, connect.NewRequest(req))
			if err != nil {
				return call.fail(err, "")
			}
			if out.json() {
				return printJSON(call.w, resp.Msg)
			}
			name := subject
			if name == "" {
				name = "global default"
			}
			fmt.Fprintf(call.w, "%s: %s", name, modeName(resp.Msg.GetCompatibility()))
			if validation != "" {
				fmt.Fprintf(call.w, ", validation %s", strings.TrimPrefix(resp.Msg.GetValidationCompatibility().String(), "VALIDATION_COMPATIBILITY_"))
			}
			fmt.Fprintln(call.w)
			return nil
		},
	}
	c.Flags().StringVar(&subject, "subject", "", "subject name (none: the global default)")
	c.Flags().StringVar(&set, "set", "", "compatibility mode to set: "+strings.Join(modes(), ", "))
	c.Flags().StringVar(&validation, "validation", "", "validation compatibility to set: "+strings.Join(validationModes(), ", "))
	_ = c.RegisterFlagCompletionFunc("set", fixedCompletion(modes()...))
	_ = c.RegisterFlagCompletionFunc("validation", fixedCompletion(validationModes()...))
	out = addOutputFlag(c)
	return c
}

// call is one command's request: its deadline and where it prints.
type call struct {
	ctx    context.Context
	cancel context.CancelFunc
	flags  *clientFlags
	w      io.Writer
	errw   io.Writer
}

// fail reports a failed request, then a hint when there is one.
func (c *call) fail(err error, hint string) error {
	exit := c.flags.serverError(c.errw, err)
	if hint != "" {
		fmt.Fprintln(c.errw, "hint:", hint)
	}
	return exit
}

func itoa[T int32 | int64](v T) string { return strconv.FormatInt(int64(v), 10) }

// readProtoFiles reads .proto files from paths (files or directories). Each
// file's registered path is relative to root, or to the directory given.
func readProtoFiles(root string, paths []string) ([]*pipelinev1.SourceFile, error) {
	var out []*pipelinev1.SourceFile
	seen := map[string]bool{}
	add := func(base, file string) error {
		rel, err := filepath.Rel(base, file)
		if err != nil || strings.HasPrefix(rel, "..") {
			return fmt.Errorf("%s is not under the import root %s", file, base)
		}
		rel = filepath.ToSlash(rel)
		if seen[rel] {
			return nil
		}
		content, err := os.ReadFile(file)
		if err != nil {
			return fmt.Errorf("read %s: %w", file, err)
		}
		seen[rel] = true
		out = append(out, &pipelinev1.SourceFile{Path: rel, Content: string(content)})
		return nil
	}
	for _, p := range paths {
		info, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", p, err)
		}
		if !info.IsDir() {
			base := root
			if base == "" {
				base = filepath.Dir(p)
			}
			if err := add(base, p); err != nil {
				return nil, err
			}
			continue
		}
		base := root
		if base == "" {
			base = p
		}
		err = filepath.WalkDir(p, func(file string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() || !strings.HasSuffix(file, ".proto") {
				return nil
			}
			return add(base, file)
		})
		if err != nil {
			return nil, err
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no .proto files found")
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}

var unresolvedImport = regexp.MustCompile(`could not resolve path "([^"]+)"`)

// importHint: an import that did not resolve, when a single file was given
// and the imported file is found under one of its parent directories, is
// almost always a missing import root. It says which root to pass.
func importHint(err error, root string, paths []string) string {
	if root != "" {
		return ""
	}
	m := unresolvedImport.FindStringSubmatch(err.Error())
	if m == nil {
		return ""
	}
	for _, p := range paths {
		if info, err := os.Stat(p); err != nil || info.IsDir() {
			continue
		}
		dir, _ := filepath.Abs(filepath.Dir(p))
		for d := dir; ; d = filepath.Dir(d) {
			if _, err := os.Stat(filepath.Join(d, filepath.FromSlash(m[1]))); err == nil {
				return fmt.Sprintf("%s imports %s, which is under %s: pass the import root, not single files: --root %s (or the directory %s itself)", p, m[1], d, d, d)
			}
			if d == filepath.Dir(d) {
				break
			}
		}
	}
	return ""
}
