package deploy

import (
	"bufio"
	"bytes"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// The configuration-consistency check of issue 6: the environment variables
// the code reads versus config/README.md, both ways, and .env.template.
//
// What counts as "the code reads NAME" (Go sources of every module, parsed):
//   - os.Getenv / os.LookupEnv with a string literal or a string constant;
//   - in a package named config (the services' loaders, e.g.
//     services/llm-api/internal/config) or a file importing pkg/envconf,
//     any call whose first argument is a
//     VARIABLE_NAME-like literal (l.str("LISTEN_ADDR", …)); when the called
//     function's name contains "secret", NAME_FILE is read too (the loaders'
//     *_FILE convention);
//   - string constants named Env*/Var* (the test helpers' variable names).
// Scripts (scripts/*.sh, compose/*.sh, docker/*.sh) read or print a variable
// when its name appears in them.
//
// Test-only variables (EDGEGUARD_TEST_*, CI, anything only tests read) and
// the operating system's (XDG_*, …) are not configuration.

type envRead struct {
	prod bool // read by non-test code
	at   string
}

var envLike = regexp.MustCompile(`^[A-Z][A-Z0-9]*(_[A-Z0-9]+)+$|^(STRICT|CI)$`)

func isTestOnlyVar(name string) bool {
	return name == "CI" || strings.HasPrefix(name, "EDGEGUARD_TEST_")
}

// systemVars belong to the operating system or the desktop session, not to
// edgeguard's configuration (the CLI's keyring access reads some).
var systemVars = regexp.MustCompile(`^(HOME|PATH|TMPDIR|USER|LANG|TERM|NO_COLOR|XDG_[A-Z_]+|DBUS_SESSION_BUS_ADDRESS|DISPLAY|WAYLAND_DISPLAY)$`)

// codeEnvReads scans the Go sources of the repository.
func codeEnvReads(t *testing.T) map[string]envRead {
	t.Helper()
	out := map[string]envRead{}
	add := func(name, at string, prod bool) {
		if !envLike.MatchString(name) {
			return
		}
		if r, ok := out[name]; !ok || (prod && !r.prod) {
			out[name] = envRead{prod: prod, at: at}
		}
	}
	skip := map[string]bool{".git": true, ".tmp": true, ".cache": true, "bin": true, "node_modules": true, "testdata": true, ".dev": true}
	dirs := map[string][]string{}
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && skip[d.Name()] {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(p, ".go") {
			dirs[filepath.Dir(p)] = append(dirs[filepath.Dir(p)], p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, files := range dirs {
		parsed := map[string]*ast.File{}
		consts := map[string]string{}
		for _, f := range files {
			af, err := parser.ParseFile(fset, f, nil, parser.SkipObjectResolution)
			if err != nil {
				// Its own module's build reports it; here it may be a file
				// someone is writing at this moment.
				t.Logf("skipped, does not parse: %v", err)
				continue
			}
			parsed[f] = af
			for _, decl := range af.Decls {
				gd, ok := decl.(*ast.GenDecl)
				if !ok || gd.Tok != token.CONST {
					continue
				}
				for _, spec := range gd.Specs {
					vs := spec.(*ast.ValueSpec)
					for i, n := range vs.Names {
						if i < len(vs.Values) {
							if v, ok := stringLit(vs.Values[i]); ok {
								consts[n.Name] = v
							}
						}
					}
				}
			}
		}
		for f, af := range parsed {
			rel, _ := filepath.Rel(root, f)
			rel = filepath.ToSlash(rel)
			prod := !strings.HasSuffix(f, "_test.go") && !strings.HasPrefix(rel, "tests/") &&
				!strings.HasSuffix(af.Name.Name, "test") && af.Name.Name != "testenv"
			isConfig := af.Name.Name == "config" || af.Name.Name == "envconf" // envconf.Service reads the shared ones
			for _, imp := range af.Imports {
				isConfig = isConfig || strings.HasSuffix(imp.Path.Value, `/pkg/envconf"`)
			}
			for _, decl := range af.Decls {
				gd, ok := decl.(*ast.GenDecl)
				if !ok || gd.Tok != token.CONST {
					continue
				}
				for _, spec := range gd.Specs {
					for _, n := range spec.(*ast.ValueSpec).Names {
						name := n.Name
						if (strings.HasPrefix(name, "Env") || strings.HasPrefix(name, "Var")) && len(name) > 3 && name[3] >= 'A' && name[3] <= 'Z' {
							add(consts[name], rel, prod)
						}
					}
				}
			}
			ast.Inspect(af, func(n ast.Node) bool {
				call, ok := n.(*ast.CallExpr)
				if !ok || len(call.Args) == 0 {
					return true
				}
				arg, ok := stringLit(call.Args[0])
				if !ok {
					if id, isID := call.Args[0].(*ast.Ident); isID {
						arg, ok = consts[id.Name]
					}
				}
				if !ok {
					return true
				}
				callee := ""
				switch fn := call.Fun.(type) {
				case *ast.SelectorExpr:
					callee = fn.Sel.Name
					if x, isID := fn.X.(*ast.Ident); isID && x.Name == "t" {
						return true // t.Setenv and friends set, not read
					}
				case *ast.Ident:
					callee = fn.Name
				}
				switch {
				case callee == "Getenv" || callee == "LookupEnv":
					add(arg, rel, prod)
				case isConfig && envLike.MatchString(arg):
					add(arg, rel, prod)
					if strings.Contains(strings.ToLower(callee), "secret") {
						add(arg+"_FILE", rel, prod)
					}
				}
				return true
			})
		}
	}
	return out
}

func stringLit(e ast.Expr) (string, bool) {
	bl, ok := e.(*ast.BasicLit)
	if !ok || bl.Kind != token.STRING {
		return "", false
	}
	v, err := strconv.Unquote(bl.Value)
	return v, err == nil
}

type docVar struct {
	section string // the heading path, e.g. "Services / services/llm-api"
	primary bool   // the first name of its row
}

// readmeVars returns the variables of config/README.md's tables (first
// column, back-quoted), with their section.
func readmeVars(t *testing.T) map[string][]docVar {
	t.Helper()
	out := map[string][]docVar{}
	var h2, h3 string
	tick := regexp.MustCompile("`([A-Z][A-Z0-9_]*\\*?[A-Z0-9_]*)`")
	sc := bufio.NewScanner(bytes.NewReader(repoFile(t, "config/README.md")))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "## "):
			h2, h3 = strings.TrimPrefix(line, "## "), ""
		case strings.HasPrefix(line, "### "):
			h3 = strings.TrimPrefix(line, "### ")
		case strings.HasPrefix(line, "|") && !strings.HasPrefix(line, "|---") && !strings.HasPrefix(line, "| variable"):
			cells := strings.Split(line, "|")
			if len(cells) < 3 {
				continue
			}
			section := h2
			if h3 != "" {
				section += " / " + h3
			}
			for i, mm := range tick.FindAllStringSubmatch(cells[1], -1) {
				out[mm[1]] = append(out[mm[1]], docVar{section, i == 0})
			}
		}
	}
	if len(out) == 0 {
		t.Fatal("config/README.md documents no variable")
	}
	return out
}

func sectionKind(section string) string {
	switch {
	case strings.Contains(section, "Test-only"):
		return "test"
	case strings.Contains(section, "third party"):
		return "thirdparty"
	case strings.HasPrefix(section, "Services"):
		return "service"
	}
	return "other"
}

func documentedIn(docs []docVar, kinds ...string) bool {
	for _, d := range docs {
		if slices.Contains(kinds, sectionKind(d.section)) {
			return true
		}
	}
	return false
}

// scriptText is every shell script that reads or prints variables.
func scriptText(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	for _, glob := range []string{"scripts/*.sh", "compose/*.sh", "docker/*.sh"} {
		files, _ := filepath.Glob(filepath.Join(root, glob))
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			b.Write(data)
		}
	}
	return b.String()
}

func TestEveryVariableTheCodeReadsIsDocumented(t *testing.T) {
	reads := codeEnvReads(t)
	docs := readmeVars(t)
	if _, ok := reads["LISTEN_ADDR"]; !ok {
		t.Fatal("the scan found no LISTEN_ADDR: the config loader pattern changed, update this test")
	}
	for name, r := range reads {
		if isTestOnlyVar(name) || systemVars.MatchString(name) {
			continue
		}
		d, ok := docs[name]
		switch {
		case !ok && !r.prod:
			// Read by tests only: not configuration. Documenting it in the
			// test-only table is welcome but not required.
		case !ok:
			t.Errorf("%s (read by %s) is not in config/README.md: add a row to its service's table (and to .env.template; secrets as %s_FILE)", name, r.at, strings.TrimSuffix(name, "_FILE"))
		case r.prod && !documentedIn(d, "service", "other"):
			t.Errorf("%s is read by %s (not a test) but config/README.md lists it only as test-only or third-party", name, r.at)
		}
	}
}

func TestEveryDocumentedVariableIsRead(t *testing.T) {
	reads := codeEnvReads(t)
	scripts := scriptText(t)
	inScripts := func(name string) bool {
		return regexp.MustCompile(`\b` + regexp.QuoteMeta(name) + `\b`).MatchString(scripts)
	}
	for name, docs := range readmeVars(t) {
		if strings.Contains(name, "*") || systemVars.MatchString(name) {
			continue // a pattern (KC_*) for a third party; the OS's (read by Go's standard library)
		}
		for _, d := range docs {
			switch sectionKind(d.section) {
			case "service":
				if r, ok := reads[name]; !ok || !r.prod {
					t.Errorf("config/README.md (%s) documents %s, which no service code reads", d.section, name)
				}
			case "other":
				if _, ok := reads[name]; !ok && !inScripts(name) {
					t.Errorf("config/README.md (%s) documents %s, which neither code nor scripts read or print", d.section, name)
				}
			case "thirdparty":
				if r, ok := reads[name]; ok && r.prod {
					t.Errorf("config/README.md lists %s as third-party, but %s reads it", name, r.at)
				}
			case "test":
				if _, ok := reads[name]; !ok && !inScripts(name) {
					t.Errorf("config/README.md lists test-only %s, which nothing reads", name)
				}
			}
		}
	}
}

// TestEnvTemplateMatchesReadme: .env.template sets only documented
// variables, never a secret value, and lists every service variable (a
// secret in its *_FILE form).
func TestEnvTemplateMatchesReadme(t *testing.T) {
	docs := readmeVars(t)
	set := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(repoFile(t, ".env.template")))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Errorf(".env.template:%d: not NAME=value", n)
			continue
		}
		set[k] = true
		if _, ok := docs[k]; !ok {
			t.Errorf(".env.template:%d: %s is not in config/README.md", n, k)
		}
		if !strings.HasSuffix(k, "_FILE") && secretName.MatchString(k) && v != "" {
			t.Errorf(".env.template:%d: %s has a value; secrets are files (%s_FILE)", n, k, k)
		}
	}
	for name, ds := range docs {
		for _, d := range ds {
			if sectionKind(d.section) == "service" && d.primary && !set[name] {
				t.Errorf("config/README.md (%s) documents %s; .env.template does not list it", d.section, name)
			}
		}
	}
}

// pendingServiceVars are set by compose/ and k8s/ for services whose code is
// still being written (issue 6: the edge identity, media-api, mcp-tools);
// each moves into config/README.md with the change that reads it. Listed
// here so that any other undocumented name fails.
var pendingServiceVars = []string{"EDGE_IDENTITY_JWKS_FILE", "MEDIA_MAX_BYTES", "SANDBOX_FUSION_REQUIRE_APPROVAL"}

// TestDeploymentsSetOnlyDocumentedServiceVariables: what compose and k8s
// give our services is configuration config/README.md knows.
func TestDeploymentsSetOnlyDocumentedServiceVariables(t *testing.T) {
	docs := readmeVars(t)
	ours := []string{"llm-api", "media-api", "mcp-tools"}
	check := func(where, name string) {
		if _, ok := docs[name]; ok {
			return
		}
		if slices.Contains(pendingServiceVars, name) {
			t.Logf("%s sets %s, not yet in config/README.md (pending: its service is in progress)", where, name)
			return
		}
		t.Errorf("%s sets %s, which config/README.md does not document", where, name)
	}
	for name, svc := range composeServices(t) {
		if slices.Contains(ours, name) {
			for k := range env(t, svc) {
				check("compose "+name, k)
			}
		}
	}
	for _, w := range byKind(k8sBase(t), "Deployment") {
		if slices.Contains(ours, w.name()) {
			for _, c := range containers(w) {
				for _, e := range l(c["env"]) {
					check("k8s "+w.name(), s(m(e)["name"]))
				}
			}
		}
	}
}
