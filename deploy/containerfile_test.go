package deploy

import (
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// instruction is one Containerfile instruction, continuation lines joined.
type instruction struct {
	line int    // 1-based line where it starts
	cmd  string // upper case: FROM, RUN, COPY, ...
	args string
}

// stage is one FROM and the instructions after it.
type stage struct {
	from  instruction
	name  string // the AS name, lower case; "" if none
	instr []instruction
}

func readContainerfile(t *testing.T) []stage {
	t.Helper()
	data, err := os.ReadFile("../Containerfile")
	if err != nil {
		t.Fatalf("the repository has no Containerfile: %v", err)
	}
	var (
		stages []stage
		cur    *instruction
	)
	add := func(in instruction) {
		if in.cmd == "FROM" {
			st := stage{from: in}
			f := strings.Fields(in.args)
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				st.name = strings.ToLower(f[2])
			}
			stages = append(stages, st)
			return
		}
		if len(stages) == 0 {
			if in.cmd != "ARG" {
				t.Errorf("Containerfile:%d: %s before the first FROM", in.line, in.cmd)
			}
			return
		}
		stages[len(stages)-1].instr = append(stages[len(stages)-1].instr, in)
	}
	for i, raw := range strings.Split(string(data), "\n") {
		line := strings.TrimSpace(raw)
		if strings.HasPrefix(line, "#") || (line == "" && cur == nil) {
			continue
		}
		cont := strings.HasSuffix(line, "\\")
		line = strings.TrimSpace(strings.TrimSuffix(line, "\\"))
		if cur == nil {
			cmd, args, _ := strings.Cut(line, " ")
			cur = &instruction{line: i + 1, cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args)}
		} else if line != "" {
			cur.args += " " + line
		}
		if !cont {
			add(*cur)
			cur = nil
		}
	}
	if cur != nil {
		t.Errorf("Containerfile:%d: ends inside a continued instruction", cur.line)
	}
	return stages
}

// execForm decodes an instruction's JSON array (exec form) arguments.
func execForm(t *testing.T, in instruction) []string {
	t.Helper()
	var out []string
	if err := json.Unmarshal([]byte(in.args), &out); err != nil {
		t.Errorf("Containerfile:%d: %s %s: use the exec form, a JSON array (no shell in the image, and signals reach the gateway)", in.line, in.cmd, in.args)
	}
	return out
}

var goBuildRE = regexp.MustCompile(`(?:^|&&\s*)((?:[A-Z_]+=\S*\s+)*)go build (.*)$`)

// buildCommand returns the environment assignments and arguments of the
// build stage's `go build` (after "go build"), and the instruction.
func buildCommand(t *testing.T, st stage) (env []string, args string, in instruction) {
	t.Helper()
	for _, in := range st.instr {
		if in.cmd != "RUN" {
			continue
		}
		if m := goBuildRE.FindStringSubmatch(in.args); m != nil {
			return strings.Fields(m[1]), m[2], in
		}
	}
	t.Fatalf("Containerfile: no RUN ... go build in stage %q", st.name)
	return nil, "", instruction{}
}

// TestContainerfile checks the image definition without a container engine:
// a build stage that caches modules and compiles a static, trimmed, stamped
// binary of ./cmd/maasgate, and a final stage that runs only that binary as
// a non-root user, on the gateway's port, with serve flags that exist and
// the config path the Kubernetes manifests mount.
func TestContainerfile(t *testing.T) {
	stages := readContainerfile(t)
	if len(stages) < 2 {
		t.Fatalf("Containerfile: %d stage(s); want a build stage and a runtime stage", len(stages))
	}
	build, final := stages[0], stages[len(stages)-1]
	if build.name == "" {
		t.Errorf("Containerfile:%d: name the build stage (FROM ... AS build)", build.from.line)
	}
	if !strings.Contains(build.from.args, "golang:") {
		t.Errorf("Containerfile:%d: build stage FROM %s: want a golang image", build.from.line, build.from.args)
	}
	if base := strings.Fields(final.from.args)[0]; base != "scratch" && !strings.Contains(base, "distroless/static") {
		t.Errorf("Containerfile:%d: final stage FROM %s: want distroless/static or scratch (small, no shell)", final.from.line, base)
	}

	// Build stage: go.mod and go.sum, then go mod download, then the
	// sources, then the build, so the module layer is cached.
	step := func(pred func(instruction) bool) int {
		return slices.IndexFunc(build.instr, pred)
	}
	copyMods := step(func(in instruction) bool {
		f := strings.Fields(in.args)
		return in.cmd == "COPY" && slices.Contains(f, "go.mod") && slices.Contains(f, "go.sum")
	})
	download := step(func(in instruction) bool { return in.cmd == "RUN" && strings.Contains(in.args, "go mod download") })
	copyAll := step(func(in instruction) bool { return in.cmd == "COPY" && strings.HasPrefix(in.args, ". ") })
	env, args, buildIn := buildCommand(t, build)
	buildAt := slices.IndexFunc(build.instr, func(in instruction) bool { return in == buildIn })
	if copyMods < 0 || download < 0 || copyAll < 0 || !(copyMods < download && download < copyAll && copyAll < buildAt) {
		t.Errorf("Containerfile: want COPY go.mod go.sum, RUN go mod download, COPY . ., RUN go build in that order (got positions %d, %d, %d, %d)", copyMods, download, copyAll, buildAt)
	}
	if !slices.Contains(env, "CGO_ENABLED=0") {
		t.Errorf("Containerfile:%d: go build without CGO_ENABLED=0: the binary would not be static", buildIn.line)
	}
	for _, want := range []string{"-trimpath", "-ldflags", "-s -w", "-X main.version=", " ./cmd/maasgate"} {
		if !strings.Contains(args, want) {
			t.Errorf("Containerfile:%d: go build %s: missing %q", buildIn.line, args, want)
		}
	}
	version, err := os.ReadFile(filepath.Join(cmdDir, "version.go"))
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^var version = "`).Match(version) {
		t.Error("cmd/maasgate/version.go: no `var version = \"...\"` for -X main.version to set")
	}
	out := regexp.MustCompile(`-o (\S+)`).FindStringSubmatch(args)
	if out == nil {
		t.Fatalf("Containerfile:%d: go build without -o", buildIn.line)
	}

	// Final stage: the binary from the build stage, non-root, the port,
	// exec-form ENTRYPOINT and CMD.
	var user, entry, cmd *instruction
	var exposed []string
	binary := ""
	for i, in := range final.instr {
		switch in.cmd {
		case "USER":
			user = &final.instr[i]
		case "ENTRYPOINT":
			entry = &final.instr[i]
		case "CMD":
			cmd = &final.instr[i]
		case "EXPOSE":
			exposed = append(exposed, strings.Fields(in.args)...)
		case "COPY":
			f := strings.Fields(in.args)
			if len(f) >= 3 && f[0] == "--from="+build.name && f[len(f)-2] == out[1] {
				binary = f[len(f)-1]
			}
		case "RUN":
			t.Errorf("Containerfile:%d: RUN in the final stage: it has no shell", in.line)
		}
	}
	if user == nil {
		t.Fatal("Containerfile: the final stage sets no USER: the gateway would run as root")
	}
	for _, id := range strings.Split(user.args, ":") {
		if n, err := strconv.Atoi(id); err != nil || n == 0 {
			t.Errorf("Containerfile:%d: USER %s: want numeric, non-zero user and group ids (Kubernetes checks runAsNonRoot on the number)", user.line, user.args)
		}
	}
	g := readGatewayFacts(t)
	port := mustUnquote(t, g.flagDefault["port"])
	if !slices.Contains(exposed, port) && !slices.Contains(exposed, port+"/tcp") {
		t.Errorf("Containerfile: EXPOSE %v: want the gateway's port %s", exposed, port)
	}
	if binary == "" {
		t.Errorf("Containerfile: the final stage does not COPY --from=%s %s", build.name, out[1])
	}
	if entry == nil || cmd == nil {
		t.Fatal("Containerfile: want ENTRYPOINT (the binary) and CMD (its default arguments)")
	}
	if e := execForm(t, *entry); !slices.Equal(e, []string{binary}) {
		t.Errorf("Containerfile:%d: ENTRYPOINT %q: want [%q]", entry.line, e, binary)
	}
	flags, err := serveArgs(g, execForm(t, *cmd))
	if err != nil {
		t.Fatalf("Containerfile:%d: CMD: %v", cmd.line, err)
	}
	// The image's default config path is where the manifests mount it.
	m := loadManifests(t)
	_, c := gatewayDeployment(t, m)
	depFlags, err := serveArgs(g, c.Args)
	if err != nil {
		t.Fatal(err)
	}
	if flags["config"] == "" || flags["config"] != depFlags["config"] {
		t.Errorf("Containerfile:%d: CMD --config %q, the Deployment's %q: keep them the same", cmd.line, flags["config"], depFlags["config"])
	}
}

// TestContainerignore checks that the build context keeps what the build
// needs (go.mod, go.sum, cmd/, internal/ with its embedded files) and leaves
// out the repository's history.
func TestContainerignore(t *testing.T) {
	data, err := os.ReadFile("../.containerignore")
	if err != nil {
		t.Skip("no .containerignore")
	}
	type pattern struct {
		re     *regexp.Regexp
		negate bool
		text   string
	}
	var pats []pattern
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		p := pattern{text: line}
		if p.negate = strings.HasPrefix(line, "!"); p.negate {
			line = line[1:]
		}
		p.re = globRE(strings.Trim(filepath.ToSlash(filepath.Clean(line)), "/"))
		pats = append(pats, p)
	}
	// excluded applies the patterns as Docker and Buildah do: paths from
	// the context root; a pattern matching a directory excludes what is in
	// it; the last matching pattern wins.
	excluded := func(p string) string {
		by := ""
		for _, pt := range pats {
			parts := strings.Split(p, "/")
			for i := range parts {
				if pt.re.MatchString(strings.Join(parts[:i+1], "/")) {
					if pt.negate {
						by = ""
					} else {
						by = pt.text
					}
					break
				}
			}
		}
		return by
	}
	needed := []string{"go.mod", "go.sum"}
	for _, dir := range []string{"cmd", "internal"} {
		err := filepath.WalkDir(filepath.Join("..", dir), func(p string, e fs.DirEntry, err error) error {
			if err == nil && !e.IsDir() {
				rel, _ := filepath.Rel("..", p)
				needed = append(needed, filepath.ToSlash(rel))
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	var lost []string
	for _, p := range needed {
		if by := excluded(p); by != "" && !strings.HasSuffix(p, "_test.go") {
			lost = append(lost, p+" (by "+strconv.Quote(by)+")")
		}
	}
	if len(lost) > 0 {
		if len(lost) > 5 {
			lost = append(lost[:5], "...")
		}
		t.Errorf(".containerignore excludes files the build needs: %s", strings.Join(lost, ", "))
	}
	if excluded(".git/HEAD") == "" {
		t.Error(".containerignore: .git is not excluded")
	}
}

// globRE compiles a .dockerignore pattern: * and ? within one path
// element, ** across elements.
func globRE(pat string) *regexp.Regexp {
	var b strings.Builder
	b.WriteString("^")
	for i := 0; i < len(pat); i++ {
		switch c := pat[i]; {
		case strings.HasPrefix(pat[i:], "**/"):
			b.WriteString("(?:.*/)?")
			i += 2
		case strings.HasPrefix(pat[i:], "**"):
			b.WriteString(".*")
			i++
		case c == '*':
			b.WriteString("[^/]*")
		case c == '?':
			b.WriteString("[^/]")
		default:
			b.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	b.WriteString("$")
	return regexp.MustCompile(b.String())
}
