package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"connectrpc.com/connect"

	pipelinev1 "github.com/schemagate/pipeline/gen/pipeline/v1"
	"github.com/schemagate/pipeline/gen/pipeline/v1/pipelinev1connect"
)

const schemaUsage = `Usage:
  pipeline schema register --subject S --message M [--root DIR] PATH...   register .proto files (files or directories)
  pipeline schema check    --subject S --message M [--root DIR] PATH...   check compatibility; exit 1 when breaking
  pipeline schema get      --subject S [--version N] | --id N            print a schema's files
  pipeline schema list                                                   list subjects
  pipeline schema config   --subject S [--set MODE]                      show or set the compatibility mode

Common flags: --server URL (default http://127.0.0.1:7400, env PIPELINE_SERVER)
              --token T   bearer token (env PIPELINE_TOKEN)
              --ca-file F CA bundle that verifies an https:// server (default: the system's roots)
`

// schemaCommand runs a registry subcommand against a running pipeline.
func schemaCommand(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, schemaUsage)
		return exitError(2)
	}
	sub, args := args[0], args[1:]
	fs := flag.NewFlagSet("schema "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	server := fs.String("server", envOr("PIPELINE_SERVER", "http://127.0.0.1:7400"), "pipeline server URL")
	subject := fs.String("subject", "", "subject name")
	message := fs.String("message", "", "full name of the event message, e.g. shop.v1.OrderCreated")
	root := fs.String("root", "", "import root: file paths are registered relative to it (default: each PATH's directory, or PATH itself for a directory)")
	versionFlag := fs.Int("version", 0, "version (0 = latest)")
	id := fs.Int64("id", 0, "global schema id")
	set := fs.String("set", "", "compatibility mode to set (BACKWARD, FULL_TRANSITIVE, WIRE, ...)")
	token := fs.String("token", os.Getenv("PIPELINE_TOKEN"), "bearer token (env PIPELINE_TOKEN)")
	caFile := fs.String("ca-file", "", "CA bundle (PEM) that verifies an https:// server")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stderr, schemaUsage)
			return nil
		}
		return exitError(2)
	}
	httpClient, err := clientHTTP(*token, *caFile)
	if err != nil {
		return err
	}
	client := pipelinev1connect.NewSchemaServiceClient(httpClient, strings.TrimRight(*server, "/"))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	switch sub {
	case "register", "check":
		if *subject == "" || *message == "" || fs.NArg() == 0 {
			fmt.Fprintf(stderr, "pipeline schema %s needs --subject, --message and at least one .proto file or directory\n", sub)
			return exitError(2)
		}
		files, err := readProtoFiles(*root, fs.Args())
		if err != nil {
			return err
		}
		if sub == "register" {
			resp, err := client.RegisterSchema(ctx, connect.NewRequest(&pipelinev1.RegisterSchemaRequest{Subject: *subject, Message: *message, Files: files}))
			if err != nil {
				return reportError(stderr, err)
			}
			fmt.Fprintf(stdout, "registered %s version %d (schema id %d)\n", *subject, resp.Msg.GetVersion(), resp.Msg.GetSchemaId())
			return nil
		}
		resp, err := client.CheckCompatibility(ctx, connect.NewRequest(&pipelinev1.CheckCompatibilityRequest{Subject: *subject, Message: *message, Files: files}))
		if err != nil {
			return reportError(stderr, err)
		}
		if resp.Msg.GetCompatible() {
			fmt.Fprintf(stdout, "compatible with %s\n", *subject)
			return nil
		}
		fmt.Fprintf(stdout, "NOT compatible with %s:\n", *subject)
		printViolations(stdout, resp.Msg.GetViolations())
		return exitError(1)
	case "get":
		resp, err := client.GetSchema(ctx, connect.NewRequest(&pipelinev1.GetSchemaRequest{Subject: *subject, Version: int32(*versionFlag), SchemaId: *id}))
		if err != nil {
			return reportError(stderr, err)
		}
		sc := resp.Msg.GetSchema()
		fmt.Fprintf(stdout, "# subject %s version %d, schema id %d, message %s\n", sc.GetSubject(), sc.GetVersion(), sc.GetSchemaId(), sc.GetMessage())
		for _, f := range sc.GetFiles() {
			fmt.Fprintf(stdout, "\n# file %s\n%s\n", f.GetPath(), f.GetContent())
		}
		return nil
	case "list":
		resp, err := client.ListSubjects(ctx, connect.NewRequest(&pipelinev1.ListSubjectsRequest{}))
		if err != nil {
			return reportError(stderr, err)
		}
		for _, s := range resp.Msg.GetSubjects() {
			fmt.Fprintf(stdout, "%s\tversion %d\tschema id %d\t%s\t%s\n", s.GetName(), s.GetLatestVersion(), s.GetLatestSchemaId(), s.GetMessage(), strings.TrimPrefix(s.GetCompatibility().String(), "COMPATIBILITY_"))
		}
		return nil
	case "config":
		if *subject == "" {
			fmt.Fprintln(stderr, "pipeline schema config needs --subject")
			return exitError(2)
		}
		if *set == "" {
			resp, err := client.GetSubjectConfig(ctx, connect.NewRequest(&pipelinev1.GetSubjectConfigRequest{Subject: *subject}))
			if err != nil {
				return reportError(stderr, err)
			}
			fmt.Fprintln(stdout, strings.TrimPrefix(resp.Msg.GetCompatibility().String(), "COMPATIBILITY_"))
			return nil
		}
		mode, ok := pipelinev1.Compatibility_value["COMPATIBILITY_"+strings.ToUpper(*set)]
		if !ok || mode == 0 {
			fmt.Fprintf(stderr, "unknown compatibility mode %q\n", *set)
			return exitError(2)
		}
		if _, err := client.UpdateSubjectConfig(ctx, connect.NewRequest(&pipelinev1.UpdateSubjectConfigRequest{Subject: *subject, Compatibility: pipelinev1.Compatibility(mode)})); err != nil {
			return reportError(stderr, err)
		}
		fmt.Fprintf(stdout, "%s: %s\n", *subject, strings.ToUpper(*set))
		return nil
	default:
		fmt.Fprintf(stderr, "pipeline schema: unknown command %q\n\n%s", sub, schemaUsage)
		return exitError(2)
	}
}

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

// reportError prints a server error with its details; breaking changes
// exit 1, everything else 2.
func reportError(w io.Writer, err error) error {
	var cerr *connect.Error
	if !errors.As(err, &cerr) {
		return err
	}
	fmt.Fprintf(w, "error: %s: %s\n", cerr.Code(), cerr.Message())
	code := 2
	for _, d := range cerr.Details() {
		v, derr := d.Value()
		if derr != nil {
			continue
		}
		switch detail := v.(type) {
		case *pipelinev1.CompatibilityError:
			printViolations(w, detail.GetViolations())
			code = 1
		case *pipelinev1.CompileError:
			for _, p := range detail.GetProblems() {
				fmt.Fprintf(w, "  %s:%d:%d: %s\n", p.GetFile(), p.GetLine(), p.GetColumn(), p.GetMessage())
			}
		}
	}
	return exitError(code)
}

func printViolations(w io.Writer, vs []*pipelinev1.Violation) {
	for _, v := range vs {
		fmt.Fprintf(w, "  %s  %s  (%s, against version %d)\n", v.GetRule(), v.GetMessage(), v.GetLocation(), v.GetAgainstVersion())
	}
}
