package bench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/procfs"
)

// gatewayProc is a maasgate gateway run as a child process.
type gatewayProc struct {
	url   string
	cmd   *exec.Cmd
	stats procStats
	logs  *lastLines
	done  chan struct{} // closed when the process has exited
}

// listening matches the line the gateway logs once it accepts connections.
var listening = regexp.MustCompile(`maasgate listening" addr=(\S+)`)

// startGateway runs "bin serve" with configYAML (written to dir) on a free
// loopback port and waits until it listens.
func startGateway(ctx context.Context, bin, dir, name, configYAML string, extra ...string) (*gatewayProc, error) {
	cfgPath := filepath.Join(dir, name+".yaml")
	if err := os.WriteFile(cfgPath, []byte(configYAML), 0o600); err != nil {
		return nil, err
	}
	args := []string{"serve", "--config", cfgPath, "--host", "127.0.0.1", "--port", "0",
		"--database-url", filepath.Join(dir, name+".db")}
	return startProcess(ctx, bin, append(args, extra...))
}

// startProcess runs bin with args, which make it listen on a free loopback
// port, and waits until it logs that it listens. The child's log lines are
// drained in the background; the last few are kept for error messages.
func startProcess(ctx context.Context, bin string, args []string) (*gatewayProc, error) {
	cmd := exec.Command(bin, args...)
	cmd.Env = gatewayEnv()
	// The child goes with the bench, even if the bench is killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	cmd.Stdout = io.Discard
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	g := &gatewayProc{cmd: cmd, logs: &lastLines{max: 20}, done: make(chan struct{})}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			g.logs.add(line)
			if m := listening.FindStringSubmatch(line); m != nil {
				select {
				case addr <- m[1]:
				default:
				}
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
		_ = cmd.Wait()
		close(g.done)
	}()
	timeout := time.NewTimer(30 * time.Second)
	defer timeout.Stop()
	select {
	case a := <-addr:
		g.url = "http://" + a
	case <-g.done:
		return nil, fmt.Errorf("%s %s exited before listening:\n%s", bin, args[0], g.logs)
	case <-timeout.C:
		g.stop()
		return nil, fmt.Errorf("%s %s did not listen within 30s:\n%s", bin, args[0], g.logs)
	case <-ctx.Done():
		g.stop()
		return nil, ctx.Err()
	}
	if g.stats, err = watchProcess(cmd.Process.Pid); err != nil {
		g.stop()
		return nil, err
	}
	// Start-up's peak (migrations, config) is not serving's: reset the
	// high-water mark that peak RSS is read from.
	if err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", cmd.Process.Pid), []byte("5"), 0); err != nil {
		g.stop()
		return nil, fmt.Errorf("reset the peak RSS of %s: %w", bin, err)
	}
	return g, nil
}

// gatewayEnv is the environment of a child gateway: the bench's own, without
// the settings that would make the child differ from its config file.
func gatewayEnv() []string {
	env := make([]string, 0, len(os.Environ()))
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(name, "MAASGATE_"), name == "LITELLM_MASTER_KEY", name == "DATABASE_URL",
			name == "PORT", name == "CONFIG_FILE_PATH":
			continue
		}
		env = append(env, kv)
	}
	return env
}

// stop ends the gateway with SIGTERM, or SIGKILL if it has not exited after
// ten seconds.
func (g *gatewayProc) stop() {
	_ = g.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-g.done:
	case <-time.After(10 * time.Second):
		_ = g.cmd.Process.Kill()
		<-g.done
	}
}

// procStats reads CPU time and memory of a process from /proc.
type procStats struct{ proc procfs.Proc }

// cpu is the process's user plus system CPU time so far. /proc counts it
// in ticks of 10 ms, so a figure per request is only as good as the number
// of requests it is divided by: ±2 µs for 6,000 requests, ±125 µs for 80.
// (/proc/<pid>/schedstat has nanoseconds, but many kernels, this
// project's VMs among them, leave it at zero.)
func (p procStats) cpu() (time.Duration, error) {
	st, err := p.proc.Stat()
	if err != nil {
		return 0, err
	}
	return time.Duration(st.CPUTime() * float64(time.Second)), nil
}

// memory is the process's resident set now and its peak (VmHWM), in bytes.
func (p procStats) memory() (rss, peak uint64, err error) {
	st, err := p.proc.NewStatus()
	if err != nil {
		return 0, 0, err
	}
	return st.VmRSS, st.VmHWM, nil
}

// watchProcess returns the stats of the process pid.
func watchProcess(pid int) (procStats, error) {
	p, err := procfs.NewProc(pid)
	if err != nil {
		return procStats{}, fmt.Errorf("process %d: %w", pid, err)
	}
	if _, err := p.Stat(); err != nil {
		return procStats{}, fmt.Errorf("process %d: %w", pid, err)
	}
	return procStats{proc: p}, nil
}

// lastLines keeps the last max lines written to it.
type lastLines struct {
	mu    sync.Mutex
	max   int
	lines []string
}

func (l *lastLines) add(line string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.lines) == l.max {
		l.lines = append(l.lines[:0], l.lines[1:]...)
	}
	l.lines = append(l.lines, line)
}

func (l *lastLines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}
