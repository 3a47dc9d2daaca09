// Package gregortest is the small shared harness of the Go client suites (sarama, franz-go,
// kafka-go): it starts and stops a real gregor process per test (free 127.0.0.1 port, fresh
// temp data dir, SIGKILL on test end and on the test binary's death) and records each test's
// outcome per matrix feature into compat/results/<client>.json (written by WriteResults from
// each package's TestMain).
//
// Broker binary: $GREGOR_TEST_BINARY, else $GREGOR_BIN, else <repo>/target/debug/gregor.
// GREGOR_KEEP_LOGS=1 keeps each broker's temp dir (data + broker.stderr.log) after a passing
// test; with RUST_LOG=gregor::protocol=debug the log shows every request's API and version.
package gregortest

import (
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Step bounds every wait on the broker (a delivery, a consume, a group join).
const Step = 60 * time.Second

// ------------------------------------------------------------------ broker process

// Broker is one running gregor process.
type Broker struct {
	Addr string
	Port int
	Dir  string
	cmd  *exec.Cmd
}

// repoRoot walks up from the working directory (the package directory under go test) to the
// directory holding Cargo.toml.
func repoRoot() string {
	dir, _ := os.Getwd()
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "Cargo.toml")); err == nil {
			return d
		}
		if filepath.Dir(d) == d {
			return filepath.Join(dir, "..", "..", "..")
		}
	}
}

// BrokerBinary is the gregor binary the tests run.
func BrokerBinary() string {
	for _, k := range []string{"GREGOR_TEST_BINARY", "GREGOR_BIN"} {
		if v := os.Getenv(k); v != "" {
			return v
		}
	}
	return filepath.Join(repoRoot(), "target", "debug", "gregor")
}

// Start runs gregor on a free port with a fresh data dir; extra are more command-line flags
// (e.g. "--set", "auto.create.topics.enable=false"). The broker is killed when the test ends;
// on failure the tail of its stderr is logged.
func Start(t *testing.T, extra ...string) *Broker {
	t.Helper()
	bin := BrokerBinary()
	if _, err := os.Stat(bin); err != nil {
		Fatalf(t, "gregor binary not found at %s: cargo build --bin gregor, or set GREGOR_BIN", bin)
	}
	var b *Broker
	// a port picked free can be taken again before gregor binds it: retry a few times
	for attempt := 0; attempt < 3 && b == nil; attempt++ {
		b = tryStart(t, bin, extra, attempt == 2)
	}
	return b
}

func tryStart(t *testing.T, bin string, extra []string, last bool) *Broker {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		Fatalf(t, "%v", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	dir, err := os.MkdirTemp("", "gregor-compat-go-")
	if err != nil {
		Fatalf(t, "%v", err)
	}
	logf, err := os.Create(filepath.Join(dir, "broker.stderr.log"))
	if err != nil {
		Fatalf(t, "%v", err)
	}
	args := append([]string{"--listeners", fmt.Sprintf("PLAINTEXT://127.0.0.1:%d", port),
		"--log-dirs", filepath.Join(dir, "data")}, extra...)
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// SIGKILL the broker if the test binary dies (e.g. go test's -timeout): no orphans
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	// the broker reads every GREGOR_* variable as a setting: give it none
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GREGOR_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	if err := cmd.Start(); err != nil {
		Fatalf(t, "start %s: %v", bin, err)
	}
	logf.Close()
	b := &Broker{Addr: fmt.Sprintf("127.0.0.1:%d", port), Port: port, Dir: dir, cmd: cmd}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.Now().Add(20 * time.Second)
	for {
		select {
		case err := <-exited:
			tail := b.Tail()
			os.RemoveAll(dir)
			if !last && strings.Contains(tail, "in use") {
				return nil
			}
			Fatalf(t, "gregor exited (%v) before listening\n%s", err, tail)
		default:
		}
		if c, err := net.DialTimeout("tcp", b.Addr, 200*time.Millisecond); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			Fatalf(t, "gregor did not listen within 20s\n%s", b.Tail())
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		switch {
		case t.Failed():
			t.Logf("--- gregor stderr tail (%s) ---\n%s", dir, b.Tail())
		case os.Getenv("GREGOR_KEEP_LOGS") != "":
			t.Logf("gregor data and stderr kept in %s", dir)
		default:
			os.RemoveAll(dir)
		}
	})
	return b
}

// Tail is the last 40 lines of the broker's stderr.
func (b *Broker) Tail() string {
	data, _ := os.ReadFile(filepath.Join(b.Dir, "broker.stderr.log"))
	lines := strings.Split(string(data), "\n")
	if len(lines) > 40 {
		lines = lines[len(lines)-40:]
	}
	return strings.Join(lines, "\n")
}

// ------------------------------------------------------------------ results

type outcome struct {
	Status string `json:"status"`
	Test   string `json:"test"`
	Note   string `json:"note"`
}

var (
	resMu      sync.Mutex
	outcomes   = map[string]outcome{}
	rank       = map[string]int{"fail": 4, "pass": 3, "n/a": 1, "skip": 0}
	skipReason = map[string]string{}
	failReason = map[string]string{}
)

func note(features []string, status, test, why string) {
	resMu.Lock()
	defer resMu.Unlock()
	for _, f := range features {
		prev, ok := outcomes[f]
		if !ok || rank[status] > rank[prev.Status] {
			outcomes[f] = outcome{status, test, why}
		}
	}
}

// Feature records, when the test ends, its outcome for the given matrix features (a feature
// covered by several tests is fail if any failed). A skip whose reason starts with "n/a"
// records n/a (the client cannot do it), any other skip records skip.
func Feature(t *testing.T, features ...string) {
	t.Cleanup(func() {
		resMu.Lock()
		fr, sr := failReason[t.Name()], skipReason[t.Name()]
		resMu.Unlock()
		switch {
		case t.Failed():
			if fr == "" {
				fr = "failed (see the go test output)"
			}
			note(features, "fail", t.Name(), fr)
		case t.Skipped():
			st := "skip"
			if strings.HasPrefix(sr, "n/a") {
				st = "n/a"
			}
			note(features, st, t.Name(), sr)
		default:
			note(features, "pass", t.Name(), "")
		}
	})
}

// Fatalf is t.Fatalf that also keeps the first message as the results file's note.
func Fatalf(t testing.TB, format string, args ...any) {
	t.Helper()
	keepFailure(t, fmt.Sprintf(format, args...))
	t.Fatalf(format, args...)
}

// Errorf is t.Errorf that also keeps the first message as the results file's note.
func Errorf(t testing.TB, format string, args ...any) {
	t.Helper()
	keepFailure(t, fmt.Sprintf(format, args...))
	t.Errorf(format, args...)
}

// Check fails the test (Fatalf) if err is not nil.
func Check(t testing.TB, err error, what string) {
	t.Helper()
	if err != nil {
		Fatalf(t, "%s: %v", what, err)
	}
}

func keepFailure(t testing.TB, msg string) {
	resMu.Lock()
	defer resMu.Unlock()
	// the note goes to the top-level test (the one Feature was called on)
	name := t.Name()
	if i := strings.IndexByte(name, '/'); i >= 0 {
		name = name[:i]
	}
	for _, n := range []string{t.Name(), name} {
		if _, ok := failReason[n]; !ok {
			m := msg
			if i := strings.IndexByte(m, '\n'); i >= 0 {
				m = m[:i]
			}
			if len(m) > 300 {
				m = m[:300]
			}
			failReason[n] = m
		}
	}
}

// Skip skips the test; a reason starting with "n/a" shows as n/a in the matrix.
func Skip(t testing.TB, why string) {
	t.Helper()
	resMu.Lock()
	skipReason[t.Name()] = why
	resMu.Unlock()
	t.Skip(why)
}

// ModuleVersion is the version of a dependency: from the test binary's build info, else from
// compat/go/go.mod (test binaries carry no dependency list).
func ModuleVersion(path string) string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == path {
				if d.Replace != nil {
					return d.Replace.Version
				}
				return d.Version
			}
		}
	}
	data, err := os.ReadFile(filepath.Join(repoRoot(), "compat", "go", "go.mod"))
	if err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			f := strings.Fields(strings.TrimPrefix(strings.TrimSpace(line), "require "))
			if len(f) >= 2 && f[0] == path {
				return f[1]
			}
		}
	}
	return "unknown"
}

// WriteResults writes compat/results/<client>.json (if any test recorded a feature); call it
// from TestMain after m.Run().
func WriteResults(client, version string) {
	resMu.Lock()
	defer resMu.Unlock()
	if len(outcomes) == 0 {
		return
	}
	// a filtered run (-run/-skip) would leave most matrix rows empty: keep the last full run's file
	for _, name := range []string{"test.run", "test.skip"} {
		if f := flag.Lookup(name); f != nil && f.Value.String() != "" && os.Getenv("GREGOR_RESULTS_PARTIAL") == "" {
			fmt.Fprintf(os.Stderr, "results: not written (-%s is set; GREGOR_RESULTS_PARTIAL=1 writes anyway)\n", name[5:])
			return
		}
	}
	dir := os.Getenv("GREGOR_RESULTS_DIR")
	if dir == "" {
		dir = filepath.Join(repoRoot(), "compat", "results")
	}
	_ = os.MkdirAll(dir, 0o755)
	path := filepath.Join(dir, client+".json")
	doc := map[string]any{
		"client":    client,
		"version":   version,
		"generated": time.Now().UTC().Format("2006-01-02T15:04:05Z"),
		"features":  outcomes,
	}
	data, _ := json.MarshalIndent(doc, "", "  ")
	if err := os.WriteFile(path+".tmp", append(data, '\n'), 0o644); err == nil {
		_ = os.Rename(path+".tmp", path)
	}
	fmt.Fprintf(os.Stderr, "results: %s\n", path)
}

// Within fails the test if fn does not return within d (or returns an error).
func Within(t testing.TB, what string, d time.Duration, fn func() error) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- fn() }()
	select {
	case err := <-done:
		if err != nil {
			Fatalf(t, "%s: %v", what, err)
		}
	case <-time.After(d):
		Fatalf(t, "%s: did not return within %v", what, d)
	}
}

// Eventually polls fn until it returns nil or d passes; then fails with fn's last error.
func Eventually(t testing.TB, what string, d time.Duration, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			Fatalf(t, "%s: %v (after %v)", what, err, d)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
