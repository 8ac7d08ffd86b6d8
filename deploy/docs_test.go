package deploy

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestDocs checks that docs/deploy.md names only serve flags and
// MAASGATE_* variables that exist, and only files of the repository that
// exist.
func TestDocs(t *testing.T) {
	data, err := os.ReadFile("../docs/deploy.md")
	if err != nil {
		t.Fatal(err)
	}
	g := readGatewayFacts(t)
	text := string(data)
	bound := map[string]bool{}
	for _, vars := range g.flagEnv {
		for _, v := range vars {
			bound[v] = true
		}
	}
	for _, v := range regexp.MustCompile(`\bMAASGATE_[A-Z0-9_]+`).FindAllString(text, -1) {
		if !bound[v] {
			t.Errorf("docs/deploy.md: %s is not a variable of maasgate serve", v)
		}
	}
	// Flags in prose, outside code blocks (which also hold podman's and
	// kubectl's).
	prose := regexp.MustCompile("(?s)```.*?```").ReplaceAllString(text, "")
	for _, s := range regexp.MustCompile("`[^`]*?--([a-z][a-z0-9-]*)[^`]*`").FindAllStringSubmatch(prose, -1) {
		if _, ok := g.flagDefault[s[1]]; !ok && s[1] != "help" && !strings.Contains(s[0], "build") {
			t.Errorf("docs/deploy.md: %s: --%s is not a flag of maasgate serve", s[0], s[1])
		}
	}
	for _, p := range regexp.MustCompile("`((?:deploy|docs|cmd|internal)/[A-Za-z0-9_./-]*|Containerfile)`").FindAllStringSubmatch(text, -1) {
		if _, err := os.Stat("../" + p[1]); err != nil {
			t.Errorf("docs/deploy.md names %s, which does not exist", p[1])
		}
	}
	for _, path := range g.publicGET {
		if strings.HasPrefix(path, "/health/") && !strings.Contains(text, path) {
			t.Errorf("docs/deploy.md does not mention %s", path)
		}
	}
	if !slices.Contains(g.publicGET, "/health/liveliness") {
		t.Errorf("docs/deploy.md recommends /health/liveliness, which the gateway does not serve without the key (%v)", g.publicGET)
	}
}
