package sdk_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// surface is everything package sdk exports at top level: the contract, settings
// decoding, Serve and Logger. A plugin author imports this and nothing of the host;
// growing it is an API decision (host machinery belongs in host or internal/).
var surface = []string{
	"BrokerHealth", "Constructor", "DecodeSettings", "Describer", "Descriptor",
	"ErrInvalidSettings", "ErrNoQueues", "HealthReporter", "HealthSeeder", "Logger",
	"MessageInfo", "NoSettings", "Observer", "Outcome", "OutcomeBrokerError",
	"OutcomeConnectFailure", "OutcomeKind", "OutcomeOK", "OutcomeOther",
	"OutcomeStoredNotOK", "OutcomeTimeout", "Queue", "Selection", "Selector", "Serve",
	"SettingError", "SettingKeys",
}

// TestExportedSurface: the package exports exactly surface (every build, wasip1 files
// included).
func TestExportedSurface(t *testing.T) {
	names, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	var got []string
	for _, name := range names {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			switch d := d.(type) {
			case *ast.FuncDecl:
				if d.Recv == nil && d.Name.IsExported() {
					got = append(got, d.Name.Name)
				}
			case *ast.GenDecl:
				for _, s := range d.Specs {
					switch s := s.(type) {
					case *ast.TypeSpec:
						if s.Name.IsExported() {
							got = append(got, s.Name.Name)
						}
					case *ast.ValueSpec:
						for _, n := range s.Names {
							if n.IsExported() {
								got = append(got, n.Name)
							}
						}
					}
				}
			}
		}
	}
	slices.Sort(got)
	got = slices.Compact(got)
	if !slices.Equal(got, surface) {
		t.Errorf("package sdk exports\n  %q\nwant\n  %q", got, surface)
	}
}
