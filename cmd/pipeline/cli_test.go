package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/schemagate/pipeline/internal/pipeline"
)

// cliCase is one command line and what its answer must (and must not) say.
type cliCase struct {
	name    string
	args    []string
	code    int
	want    []string // in stdout+stderr
	notWant []string
	stdin   string
}

func runCases(t *testing.T, cases []cliCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.stdin != "" {
				// The commands read os.Stdin through cobra; give it a file.
				f := filepath.Join(t.TempDir(), "stdin")
				writeFile(t, f, tc.stdin)
				in, err := os.Open(f)
				if err != nil {
					t.Fatal(err)
				}
				defer in.Close()
				old := os.Stdin
				os.Stdin = in
				defer func() { os.Stdin = old }()
			}
			code, stdout, stderr := runCLI(t, tc.args...)
			out := stdout + stderr
			if code != tc.code {
				t.Errorf("pipeline %s: exit %d, want %d\n%s", strings.Join(tc.args, " "), code, tc.code, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("pipeline %s: output lacks %q\n%s", strings.Join(tc.args, " "), w, out)
				}
			}
			for _, w := range tc.notWant {
				if strings.Contains(out, w) {
					t.Errorf("pipeline %s: output has %q\n%s", strings.Join(tc.args, " "), w, out)
				}
			}
		})
	}
}

// TestCLIDefects: each defect issue 19 found in the hand-rolled commands,
// against a real server on the embedded defaults.
func TestCLIDefects(t *testing.T) {
	dataDir := t.TempDir()
	cfg, err := pipeline.LoadConfig("", func(c *pipeline.Config) { c.DataDir = dataDir })
	if err != nil {
		t.Fatal(err)
	}
	base := startPipeline(t, cfg)
	dir := t.TempDir()
	badConfig := filepath.Join(dir, "bad.yaml")
	writeFile(t, badConfig, "bus:\n  kind: pulsar\n  url: http://127.0.0.1:8080\n  admin_url: http://127.0.0.1:8080\n")
	noCert := filepath.Join(dir, "tls.yaml")
	writeFile(t, noCert, "tls: {cert_file: "+filepath.Join(dir, "none.pem")+", key_file: "+filepath.Join(dir, "none-key.pem")+"}\n")
	writeFile(t, filepath.Join(dir, "shop/v1/money.proto"), "syntax = \"proto3\";\npackage shop.v1;\nmessage Money { string currency = 1; int64 units = 2; }\n")
	writeFile(t, filepath.Join(dir, "shop/v1/order.proto"), strings.Replace(orderProto, `import "buf/validate/validate.proto";`, "import \"buf/validate/validate.proto\";\nimport \"shop/v1/money.proto\";", 1))
	s := "--server=" + base
	runCases(t, []cliCase{
		{name: "schema -h is the schema help", args: []string{"schema", "-h"}, code: 0, want: []string{"register", "versions", "Exit codes:"}, notWant: []string{`unknown command "-h"`}},
		{name: "a subcommand's help lists its flags only", args: []string{"schema", "get", "-h"}, code: 0,
			want: []string{"--subject", "--version", "--id", "--server"}, notWant: []string{"--message", "--root", "--set", "--permanent"}},
		{name: "help serve is serve's help", args: []string{"help", "serve"}, code: 0, want: []string{"--data-dir", "--insecure-no-auth", "PIPELINE_CONFIG"}, notWant: []string{"Available Commands"}},
		{name: "--version", args: []string{"--version"}, code: 0, want: []string{"pipeline " + pipeline.Version}},
		{name: "version", args: []string{"version"}, code: 0, want: []string{"pipeline " + pipeline.Version}},
		{name: "flags after the positional path", args: []string{"schema", "register", dir, "--subject", "orders", "--message", "shop.v1.OrderCreated", s}, code: 0, want: []string{"registered orders version 1"}},
		{name: "an unknown mode lists the modes", args: []string{"schema", "config", s, "--subject", "orders", "--set", "STRICT"}, code: 2,
			want: []string{`unknown compatibility mode "STRICT": use one of NONE, BACKWARD, BACKWARD_TRANSITIVE, FORWARD, FORWARD_TRANSITIVE, FULL, FULL_TRANSITIVE, WIRE, WIRE_TRANSITIVE, WIRE_JSON, WIRE_JSON_TRANSITIVE`}},
		{name: "the mode of a subject that does not exist", args: []string{"schema", "config", s, "--subject", "nosuch"}, code: 3, want: []string{"not_found", "nosuch"}, notWant: []string{"BACKWARD"}},
		{name: "the global default mode", args: []string{"schema", "config", s}, code: 0, want: []string{"BACKWARD"}},
		{name: "not found once", args: []string{"schema", "get", s, "--subject", "nope"}, code: 3, want: []string{`error (not_found): subject "nope" has no schema`}, notWant: []string{"not found: "}},
		{name: "one file instead of the import root", args: []string{"schema", "check", s, "--subject", "orders", "--message", "shop.v1.OrderCreated", filepath.Join(dir, "shop/v1/order.proto")}, code: 1,
			want: []string{`could not resolve path "shop/v1/money.proto"`, "hint:", "--root " + dir}, notWant: []string{":0:0:"}},
		{name: "an unknown subcommand", args: []string{"schema", "regster"}, code: 2, want: []string{`unknown command "regster"`, "did you mean register?"}},
		{name: "an unknown flag", args: []string{"schema", "list", "--sever", base}, code: 2, want: []string{"unknown flag: --sever"}},
		{name: "a missing flag", args: []string{"schema", "versions", s}, code: 2, want: []string{"needs --subject"}},
		{name: "nobody serving", args: []string{"schema", "list", "--server", "http://127.0.0.1:1"}, code: 3, want: []string{"unavailable", "is a pipeline serving at http://127.0.0.1:1?"}},
		{name: "serve refuses a Pulsar URL over http", args: []string{"serve", "--config", badConfig, "--addr", "127.0.0.1:0", "--data-dir", t.TempDir()}, code: 1,
			want: []string{"a Pulsar service URL is pulsar://host:6650"}, notWant: []string{"serving on", "WARN"}},
		{name: "serve without its certificate says so first", args: []string{"serve", "--config", noCert, "--addr", "127.0.0.1:0", "--data-dir", t.TempDir()}, code: 3,
			want: []string{"tls: ", "none.pem"}, notWant: []string{"serving on", "WARN"}},
		{name: "a second serve on a held data directory", args: []string{"serve", "--addr", "127.0.0.1:0", "--data-dir", dataDir}, code: 3,
			want: []string{"the data directory " + dataDir + " is in use: process"}, notWant: []string{"serving on", "WARN"}},
		{name: "shell completion", args: []string{"completion", "bash"}, code: 0, want: []string{"bash completion V2 for pipeline"}},
	})
}

// TestCLICommands: the commands an operator reaches for, each in its table
// and JSON form, against a real server on the embedded defaults.
func TestCLICommands(t *testing.T) {
	cfg, err := pipeline.LoadConfig("", func(c *pipeline.Config) { c.DataDir = t.TempDir() })
	if err != nil {
		t.Fatal(err)
	}
	base := startPipeline(t, cfg)
	t.Setenv("PIPELINE_SERVER", base) // the variable names the server
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "shop/v1/order.proto"), orderProto)
	if code, out := runSchema(t, "register", "--subject", "orders", "--message", "shop.v1.OrderCreated", dir); code != 0 {
		t.Fatalf("register: exit %d\n%s", code, out)
	}
	writeFile(t, filepath.Join(dir, "shop/v1/order.proto"), strings.Replace(orderProto, "string country = 3;", "string country = 3;\n  string note = 4;", 1))
	if code, out := runSchema(t, "register", "--subject", "orders", "--message", "shop.v1.OrderCreated", dir); code != 0 {
		t.Fatalf("register v2: exit %d\n%s", code, out)
	}
	good := filepath.Join(dir, "good.json")
	writeFile(t, good, `{"orderId": "o-1", "amountCents": "12500", "country": "DE"}`)
	bad := filepath.Join(dir, "bad.json")
	writeFile(t, bad, `{"orderId": "", "amountCents": "-1"}`)
	goodConfig := filepath.Join(dir, "good.yaml")
	writeFile(t, goodConfig, "bus:\n  retention: 24h\n")
	badConfig := filepath.Join(dir, "bad.yaml")
	writeFile(t, badConfig, "registery:\n  url: sqlite://x.db\nhttp:\n  read_timeout: 5\n")
	noCertConfig := filepath.Join(dir, "tls.yaml")
	writeFile(t, noCertConfig, "tls: {cert_file: "+filepath.Join(dir, "none.pem")+", key_file: "+filepath.Join(dir, "none-key.pem")+"}\n")
	// order_id "o-3" (field 1), amount_cents 5 (field 2), as Protobuf.
	binaryEvent := filepath.Join(dir, "event.bin")
	writeFile(t, binaryEvent, "\x0a\x03o-3\x10\x05")

	runCases(t, []cliCase{
		{name: "schema list", args: []string{"schema", "list"}, code: 0, want: []string{"SUBJECT", "orders", "shop.v1.OrderCreated"}},
		{name: "schema versions", args: []string{"schema", "versions", "--subject", "orders"}, code: 0, want: []string{"VERSION  SCHEMA ID  CREATED", "false"}},
		{name: "schema delete", args: []string{"schema", "delete", "--subject", "orders", "--version", "2"}, code: 0, want: []string{"soft-deleted orders version 2"}},
		{name: "schema versions --deleted", args: []string{"schema", "versions", "--subject", "orders", "--deleted", "-o", "json"}, code: 0, want: []string{`"deleted": true`}},
		{name: "route create", args: []string{"route", "create", "--name", "big", "--subject", "orders", "--topic", "orders-big", "--filter", "event.amount_cents > 10000", "--key", "country"}, code: 0,
			want: []string{"created route big: orders -> events.orders-big", "read by: sink-default"}},
		{name: "route create with a bad filter", args: []string{"route", "create", "--name", "b2", "--subject", "orders", "--topic", "x", "--filter", "event.nope > 1"}, code: 3, want: []string{"invalid_argument", "nope"}},
		{name: "route list", args: []string{"route", "list"}, code: 0, want: []string{"NAME", "big", "events.orders-big", "event.amount_cents > 10000", "country"}},
		{name: "event check of a valid event", args: []string{"event", "check", "--subject", "orders", good}, code: 0,
			want: []string{"valid: orders schema id 1 (version 1)", "events.orders", "events.orders-big", "DE"}},
		{name: "event check of an invalid event", args: []string{"event", "check", bad, "--subject", "orders"}, code: 1,
			want: []string{"error (invalid_argument)", "order_id: ", "[string.min_len]", "amount_cents: ", "[int64.gte]"}},
		{name: "event check as JSON", args: []string{"event", "check", "--subject", "orders", "-o", "json", good}, code: 0, want: []string{`"topic": "events.orders-big"`}},
		{name: "event publish from stdin", args: []string{"event", "publish", "--subject", "orders", "--id", "cli-1", "--header", "source=cli"}, stdin: `{"orderId": "o-2", "amountCents": "5"}`, code: 0,
			want: []string{"published event cli-1 (schema id 1) to events.orders"}},
		{name: "event publish refused", args: []string{"event", "publish", "--subject", "orders", bad}, code: 1, want: []string{"[string.min_len]"}},
		{name: "event publish of an empty file", args: []string{"event", "publish", "--subject", "orders", "-"}, stdin: " ", code: 2, want: []string{"is empty"}},
		{name: "sink list", args: []string{"sink", "list"}, code: 0, want: []string{"NAME", "default", "sqlite", "all topics"}},
		{name: "route delete", args: []string{"route", "delete", "big"}, code: 0, want: []string{"deleted route big"}},
		{name: "route delete of no route", args: []string{"route", "delete", "big"}, code: 3, want: []string{"not_found"}},
		{name: "a bad -o", args: []string{"route", "list", "-o", "yaml"}, code: 2, want: []string{`-o "yaml": use table or json`}},
		{name: "config check of a good file", args: []string{"config", "check", goodConfig}, code: 0, want: []string{"ok (addr 127.0.0.1:7400, bus jetstream"}},
		{name: "config check of a bad file", args: []string{"config", "check", badConfig}, code: 1,
			want: []string{`unknown key "registery" at the top level: did you mean "registry"?`, "http.read_timeout: 5 has no unit"}, notWant: []string{"pipeline.Config", "time.Duration"}},
		{name: "config check of a file naming a missing certificate", args: []string{"config", "check", noCertConfig}, code: 1, want: []string{"tls.cert_file: open ", "tls.key_file: open "}},
		{name: "schema get --id", args: []string{"schema", "get", "--id", "1"}, code: 0, want: []string{"# schema id 1, message shop.v1.OrderCreated", "# file shop/v1/order.proto"}},
		{name: "validation compatibility", args: []string{"schema", "config", "--subject", "orders", "--validation", "producer"}, code: 0, want: []string{"orders: BACKWARD, validation PRODUCER"}},
		{name: "event publish --binary", args: []string{"event", "publish", "--subject", "orders", "--binary", binaryEvent, "-o", "json"}, code: 0, want: []string{`"eventId": "`, `"topics": [`}},
		{name: "config check without a file", args: []string{"config", "check"}, code: 2, want: []string{"needs a config FILE"}},
	})

	// -o json on every listing command is the API's JSON.
	for _, args := range [][]string{{"schema", "list"}, {"schema", "versions", "--subject", "orders"}, {"route", "list"}, {"sink", "list"}} {
		code, out, errs := runCLI(t, append(args, "-o", "json")...)
		var v map[string]any
		if code != 0 || json.Unmarshal([]byte(out), &v) != nil || len(v) == 0 && args[0] != "route" {
			t.Errorf("%v -o json: exit %d, not a JSON object:\n%s%s", args, code, out, errs)
		}
	}
	if _, out, _ := runCLI(t, "sink", "list", "-o", "json"); !regexp.MustCompile(`"name": "default"`).MatchString(out) {
		t.Errorf("sink list -o json:\n%s", out)
	}
}
