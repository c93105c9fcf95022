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
)

func schemaCommand() *cobra.Command {
	c := group("schema", "Register, check and read schemas in a running pipeline's registry")
	cf := addClientFlags(c)
	c.AddCommand(
		schemaRegisterCommand(cf, true),
		schemaRegisterCommand(cf, false),
		schemaGetCommand(cf),
		schemaListCommand(cf),
		schemaVersionsCommand(cf),
		schemaDeleteCommand(cf),
		schemaConfigCommand(cf),
	)
	return c
}

func schemaRegisterCommand(cf *clientFlags, register bool) *cobra.Command {
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
		files, err := readProtoFiles(root, args)
		if err != nil {
			return usageErrorf("%v", err)
		}
		hint := func(err error) string { return importHint(err, root, args) }
		if register {
			return request(cmd, cf, out, func(ctx context.Context, c *clients) (*connect.Response[pipelinev1.RegisterSchemaResponse], error) {
				return c.schema.RegisterSchema(ctx, connect.NewRequest(&pipelinev1.RegisterSchemaRequest{Subject: subject, Message: message, Files: files}))
			}, answer[pipelinev1.RegisterSchemaResponse]{hint: hint, text: func(w io.Writer, msg *pipelinev1.RegisterSchemaResponse) error {
				_, err := fmt.Fprintf(w, "registered %s version %d (schema id %d)\n", subject, msg.GetVersion(), msg.GetSchemaId())
				return err
			}})
		}
		return request(cmd, cf, out, func(ctx context.Context, c *clients) (*connect.Response[pipelinev1.CheckCompatibilityResponse], error) {
			return c.schema.CheckCompatibility(ctx, connect.NewRequest(&pipelinev1.CheckCompatibilityRequest{Subject: subject, Message: message, Files: files}))
		}, answer[pipelinev1.CheckCompatibilityResponse]{
			hint: hint,
			text: func(w io.Writer, msg *pipelinev1.CheckCompatibilityResponse) error {
				if msg.GetCompatible() {
					_, err := fmt.Fprintf(w, "compatible with %s\n", subject)
					return err
				}
				fmt.Fprintf(w, "NOT compatible with %s:\n", subject)
				printViolations(w, msg.GetViolations())
				return nil
			},
			verdict: func(msg *pipelinev1.CheckCompatibilityResponse) error {
				if !msg.GetCompatible() {
					return &exitError{code: exitRefused}
				}
				return nil
			},
		})
	}
	f := c.Flags()
	f.StringVar(&subject, "subject", "", "subject name")
	f.StringVar(&message, "message", "", "full name of the event message, e.g. shop.v1.OrderCreated")
	f.StringVar(&root, "root", "", "import root: file paths are registered relative to it (default: each directory PATH, or a file's own directory)")
	_ = c.MarkFlagDirname("root")
	out = addOutputFlag(c)
	return c
}

func schemaGetCommand(cf *clientFlags) *cobra.Command {
	var req pipelinev1.GetSchemaRequest
	var out *output
	c := &cobra.Command{
		Use:   "get (--subject S [--version N] | --id N)",
		Short: "Print a schema's files",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if req.Subject == "" && req.SchemaId == 0 {
				return usageErrorf("%s needs --subject or --id", cmd.CommandPath())
			}
			return request(cmd, cf, out, func(ctx context.Context, c *clients) (*connect.Response[pipelinev1.GetSchemaResponse], error) {
				return c.schema.GetSchema(ctx, connect.NewRequest(&req))
			}, answer[pipelinev1.GetSchemaResponse]{text: func(w io.Writer, msg *pipelinev1.GetSchemaResponse) error {
				sch := msg.GetSchema()
				if sch.GetSubject() != "" {
					fmt.Fprintf(w, "# subject %s version %d, schema id %d, message %s\n", sch.GetSubject(), sch.GetVersion(), sch.GetSchemaId(), sch.GetMessage())
				} else { // by id: an id may be a version of several subjects
					fmt.Fprintf(w, "# schema id %d, message %s\n", sch.GetSchemaId(), sch.GetMessage())
				}
				for _, file := range sch.GetFiles() {
					fmt.Fprintf(w, "\n# file %s\n%s\n", file.GetPath(), file.GetContent())
				}
				return nil
			}})
		},
	}
	c.Flags().StringVar(&req.Subject, "subject", "", "subject name")
	c.Flags().Int32Var(&req.Version, "version", 0, "version (0: the latest)")
	c.Flags().Int64Var(&req.SchemaId, "id", 0, "global schema id (instead of --subject)")
	out = addOutputFlag(c)
	return c
}

func schemaListCommand(cf *clientFlags) *cobra.Command {
	var req pipelinev1.ListSubjectsRequest
	var out *output
	c := &cobra.Command{
		Use:   "list [--prefix P]",
		Short: "List subjects with their latest version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return request(cmd, cf, out, func(ctx context.Context, c *clients) (*connect.Response[pipelinev1.ListSubjectsResponse], error) {
				return c.schema.ListSubjects(ctx, connect.NewRequest(&req))
			}, answer[pipelinev1.ListSubjectsResponse]{text: func(w io.Writer, msg *pipelinev1.ListSubjectsResponse) error {
				var rows [][]string
				for _, s := range msg.GetSubjects() {
					rows = append(rows, []string{s.GetName(), itoa(s.GetLatestVersion()), itoa(s.GetLatestSchemaId()), s.GetMessage(), modeName(s.GetCompatibility())})
				}
				return table(w, []string{"SUBJECT", "VERSION", "SCHEMA ID", "MESSAGE", "COMPATIBILITY"}, rows)
			}})
		},
	}
	c.Flags().StringVar(&req.Prefix, "prefix", "", "only subjects that start with this")
	out = addOutputFlag(c)
	return c
}

func schemaVersionsCommand(cf *clientFlags) *cobra.Command {
	var req pipelinev1.ListVersionsRequest
	var out *output
	c := &cobra.Command{
		Use:   "versions --subject S [--deleted]",
		Short: "List a subject's versions",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := required(cmd, "subject"); err != nil {
				return err
			}
			return request(cmd, cf, out, func(ctx context.Context, c *clients) (*connect.Response[pipelinev1.ListVersionsResponse], error) {
				return c.schema.ListVersions(ctx, connect.NewRequest(&req))
			}, answer[pipelinev1.ListVersionsResponse]{text: func(w io.Writer, msg *pipelinev1.ListVersionsResponse) error {
				var rows [][]string
				for _, v := range msg.GetVersions() {
					created := ""
					if v.GetCreatedAt() != nil {
						created = v.GetCreatedAt().AsTime().UTC().Format("2006-01-02 15:04:05Z")
					}
					rows = append(rows, []string{itoa(v.GetVersion()), itoa(v.GetSchemaId()), created, strconv.FormatBool(v.GetDeleted())})
				}
				return table(w, []string{"VERSION", "SCHEMA ID", "CREATED", "DELETED"}, rows)
			}})
		},
	}
	c.Flags().StringVar(&req.Subject, "subject", "", "subject name")
	c.Flags().BoolVar(&req.IncludeDeleted, "deleted", false, "list soft-deleted versions too")
	out = addOutputFlag(c)
	return c
}

func schemaDeleteCommand(cf *clientFlags) *cobra.Command {
	var req pipelinev1.DeleteSchemaVersionRequest
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
			if req.Version <= 0 {
				return usageErrorf("--version %d: give the version number to delete (schema versions lists them)", req.Version)
			}
			return request(cmd, cf, nil, func(ctx context.Context, c *clients) (*connect.Response[pipelinev1.DeleteSchemaVersionResponse], error) {
				return c.schema.DeleteSchemaVersion(ctx, connect.NewRequest(&req))
			}, answer[pipelinev1.DeleteSchemaVersionResponse]{text: func(w io.Writer, _ *pipelinev1.DeleteSchemaVersionResponse) error {
				how := "soft-deleted"
				if req.Permanent {
					how = "permanently deleted"
				}
				_, err := fmt.Fprintf(w, "%s %s version %d\n", how, req.Subject, req.Version)
				return err
			}})
		},
	}
	c.Flags().StringVar(&req.Subject, "subject", "", "subject name")
	c.Flags().Int32Var(&req.Version, "version", 0, "the version to delete")
	c.Flags().BoolVar(&req.Permanent, "permanent", false, "remove a soft-deleted version for good")
	return c
}

// modes are the compatibility modes' names as the commands take them.
func modes() []string { return enumNames(pipelinev1.Compatibility_name, "COMPATIBILITY_") }

func validationModes() []string {
	return enumNames(pipelinev1.ValidationCompatibility_name, "VALIDATION_COMPATIBILITY_")
}

// enumNames are an enum's names from 1 on, in number order, without prefix.
func enumNames(names map[int32]string, prefix string) []string {
	var out []string
	for i := int32(1); names[i] != ""; i++ {
		out = append(out, strings.TrimPrefix(names[i], prefix))
	}
	return out
}

func modeName(m pipelinev1.Compatibility) string {
	return strings.TrimPrefix(m.String(), "COMPATIBILITY_")
}

func schemaConfigCommand(cf *clientFlags) *cobra.Command {
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
			if set == "" && validation == "" {
				return request(cmd, cf, out, func(ctx context.Context, c *clients) (*connect.Response[pipelinev1.GetSubjectConfigResponse], error) {
					if subject != "" {
						// GetSubjectConfig answers the global default for any
						// name, so a typo would read as a mode: ask for the subject.
						if _, err := c.schema.ListVersions(ctx, connect.NewRequest(&pipelinev1.ListVersionsRequest{Subject: subject, IncludeDeleted: true})); err != nil {
							return nil, err
						}
					}
					return c.schema.GetSubjectConfig(ctx, connect.NewRequest(&pipelinev1.GetSubjectConfigRequest{Subject: subject}))
				}, answer[pipelinev1.GetSubjectConfigResponse]{text: func(w io.Writer, msg *pipelinev1.GetSubjectConfigResponse) error {
					_, err := fmt.Fprintln(w, modeName(msg.GetCompatibility()))
					return err
				}})
			}
			return request(cmd, cf, out, func(ctx context.Context, c *clients) (*connect.Response[pipelinev1.UpdateSubjectConfigResponse], error) {
				return c.schema.UpdateSubjectConfig(ctx, connect.NewRequest(req))
			}, answer[pipelinev1.UpdateSubjectConfigResponse]{text: func(w io.Writer, msg *pipelinev1.UpdateSubjectConfigResponse) error {
				name := subject
				if name == "" {
					name = "global default"
				}
				fmt.Fprintf(w, "%s: %s", name, modeName(msg.GetCompatibility()))
				if validation != "" {
					fmt.Fprintf(w, ", validation %s", strings.TrimPrefix(msg.GetValidationCompatibility().String(), "VALIDATION_COMPATIBILITY_"))
				}
				_, err := fmt.Fprintln(w)
				return err
			}})
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
