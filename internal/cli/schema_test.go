package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	invopop "github.com/invopop/jsonschema"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/ks-clean/ks-clean/api"
	"github.com/ks-clean/ks-clean/reinstall"
	"github.com/ks-clean/ks-clean/restore"
	"github.com/ks-clean/ks-clean/scan"
	"github.com/ks-clean/ks-clean/tenancy"
	"github.com/ks-clean/ks-clean/uninstall"
)

// The JSON contract: every machine-readable output has a JSON Schema in
// docs/schema, generated from the Go type that is marshalled (one source of
// truth). TestSchemasUpToDate fails when a type changes and the file does
// not; KS_UPDATE_SCHEMAS=1 rewrites the files. validateDocument lets any
// test check a real output against its schema.

// schemaDir is docs/schema, relative to this package.
const schemaDir = "../../docs/schema"

// schemaIDBase prefixes each schema's $id (a stable name, not a location
// the tools fetch).
const schemaIDBase = "https://ks-clean.github.io/schema/"

// schemaDocument is one machine-readable output.
type schemaDocument struct {
	// Kind is the document's kind field.
	Kind string
	// Type is a zero value of the Go type that is marshalled.
	Type any
	// PrintedBy says which commands print it.
	PrintedBy string
}

var schemaDocuments = []schemaDocument{
	{"Version", versionInfo{}, "`ks-clean version -o json`"},
	{scan.KindReport, scan.ReportJSON{}, "`ks-clean scan -o json`"},
	{api.KindPlan, api.Plan{}, "`ks-clean plan` (the plan file it writes, and `ks-clean plan -o json`); `ks-clean apply` and `ks-clean reinstall` read it"},
	{uninstall.KindResult, uninstall.Result{}, "`ks-clean apply -o json`"},
	{reinstall.KindResult, reinstall.Result{}, "`ks-clean reinstall -o json`"},
	{api.KindRestorePlan, api.RestorePlan{}, "`ks-clean restore` (the plan it saves as BACKUP/restore-plan.json)"},
	{restore.KindResult, restore.Result{}, "`ks-clean restore -o json`"},
	{api.KindTenancy, api.Tenancy{}, "`ks-clean tenancy export` (and `reinstall --keep-tenancy`, beside its plan); `ks-clean tenancy import` reads it"},
	{tenancy.KindImportResult, tenancy.ImportResult{}, "`ks-clean tenancy import -o json`"},
}

// schemaFile is the file name of a kind's schema: ScanReport is
// scan-report.schema.json.
func schemaFile(kind string) string {
	var b strings.Builder
	for i, r := range kind {
		if r >= 'A' && r <= 'Z' {
			if i > 0 {
				b.WriteByte('-')
			}
			r += 'a' - 'A'
		}
		b.WriteRune(r)
	}
	return b.String() + ".schema.json"
}

// schemaTypeNames are the definition names of types whose Go name would
// be ambiguous or says nothing outside Go (two packages have a Result).
var schemaTypeNames = map[reflect.Type]string{
	reflect.TypeOf(versionInfo{}):          "Version",
	reflect.TypeOf(scan.ReportJSON{}):      scan.KindReport,
	reflect.TypeOf(uninstall.Result{}):     uninstall.KindResult,
	reflect.TypeOf(reinstall.Result{}):     reinstall.KindResult,
	reflect.TypeOf(restore.Result{}):       restore.KindResult,
	reflect.TypeOf(tenancy.ImportResult{}): tenancy.KindImportResult,
}

// goCommentDirs are the packages whose doc comments become descriptions,
// by import path and directory relative to this package.
var goCommentDirs = map[string]string{
	"github.com/ks-clean/ks-clean/api":       "../../api",
	"github.com/ks-clean/ks-clean/scan":      "../../scan",
	"github.com/ks-clean/ks-clean/uninstall": "../../uninstall",
	"github.com/ks-clean/ks-clean/reinstall": "../../reinstall",
	"github.com/ks-clean/ks-clean/restore":   "../../restore",
	"github.com/ks-clean/ks-clean/tenancy":   "../../tenancy",
}

// goComments maps "importpath.Type" and "importpath.Type.Field" to the
// doc comments of the packages in goCommentDirs.
func goComments() (map[string]string, error) {
	out := map[string]string{}
	for pkg, dir := range goCommentDirs {
		// AddGoComments keys by base joined with the directory walked;
		// with an empty base the key starts with dir, replaced here by
		// the import path.
		r := &invopop.Reflector{}
		if err := r.AddGoComments("", dir); err != nil {
			return nil, err
		}
		prefix := filepath.ToSlash(filepath.Clean(dir))
		for k, v := range r.CommentMap {
			if rest, ok := strings.CutPrefix(k, prefix); ok && v != "" {
				// One line: Go wraps comments, JSON readers don't.
				out[pkg+rest] = strings.Join(strings.Fields(v), " ")
			}
		}
	}
	return out, nil
}

// generateSchema reflects a document's Go type into its schema, as the
// file holds it: two-space indented, with a final newline.
func generateSchema(d schemaDocument, comments map[string]string) ([]byte, error) {
	names := map[string]reflect.Type{}
	var clash error
	r := &invopop.Reflector{
		ExpandedStruct: true,
		// Every non-omitempty field is required: the JSON always has it.
		RequiredFromJSONSchemaTags: false,
		CommentMap:                 comments,
		Namer: func(t reflect.Type) string {
			name, ok := schemaTypeNames[t]
			if !ok {
				name = t.Name()
			}
			if prev, seen := names[name]; name != "" && seen && prev != t && clash == nil {
				clash = fmt.Errorf("definition name %q is both %v and %v: add one to schemaTypeNames", name, prev, t)
			}
			names[name] = t
			return name
		},
		Mapper: func(t reflect.Type) *invopop.Schema {
			if t == reflect.TypeOf(api.Phase("")) {
				enum := make([]any, len(api.Phases))
				for i, p := range api.Phases {
					enum[i] = string(p)
				}
				return &invopop.Schema{Type: "string", Enum: enum}
			}
			if t == reflect.TypeOf(unstructured.Unstructured{}) {
				// A Kubernetes object, marshalled as itself.
				return &invopop.Schema{Type: "object", Required: []string{"apiVersion", "kind", "metadata"},
					Description: "A Kubernetes object (apiVersion, kind, metadata, and its own fields)."}
			}
			return nil
		},
	}
	s := r.Reflect(d.Type)
	if clash != nil {
		return nil, clash
	}
	s.ID = invopop.ID(schemaIDBase + schemaFile(d.Kind))
	s.Title = "ks-clean " + d.Kind
	s.Description = fmt.Sprintf("The %s document (apiVersion %s) printed by %s. `-o yaml` prints the same document as YAML. Generated from the Go type %v by internal/cli/schema_test.go.", d.Kind, api.APIVersion, d.PrintedBy, reflect.TypeOf(d.Type))
	if err := pinKind(s, d.Kind); err != nil {
		return nil, fmt.Errorf("%s: the Go type %T: %w", d.Kind, d.Type, err)
	}
	// A document nested in another (a reinstall's apply result) is pinned
	// too.
	for name, def := range s.Definitions {
		for _, other := range schemaDocuments {
			if other.Kind == name {
				if err := pinKind(def, name); err != nil {
					return nil, fmt.Errorf("%s: $defs/%s: %w", d.Kind, name, err)
				}
			}
		}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(s); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// pinKind makes a document's apiVersion and kind required constants.
func pinKind(s *invopop.Schema, kind string) error {
	for field, value := range map[string]string{"apiVersion": api.APIVersion, "kind": kind} {
		p, ok := s.Properties.Get(field)
		if !ok {
			return fmt.Errorf("no %s field", field)
		}
		p.Const = value
		if !containsString(s.Required, field) {
			return fmt.Errorf("%s is not required (omitempty?)", field)
		}
	}
	return nil
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func TestSchemasUpToDate(t *testing.T) {
	comments, err := goComments()
	if err != nil {
		t.Fatalf("reading the Go doc comments: %v", err)
	}
	update := os.Getenv("KS_UPDATE_SCHEMAS") == "1"
	for _, d := range schemaDocuments {
		path := filepath.Join(schemaDir, schemaFile(d.Kind))
		want, err := generateSchema(d, comments)
		if err != nil {
			t.Fatalf("%s: %v", d.Kind, err)
		}
		if update {
			if err := os.MkdirAll(schemaDir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, want, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Errorf("%s: %v; run KS_UPDATE_SCHEMAS=1 go test ./internal/cli -run TestSchemasUpToDate", d.Kind, err)
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s is out of date with the Go type %T (first difference at line %d); run KS_UPDATE_SCHEMAS=1 go test ./internal/cli -run TestSchemasUpToDate",
				path, d.Type, firstDifferentLine(got, want))
		}
	}
}

// firstDifferentLine is the 1-based number of the first line a and b
// differ on.
func firstDifferentLine(a, b []byte) int {
	al, bl := bytes.Split(a, []byte("\n")), bytes.Split(b, []byte("\n"))
	for i := 0; i < len(al) && i < len(bl); i++ {
		if !bytes.Equal(al[i], bl[i]) {
			return i + 1
		}
	}
	return min(len(al), len(bl)) + 1
}

// Compiled schemas, by kind.
var (
	compiledSchemasMu sync.Mutex
	compiledSchemas   = map[string]*jsonschema.Schema{}
)

// compiledSchema compiles docs/schema's file for a kind, once.
func compiledSchema(kind string) (*jsonschema.Schema, error) {
	compiledSchemasMu.Lock()
	defer compiledSchemasMu.Unlock()
	if s, ok := compiledSchemas[kind]; ok {
		return s, nil
	}
	known := false
	for _, d := range schemaDocuments {
		known = known || d.Kind == kind
	}
	if !known {
		return nil, fmt.Errorf("no schema for kind %q", kind)
	}
	path, err := filepath.Abs(filepath.Join(schemaDir, schemaFile(kind)))
	if err != nil {
		return nil, err
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat() // date-time is checked, not just an annotation
	s, err := c.Compile(path)
	if err != nil {
		return nil, fmt.Errorf("compiling %s: %w", path, err)
	}
	compiledSchemas[kind] = s
	return s, nil
}

// validate checks a JSON document against the schema of kind ("Version",
// "ScanReport", "Plan", "ApplyResult", "ReinstallResult").
func validate(kind string, doc []byte) error {
	s, err := compiledSchema(kind)
	if err != nil {
		return err
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		return fmt.Errorf("not JSON: %w", err)
	}
	return s.Validate(v)
}

// validateDocument fails the test unless doc (JSON, e.g. the stdout of
// `-o json`) is a valid document of kind ("Version", "ScanReport", "Plan",
// "ApplyResult", "ReinstallResult"); the error names the failing path.
func validateDocument(t *testing.T, kind string, doc []byte) {
	t.Helper()
	if err := validate(kind, doc); err != nil {
		t.Errorf("the %s document does not match %s: %#v\n%s", kind, filepath.Join("docs/schema", schemaFile(kind)), err, doc)
	}
}

func TestSchemasRejectWrongDocuments(t *testing.T) {
	for _, d := range schemaDocuments {
		// The zero value with apiVersion and kind set is the smallest
		// document the Go type marshals to; it must validate, or the
		// negatives below prove nothing.
		base := map[string]any{}
		b, err := json.Marshal(d.Type)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, &base); err != nil {
			t.Fatal(err)
		}
		// Arrays and maps that are null in a zero value are empty in
		// real output.
		for k, v := range base {
			if v == nil {
				base[k] = emptyOf(d.Type, k)
			}
		}
		base["apiVersion"], base["kind"] = api.APIVersion, d.Kind
		doc := func(edit func(map[string]any)) []byte {
			m := map[string]any{}
			for k, v := range base {
				m[k] = v
			}
			edit(m)
			b, err := json.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
		if err := validate(d.Kind, doc(func(map[string]any) {})); err != nil {
			t.Errorf("%s: the minimal document does not validate: %v", d.Kind, err)
		}
		for name, edit := range map[string]func(map[string]any){
			"without kind":         func(m map[string]any) { delete(m, "kind") },
			"with another kind":    func(m map[string]any) { m["kind"] = "Other" },
			"without apiVersion":   func(m map[string]any) { delete(m, "apiVersion") },
			"with a wrong version": func(m map[string]any) { m["apiVersion"] = "ks-clean/v0" },
			"with an unknown field": func(m map[string]any) {
				m["unknownField"] = true
			},
		} {
			if err := validate(d.Kind, doc(edit)); err == nil {
				t.Errorf("%s %s validates", d.Kind, name)
			}
		}
	}
	if err := validate("Nothing", []byte(`{}`)); err == nil {
		t.Error("a kind without a schema validates")
	}

	// A real document: version, run in-process.
	out, errOut, code := runCLI(t, "version", "-o", "json")
	if code != 0 {
		t.Fatalf("version -o json: exit %d, %s", code, errOut)
	}
	validateDocument(t, "Version", []byte(out))
	var v map[string]any
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatal(err)
	}
	v["go"] = 1
	b, _ := json.Marshal(v)
	if err := validate("Version", b); err == nil || !strings.Contains(err.Error(), "/go") {
		t.Errorf("a version whose go is a number: the error %v does not name /go", err)
	}
}

// emptyOf is an empty array or object, as the JSON field of t named field
// is one or the other.
func emptyOf(t any, field string) any {
	rt := reflect.TypeOf(t)
	for i := 0; i < rt.NumField(); i++ {
		f := rt.Field(i)
		if name, _, _ := strings.Cut(f.Tag.Get("json"), ","); name == field && f.Type.Kind() == reflect.Map {
			return map[string]any{}
		}
	}
	return []any{}
}
