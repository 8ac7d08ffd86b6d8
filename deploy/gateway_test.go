package deploy

import (
	"bufio"
	"bytes"
	"debug/elf"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/maasgate/maasgate/internal/testutil"
)

// shellWords splits a command line the way sh would for the simple words
// and double-quoted strings a Containerfile's go build uses.
func shellWords(s string) []string {
	var (
		words []string
		cur   strings.Builder
		in    bool // inside double quotes
		word  bool // a word has started (it may be "")
	)
	for _, r := range s {
		switch {
		case r == '"':
			in, word = !in, true
		case (r == ' ' || r == '\t') && !in:
			if word {
				words = append(words, cur.String())
				cur.Reset()
				word = false
			}
		default:
			cur.WriteRune(r)
			word = true
		}
	}
	if word {
		words = append(words, cur.String())
	}
	return words
}

// TestImageBinary does what the image does, without a container engine: it
// builds the gateway with the Containerfile's own go build command, checks
// that the binary is static and stamped, then runs it as the Deployment
// would (its args, its environment with the placeholder secrets, the
// ConfigMap's config.yaml) and checks that the probes' paths answer without
// the master key, and that SIGTERM stops it cleanly.
func TestImageBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the gateway")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command in PATH")
	}
	stages := readContainerfile(t)
	if len(stages) < 2 {
		t.Fatal("Containerfile: want two stages")
	}
	env, args, _ := buildCommand(t, stages[0])
	words := shellWords(args)
	dir := t.TempDir()
	bin := filepath.Join(dir, "maasgate")
	const stamp = "v0.0.0-deploy-test"
	for i := range words {
		if i > 0 && words[i-1] == "-o" {
			words[i] = bin
		}
		words[i] = strings.ReplaceAll(strings.ReplaceAll(words[i], "${VERSION}", stamp), "$VERSION", stamp)
	}
	build := exec.Command(goBin, append([]string{"build"}, words...)...)
	build.Dir = ".."
	build.Env = append(os.Environ(), env...)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", strings.Join(words, " "), err, out)
	}

	if runtime.GOOS == "linux" {
		f, err := elf.Open(bin)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP {
				t.Error("the binary has an ELF interpreter: it is dynamically linked and would not run on distroless/static")
			}
		}
		if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
			t.Errorf("the binary needs shared libraries %v", libs)
		}
		if syms, _ := f.Symbols(); len(syms) > 0 {
			t.Errorf("the binary has a symbol table (%d symbols): -s did not apply", len(syms))
		}
		f.Close()
	}
	out, err := exec.Command(bin, "version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "maasgate "+stamp+" ") {
		t.Errorf("maasgate version: %q, %v; want the -X main.version stamp %s", out, err, stamp)
	}

	// Run it as the Deployment would, on a free local port and a SQLite
	// file in place of PostgreSQL, Redis pointing at a closed port (the
	// gateway must serve without it).
	m, _, c, flags, config := gatewayPod(t)
	cfgPath := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(cfgPath, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	runArgs := make([]string, len(c.Args))
	for i, a := range c.Args {
		runArgs[i] = a
		if a == flags["config"] {
			runArgs[i] = cfgPath
		}
	}
	podEnv := containerEnv(t, m, c)
	podEnv["DATABASE_URL"] = filepath.Join(dir, "maasgate.db")
	podEnv["MAASGATE_HOST"] = "127.0.0.1"
	podEnv["MAASGATE_PORT"] = "0"
	podEnv["MAASGATE_BACKEND_METRICS_INTERVAL"] = "0"
	podEnv["REDIS_HOST"] = "127.0.0.1"
	podEnv["REDIS_PORT"] = strconv.Itoa(closedPort(t))
	serve := exec.Command(bin, runArgs...)
	serve.Dir = dir
	for k, v := range podEnv {
		serve.Env = append(serve.Env, k+"="+v)
	}
	stderr, err := serve.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	var logs testutil.Buffer
	serve.Stdout = &logs
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{}) // closed once the process has exited
	addrc := make(chan string, 1)
	var scanned sync.WaitGroup
	scanned.Add(1)
	go func() {
		defer scanned.Done()
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Bytes()
			logs.Write(append(bytes.Clone(line), '\n'))
			var rec struct {
				Msg  string `json:"msg"`
				Addr string `json:"addr"`
			}
			if json.Unmarshal(line, &rec) == nil && rec.Msg == "maasgate listening" {
				select {
				case addrc <- rec.Addr:
				default:
				}
			}
		}
	}()
	var waitErr error
	go func() {
		scanned.Wait() // all of stderr read before Wait, as StderrPipe requires
		waitErr = serve.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		select {
		case <-exited:
		default:
			_ = serve.Process.Kill()
			<-exited
		}
	})

	var addr string
	select {
	case addr = <-addrc:
	case <-exited:
		t.Fatalf("the gateway exited before listening: %v\n%s", waitErr, logs.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("the gateway did not log \"maasgate listening\" (JSON, as MAASGATE_LOG_FORMAT=json) within 60 s:\n%s", logs.String())
	}
	client := &http.Client{Timeout: 5 * time.Second}
	get := func(path, key string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, "http://"+addr+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	for kind, p := range map[string]*corev1.Probe{"liveness": c.LivenessProbe, "readiness": c.ReadinessProbe, "startup": c.StartupProbe} {
		if p == nil || p.HTTPGet == nil {
			continue // TestGatewayDeployment reports it
		}
		if code, body := get(p.HTTPGet.Path, ""); code != http.StatusOK {
			t.Errorf("%s probe GET %s without the master key: %d %s; Kubernetes counts only 2xx and 3xx as success", kind, p.HTTPGet.Path, code, body)
		}
	}
	// docs/deploy.md says /health/readiness needs the master key and so
	// cannot be an httpGet probe; if this changes, change the docs.
	masterKey := podEnv["LITELLM_MASTER_KEY"]
	if code, _ := get("/health/readiness", ""); code != http.StatusUnauthorized {
		t.Errorf("GET /health/readiness without the master key: %d; docs/deploy.md says 401 (update it)", code)
	}
	if code, body := get("/health/readiness", masterKey); code != http.StatusOK || !regexp.MustCompile(`"db":\s*"connected"`).MatchString(body) {
		t.Errorf("GET /health/readiness with the master key: %d %s", code, body)
	}

	// SIGTERM, as Kubernetes sends after the preStop hook: a clean exit.
	if err := serve.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
		if waitErr != nil {
			t.Errorf("after SIGTERM the gateway exited with %v; want 0\n%s", waitErr, logs.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("the gateway did not exit within 30 s of SIGTERM with no request in flight:\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), `"msg":"stopped"`) {
		t.Errorf("no \"stopped\" log line after SIGTERM:\n%s", logs.String())
	}
}

// closedPort returns a local TCP port that nothing listens on.
func closedPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	return port
}
