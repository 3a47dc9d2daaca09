// sarama (Debian's golang-github-shopify-sarama-dev, 1.22.1) against a real gregor process.
//
// Built offline in GOPATH mode against /usr/share/gocode (GO111MODULE=off); see run.sh.
// Each test starts its own broker (free port, temp log dir) and checks the data that comes
// back: keys, values, headers, timestamps, offsets and order per partition.
//
// Broker binary: $GREGOR_TEST_BINARY, else $GREGOR_BIN, else ../../target/debug/gregor.
// Results: compat/results/sarama.json (read by scripts/matrix.py).
package compatgo

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/Shopify/sarama"
)

const step = 60 * time.Second

// sarama 1.22 sends the request versions implied by Config.Version as is (no clamping).
// V2_1_0_0: Produce v3, Fetch v4 (its newest), Metadata v5, ListOffsets v1, CreateTopics v2.
var kafkaVersion = sarama.V2_1_0_0

// ------------------------------------------------------------------ results

type outcome struct {
	Status string `json:"status"`
	Test   string `json:"test"`
	Note   string `json:"note"`
}

var (
	resMu    sync.Mutex
	outcomes = map[string]outcome{}
	rank     = map[string]int{"fail": 4, "pass": 3, "needs-groups": 2, "n/a": 1, "skip": 0}
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

// feature records the test's outcome for the features at the end of the test.
// A skip whose message starts with "needs-groups" or "n/a" records that status.
func feature(t *testing.T, features ...string) {
	t.Cleanup(func() {
		switch {
		case t.Failed():
			resMu.Lock()
			why := failReason[t.Name()]
			resMu.Unlock()
			note(features, "fail", t.Name(), why)
		case t.Skipped():
			st := "skip"
			for _, s := range []string{"needs-groups", "n/a"} {
				if strings.HasPrefix(skipReason[t.Name()], s) {
					st = s
				}
			}
			note(features, st, t.Name(), skipReason[t.Name()])
		default:
			note(features, "pass", t.Name(), "")
		}
	})
}

var (
	skipReason = map[string]string{}
	failReason = map[string]string{}
)

// fatalf / errorf: t.Fatalf / t.Errorf that also keep the first message for the results file.
func fatalf(t *testing.T, format string, args ...interface{}) {
	t.Helper()
	keepFailure(t, fmt.Sprintf(format, args...))
	t.Fatalf(format, args...)
}

func errorf(t *testing.T, format string, args ...interface{}) {
	t.Helper()
	keepFailure(t, fmt.Sprintf(format, args...))
	t.Errorf(format, args...)
}

func keepFailure(t *testing.T, msg string) {
	resMu.Lock()
	defer resMu.Unlock()
	if _, ok := failReason[t.Name()]; !ok {
		if i := strings.IndexByte(msg, '\n'); i >= 0 {
			msg = msg[:i]
		}
		if len(msg) > 300 {
			msg = msg[:300]
		}
		failReason[t.Name()] = msg
	}
}

func skip(t *testing.T, why string) {
	resMu.Lock()
	skipReason[t.Name()] = why
	resMu.Unlock()
	t.Skip(why)
}

func TestMain(m *testing.M) {
	code := m.Run()
	if len(outcomes) > 0 {
		path := filepath.Join("..", "results", "sarama.json")
		_ = os.MkdirAll(filepath.Dir(path), 0o755)
		doc := map[string]interface{}{
			"client":    "sarama",
			"version":   "1.22.1 (Debian golang-github-shopify-sarama-dev), Config.Version " + kafkaVersion.String(),
			"generated": time.Now().UTC().Format("2006-01-02T15:04:05Z"),
			"features":  outcomes,
		}
		data, _ := json.MarshalIndent(doc, "", "  ")
		_ = os.WriteFile(path+".tmp", append(data, '\n'), 0o644)
		_ = os.Rename(path+".tmp", path)
	}
	os.Exit(code)
}

// ------------------------------------------------------------------ broker process

type broker struct {
	cmd  *exec.Cmd
	port int
	dir  string
	addr string
}

func brokerBinary() string {
	for _, k := range []string{"GREGOR_TEST_BINARY", "GREGOR_BIN"} {
		if v := os.Getenv(k); v != "" {
			return v
		}
	}
	p, _ := filepath.Abs(filepath.Join("..", "..", "target", "debug", "gregor"))
	return p
}

func startBroker(t *testing.T, extra ...string) *broker {
	t.Helper()
	bin := brokerBinary()
	if _, err := os.Stat(bin); err != nil {
		fatalf(t, "gregor binary not found at %s: cargo build, or set GREGOR_TEST_BINARY", bin)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fatalf(t, "%v", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	dir, err := os.MkdirTemp("", "gregor-compat-sarama-")
	if err != nil {
		fatalf(t, "%v", err)
	}
	logf, err := os.Create(filepath.Join(dir, "broker.stderr.log"))
	if err != nil {
		fatalf(t, "%v", err)
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
		fatalf(t, "%v", err)
	}
	logf.Close()
	b := &broker{cmd: cmd, port: port, dir: dir, addr: fmt.Sprintf("127.0.0.1:%d", port)}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("--- gregor stderr tail (%s) ---\n%s", dir, b.tail())
		} else {
			os.RemoveAll(dir)
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		select {
		case err := <-exited:
			exited <- err
			fatalf(t, "gregor exited (%v) before listening\n%s", err, b.tail())
		default:
		}
		if c, err := net.DialTimeout("tcp", b.addr, 200*time.Millisecond); err == nil {
			c.Close()
			return b
		}
		if time.Now().After(deadline) {
			fatalf(t, "gregor did not listen within 20s\n%s", b.tail())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (b *broker) tail() string {
	data, _ := os.ReadFile(filepath.Join(b.dir, "broker.stderr.log"))
	lines := strings.Split(string(data), "\n")
	if len(lines) > 40 {
		lines = lines[len(lines)-40:]
	}
	return strings.Join(lines, "\n")
}

// apiVersions: ApiVersions v0 over a raw socket, api key -> [min, max].
func apiVersions(addr string) (map[int16][2]int16, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	clientID := "compat-probe"
	body := new(bytes.Buffer)
	_ = binary.Write(body, binary.BigEndian, int16(18))
	_ = binary.Write(body, binary.BigEndian, int16(0))
	_ = binary.Write(body, binary.BigEndian, int32(1))
	_ = binary.Write(body, binary.BigEndian, int16(len(clientID)))
	body.WriteString(clientID)
	frame := make([]byte, 4)
	binary.BigEndian.PutUint32(frame, uint32(body.Len()))
	if _, err := c.Write(append(frame, body.Bytes()...)); err != nil {
		return nil, err
	}
	if _, err := io.ReadFull(c, frame); err != nil {
		return nil, err
	}
	resp := make([]byte, binary.BigEndian.Uint32(frame))
	if _, err := io.ReadFull(c, resp); err != nil {
		return nil, err
	}
	if ec := int16(binary.BigEndian.Uint16(resp[4:])); ec != 0 {
		return nil, fmt.Errorf("ApiVersions error %d", ec)
	}
	n := int(binary.BigEndian.Uint32(resp[6:]))
	out := map[int16][2]int16{}
	for i := 0; i < n; i++ {
		o := 10 + 6*i
		out[int16(binary.BigEndian.Uint16(resp[o:]))] = [2]int16{
			int16(binary.BigEndian.Uint16(resp[o+2:])), int16(binary.BigEndian.Uint16(resp[o+4:]))}
	}
	return out, nil
}

func needGroups(t *testing.T, b *broker) {
	apis, err := apiVersions(b.addr)
	if err != nil {
		fatalf(t, "%v", err)
	}
	names := map[int16]string{8: "OffsetCommit", 9: "OffsetFetch", 10: "FindCoordinator", 11: "JoinGroup",
		12: "Heartbeat", 13: "LeaveGroup", 14: "SyncGroup"}
	var missing []string
	for k, n := range names {
		if _, ok := apis[k]; !ok {
			missing = append(missing, n)
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		skip(t, "needs-groups: broker does not advertise "+strings.Join(missing, ", "))
	}
}

// ------------------------------------------------------------------ helpers

func config() *sarama.Config {
	c := sarama.NewConfig()
	c.Version = kafkaVersion
	c.ClientID = "gregor-compat-sarama"
	c.Net.DialTimeout = 5 * time.Second
	c.Net.ReadTimeout = 30 * time.Second
	c.Net.WriteTimeout = 30 * time.Second
	c.Metadata.Retry.Max = 3
	c.Metadata.Retry.Backoff = 200 * time.Millisecond
	c.Producer.Return.Successes = true
	c.Producer.Return.Errors = true
	c.Producer.Partitioner = sarama.NewManualPartitioner
	c.Producer.RequiredAcks = sarama.WaitForAll
	c.Producer.Retry.Max = 2
	c.Producer.Retry.Backoff = 200 * time.Millisecond
	c.Producer.Flush.Messages = 50 // several records per batch
	c.Producer.Flush.Frequency = 20 * time.Millisecond
	c.Consumer.Return.Errors = true
	// With Retention 0, sarama 1.22 commits with OffsetCommit v1, which Kafka 4.0 removed
	// (KIP-896) and gregor does not serve; a retention time makes it send v2.
	c.Consumer.Offsets.Retention = 7 * 24 * time.Hour
	return c
}

func createTopic(t *testing.T, b *broker, topic string, partitions int32) {
	t.Helper()
	admin, err := sarama.NewClusterAdmin([]string{b.addr}, config())
	if err != nil {
		fatalf(t, "NewClusterAdmin: %v", err)
	}
	defer admin.Close()
	if err := admin.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: partitions, ReplicationFactor: 1}, false); err != nil {
		fatalf(t, "CreateTopic %s: %v", topic, err)
	}
}

type rec struct {
	partition int32
	key       []byte
	value     []byte
	headers   []sarama.RecordHeader
	ts        time.Time
}

func makeRecords(n int, partitions int32, tag string, base time.Time) []rec {
	out := make([]rec, n)
	for i := 0; i < n; i++ {
		out[i] = rec{
			partition: int32(i) % partitions,
			key:       []byte(fmt.Sprintf("%s-key-%d", tag, i)),
			value:     []byte(fmt.Sprintf("%s-value-%d-%s", tag, i, strings.Repeat("x", i%50))),
			headers: []sarama.RecordHeader{
				{Key: []byte("h-index"), Value: []byte(fmt.Sprint(i))},
				{Key: []byte("h-tag"), Value: []byte(tag)},
				{Key: []byte("empty"), Value: []byte{}},
			},
			ts: base.Add(time.Duration(i) * time.Millisecond),
		}
	}
	return out
}

// produce sends all records through the async producer (so batches hold several records);
// returns the offset assigned to each record (in input order).
func produce(t *testing.T, b *broker, topic string, recs []rec, cfg *sarama.Config) []int64 {
	t.Helper()
	p, err := sarama.NewAsyncProducer([]string{b.addr}, cfg)
	if err != nil {
		fatalf(t, "NewAsyncProducer: %v", err)
	}
	defer p.Close()
	for i, r := range recs {
		p.Input() <- &sarama.ProducerMessage{Topic: topic, Partition: r.partition, Key: sarama.ByteEncoder(r.key),
			Value: sarama.ByteEncoder(r.value), Headers: r.headers, Timestamp: r.ts, Metadata: i}
	}
	offsets := make([]int64, len(recs))
	if cfg.Producer.RequiredAcks == sarama.NoResponse {
		// acks=0: sarama still reports "successes" (offset unknown); wait for them
	}
	timeout := time.After(step)
	for n := 0; n < len(recs); n++ {
		select {
		case m := <-p.Successes():
			offsets[m.Metadata.(int)] = m.Offset
		case e := <-p.Errors():
			fatalf(t, "produce error: %v", e.Err)
		case <-timeout:
			fatalf(t, "timed out waiting for deliveries (%d of %d)", n, len(recs))
		}
	}
	return offsets
}

type got struct {
	offset  int64
	key     []byte
	value   []byte
	headers []*sarama.RecordHeader
	ts      time.Time
}

func consumeAssigned(t *testing.T, b *broker, topic string, partitions int32, perPartition map[int32]int) map[int32][]got {
	t.Helper()
	c, err := sarama.NewConsumer([]string{b.addr}, config())
	if err != nil {
		fatalf(t, "NewConsumer: %v", err)
	}
	defer c.Close()
	out := map[int32][]got{}
	for p := int32(0); p < partitions; p++ {
		pc, err := c.ConsumePartition(topic, p, sarama.OffsetOldest)
		if err != nil {
			fatalf(t, "ConsumePartition %d: %v", p, err)
		}
		timeout := time.After(step)
		for len(out[p]) < perPartition[p] {
			select {
			case m := <-pc.Messages():
				out[p] = append(out[p], got{m.Offset, m.Key, m.Value, m.Headers, m.Timestamp})
			case e := <-pc.Errors():
				pc.Close()
				fatalf(t, "consume p%d: %v", p, e.Err)
			case <-timeout:
				pc.Close()
				fatalf(t, "p%d: consumed %d of %d within %v", p, len(out[p]), perPartition[p], step)
			}
		}
		// nothing beyond what was produced
		select {
		case m := <-pc.Messages():
			errorf(t, "p%d: unexpected extra record at offset %d", p, m.Offset)
		case <-time.After(300 * time.Millisecond):
		}
		pc.Close()
	}
	return out
}

func checkRoundtrip(t *testing.T, recs []rec, offsets []int64, consumed map[int32][]got) {
	t.Helper()
	want := map[int32][]int{}
	for i, r := range recs {
		want[r.partition] = append(want[r.partition], i)
	}
	for p, idxs := range want {
		gs := consumed[p]
		if len(gs) != len(idxs) {
			fatalf(t, "p%d: consumed %d records, produced %d", p, len(gs), len(idxs))
		}
		for j, i := range idxs {
			g, r := gs[j], recs[i]
			if g.offset != int64(j) {
				fatalf(t, "p%d: record %d at offset %d", p, j, g.offset)
			}
			if offsets != nil && offsets[i] != g.offset {
				fatalf(t, "p%d: delivered offset %d, consumed at %d", p, offsets[i], g.offset)
			}
			if !bytes.Equal(g.key, r.key) || !bytes.Equal(g.value, r.value) {
				fatalf(t, "p%d@%d: key/value %q/%q, want %q/%q", p, g.offset, g.key, g.value, r.key, r.value)
			}
			if !g.ts.Equal(r.ts) {
				fatalf(t, "p%d@%d: timestamp %v, want %v", p, g.offset, g.ts, r.ts)
			}
			if len(g.headers) != len(r.headers) {
				fatalf(t, "p%d@%d: %d headers, want %d", p, g.offset, len(g.headers), len(r.headers))
			}
			for k, h := range g.headers {
				if !bytes.Equal(h.Key, r.headers[k].Key) || !bytes.Equal(h.Value, r.headers[k].Value) {
					fatalf(t, "p%d@%d: header %d = %q:%q, want %q:%q", p, g.offset, k, h.Key, h.Value,
						r.headers[k].Key, r.headers[k].Value)
				}
			}
		}
	}
}

// within fails the test if fn does not return in time (sarama 1.22's Close calls can block
// forever when commits keep failing).
func within(t *testing.T, what string, d time.Duration, fn func() error) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- fn() }()
	select {
	case err := <-done:
		if err != nil {
			fatalf(t, "%s: %v", what, err)
		}
	case <-time.After(d):
		fatalf(t, "%s: did not return within %v", what, d)
	}
}

func counts(recs []rec) map[int32]int {
	m := map[int32]int{}
	for _, r := range recs {
		m[r.partition]++
	}
	return m
}

// ------------------------------------------------------------------ tests

func TestAdminCreateDeleteTopic(t *testing.T) {
	feature(t, "admin_create_topic", "admin_delete_topic", "metadata_all_topics")
	b := startBroker(t)
	admin, err := sarama.NewClusterAdmin([]string{b.addr}, config())
	if err != nil {
		fatalf(t, "%v", err)
	}
	defer admin.Close()
	if err := admin.CreateTopic("go-admin", &sarama.TopicDetail{NumPartitions: 4, ReplicationFactor: 1}, false); err != nil {
		fatalf(t, "create: %v", err)
	}
	err = admin.CreateTopic("go-admin", &sarama.TopicDetail{NumPartitions: 4, ReplicationFactor: 1}, false)
	var te *sarama.TopicError
	if !errors.As(err, &te) || te.Err != sarama.ErrTopicAlreadyExists {
		fatalf(t, "second create: %v, want TOPIC_ALREADY_EXISTS", err)
	}
	// ClusterAdmin.ListTopics is not used: sarama 1.22 sends DescribeConfigs v0 with it, a
	// version Kafka 4.0 removed (KIP-896) and gregor does not serve either. Metadata instead.
	client, err := sarama.NewClient([]string{b.addr}, config())
	if err != nil {
		fatalf(t, "%v", err)
	}
	defer client.Close()
	if err := client.RefreshMetadata(); err != nil {
		fatalf(t, "%v", err)
	}
	if parts, err := client.Partitions("go-admin"); err != nil || len(parts) != 4 {
		fatalf(t, "partitions of go-admin: %v %v", parts, err)
	}
	if err := admin.DeleteTopic("go-admin"); err != nil {
		fatalf(t, "delete: %v", err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		if err := client.RefreshMetadata(); err != nil {
			fatalf(t, "%v", err)
		}
		topics, err := client.Topics()
		if err != nil {
			fatalf(t, "%v", err)
		}
		listed := false
		for _, tp := range topics {
			listed = listed || tp == "go-admin"
		}
		if !listed {
			break
		}
		if time.Now().After(deadline) {
			fatalf(t, "%v", "go-admin still listed after delete")
		}
		time.Sleep(200 * time.Millisecond)
	}
	err = admin.DeleteTopic("go-never")
	if !errors.Is(err, sarama.ErrUnknownTopicOrPartition) {
		var te2 *sarama.TopicError
		if !errors.As(err, &te2) || te2.Err != sarama.ErrUnknownTopicOrPartition {
			fatalf(t, "delete unknown: %v, want UNKNOWN_TOPIC_OR_PARTITION", err)
		}
	}
}

func testCodec(t *testing.T, name string, codec sarama.CompressionCodec) {
	b := startBroker(t)
	topic := "go-codec-" + name
	createTopic(t, b, topic, 3)
	recs := makeRecords(300, 3, name, time.Now().Add(-time.Minute).Truncate(time.Millisecond))
	cfg := config()
	cfg.Producer.Compression = codec
	offsets := produce(t, b, topic, recs, cfg)
	checkRoundtrip(t, recs, offsets, consumeAssigned(t, b, topic, 3, counts(recs)))
}

func TestProduceConsumeNone(t *testing.T) {
	feature(t, "produce_none", "consume_assign", "acks_all")
	testCodec(t, "none", sarama.CompressionNone)
}

func TestProduceConsumeGzip(t *testing.T) {
	feature(t, "produce_gzip")
	testCodec(t, "gzip", sarama.CompressionGZIP)
}

func TestProduceConsumeSnappy(t *testing.T) {
	feature(t, "produce_snappy")
	testCodec(t, "snappy", sarama.CompressionSnappy)
}

func TestProduceConsumeLz4(t *testing.T) {
	feature(t, "produce_lz4")
	testCodec(t, "lz4", sarama.CompressionLZ4)
}

func TestProduceConsumeZstd(t *testing.T) {
	feature(t, "produce_zstd")
	// sarama 1.22 puts zstd batches into Produce v3 (it never sends v7, which zstd needs);
	// Kafka answers UNSUPPORTED_COMPRESSION_TYPE (76), and so must gregor.
	b := startBroker(t)
	createTopic(t, b, "go-codec-zstd", 1)
	cfg := config()
	cfg.Producer.Compression = sarama.CompressionZSTD
	cfg.Producer.Retry.Max = 0
	p, err := sarama.NewSyncProducer([]string{b.addr}, cfg)
	if err != nil {
		fatalf(t, "%v", err)
	}
	defer p.Close()
	_, _, err = p.SendMessage(&sarama.ProducerMessage{Topic: "go-codec-zstd", Partition: 0, Value: sarama.StringEncoder("z")})
	var pe *sarama.ProducerError
	if !errors.Is(err, sarama.ErrUnsupportedCompressionType) && !(errors.As(err, &pe) && pe.Err == sarama.ErrUnsupportedCompressionType) {
		fatalf(t, "zstd in Produce v3: %v, want UNSUPPORTED_COMPRESSION_TYPE", err)
	}
	skip(t, "n/a: sarama 1.22 sends zstd in Produce v3 (needs v7); the broker rightly answers UNSUPPORTED_COMPRESSION_TYPE")
}

func testAcks(t *testing.T, name string, acks sarama.RequiredAcks) {
	b := startBroker(t)
	topic := "go-acks-" + name
	createTopic(t, b, topic, 2)
	recs := makeRecords(100, 2, "acks"+name, time.Now().Add(-30*time.Second).Truncate(time.Millisecond))
	cfg := config()
	cfg.Producer.RequiredAcks = acks
	offsets := produce(t, b, topic, recs, cfg)
	if acks == sarama.NoResponse {
		offsets = nil // the client learns no offsets with acks=0; the data must still land
	}
	checkRoundtrip(t, recs, offsets, consumeAssigned(t, b, topic, 2, counts(recs)))
}

func TestAcks0(t *testing.T)   { feature(t, "acks_0"); testAcks(t, "0", sarama.NoResponse) }
func TestAcks1(t *testing.T)   { feature(t, "acks_1"); testAcks(t, "1", sarama.WaitForLocal) }
func TestAcksAll(t *testing.T) { feature(t, "acks_all"); testAcks(t, "all", sarama.WaitForAll) }

func TestIdempotentProducer(t *testing.T) {
	feature(t, "idempotent_produce")
	b := startBroker(t)
	createTopic(t, b, "go-idem", 2)
	cfg := config()
	cfg.Producer.Idempotent = true
	cfg.Net.MaxOpenRequests = 1
	cfg.Producer.Retry.Max = 3
	recs := makeRecords(200, 2, "idem", time.Now().Add(-10*time.Second).Truncate(time.Millisecond))
	offsets := produce(t, b, "go-idem", recs, cfg)
	checkRoundtrip(t, recs, offsets, consumeAssigned(t, b, "go-idem", 2, counts(recs)))
}

// listOffsetsSetup: 10 records on p0 with timestamps base, base+1s, ... base+9s; p1 empty.
func listOffsetsSetup(t *testing.T) (sarama.Client, time.Time) {
	b := startBroker(t)
	createTopic(t, b, "go-offsets", 2)
	base := time.Now().Add(-100 * time.Second).Truncate(time.Millisecond)
	var recs []rec
	for i := 0; i < 10; i++ {
		recs = append(recs, rec{partition: 0, key: []byte{byte(i)}, value: []byte("v"), ts: base.Add(time.Duration(i) * time.Second)})
	}
	produce(t, b, "go-offsets", recs, config())
	client, err := sarama.NewClient([]string{b.addr}, config())
	if err != nil {
		fatalf(t, "%v", err)
	}
	t.Cleanup(func() { client.Close() })
	return client, base
}

func checkOffset(t *testing.T, client sarama.Client, p int32, at int64, want int64) {
	t.Helper()
	got, err := client.GetOffset("go-offsets", p, at)
	if err != nil {
		fatalf(t, "GetOffset(p%d, %d): %v", p, at, err)
	}
	if got != want {
		fatalf(t, "GetOffset(p%d, %d) = %d, want %d", p, at, got, want)
	}
}

func TestListOffsetsEarliestLatest(t *testing.T) {
	feature(t, "list_offsets_earliest", "list_offsets_latest")
	client, _ := listOffsetsSetup(t)
	checkOffset(t, client, 0, sarama.OffsetOldest, 0)
	checkOffset(t, client, 0, sarama.OffsetNewest, 10)
	checkOffset(t, client, 1, sarama.OffsetOldest, 0)
	checkOffset(t, client, 1, sarama.OffsetNewest, 0)
}

// sarama 1.22 writes maxTimestamp = -1 into every record batch it produces (it never sets
// RecordBatch.MaxTimestamp). Kafka recomputes a batch's maxTimestamp from its records on append
// (LogValidator), so lookups by time work there whatever the client wrote.
func TestListOffsetsByTime(t *testing.T) {
	feature(t, "list_offsets_by_time")
	client, base := listOffsetsSetup(t)
	ms := func(tm time.Time) int64 { return tm.UnixNano() / int64(time.Millisecond) }
	checkOffset(t, client, 0, ms(base.Add(3500*time.Millisecond)), 4)
	checkOffset(t, client, 0, ms(base), 0)
	checkOffset(t, client, 0, ms(base.Add(999*time.Second)), -1) // no record at/after: -1
}

func TestUnknownTopicNoAutoCreate(t *testing.T) {
	feature(t, "unknown_topic_no_autocreate")
	b := startBroker(t, "--set", "auto.create.topics.enable=false")
	cfg := config()
	cfg.Producer.Partitioner = sarama.NewHashPartitioner
	p, err := sarama.NewSyncProducer([]string{b.addr}, cfg)
	if err != nil {
		fatalf(t, "%v", err)
	}
	defer p.Close()
	done := make(chan error, 1)
	go func() {
		_, _, err := p.SendMessage(&sarama.ProducerMessage{Topic: "go-nope", Value: sarama.StringEncoder("v")})
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, sarama.ErrUnknownTopicOrPartition) {
			var pe *sarama.ProducerError
			if !errors.As(err, &pe) || pe.Err != sarama.ErrUnknownTopicOrPartition {
				fatalf(t, "send to unknown topic: %v, want UNKNOWN_TOPIC_OR_PARTITION", err)
			}
		}
	case <-time.After(step):
		fatalf(t, "%v", "send to unknown topic did not fail within 60s")
	}
	client, err := sarama.NewClient([]string{b.addr}, config())
	if err != nil {
		fatalf(t, "%v", err)
	}
	defer client.Close()
	_ = client.RefreshMetadata()
	topics, err := client.Topics()
	if err != nil {
		fatalf(t, "%v", err)
	}
	for _, tp := range topics {
		if tp == "go-nope" {
			fatalf(t, "%v", "topic was auto-created")
		}
	}
}

func TestMessageTooLarge(t *testing.T) {
	feature(t, "message_too_large")
	b := startBroker(t)
	createTopic(t, b, "go-big", 1)
	cfg := config()
	// the client-side limit is raised above the broker's message.max.bytes (1048588), so
	// MESSAGE_TOO_LARGE can only come from the broker's Produce response
	cfg.Producer.MaxMessageBytes = 8 << 20
	cfg.Producer.Retry.Max = 0
	p, err := sarama.NewSyncProducer([]string{b.addr}, cfg)
	if err != nil {
		fatalf(t, "%v", err)
	}
	defer p.Close()
	_, _, err = p.SendMessage(&sarama.ProducerMessage{Topic: "go-big", Partition: 0, Key: sarama.StringEncoder("big"),
		Value: sarama.ByteEncoder(bytes.Repeat([]byte("x"), 2<<20))})
	if !errors.Is(err, sarama.ErrMessageSizeTooLarge) {
		var pe *sarama.ProducerError
		if !errors.As(err, &pe) || pe.Err != sarama.ErrMessageSizeTooLarge {
			fatalf(t, "big send: %v, want MESSAGE_TOO_LARGE", err)
		}
	}
	ts := time.Unix(1_700_000_000, 0)
	_, off, err := p.SendMessage(&sarama.ProducerMessage{Topic: "go-big", Partition: 0, Key: sarama.StringEncoder("k"),
		Value: sarama.StringEncoder("small"), Timestamp: ts,
		Headers: []sarama.RecordHeader{{Key: []byte("a"), Value: []byte("b")}}})
	if err != nil || off != 0 {
		fatalf(t, "small send after rejection: offset %d, %v", off, err)
	}
	g := consumeAssigned(t, b, "go-big", 1, map[int32]int{0: 1})[0][0]
	if string(g.value) != "small" || !g.ts.Equal(ts) || len(g.headers) != 1 || string(g.headers[0].Value) != "b" {
		fatalf(t, "read back %+v", g)
	}
}

type groupHandler struct {
	mu     sync.Mutex
	got    map[int32][]got
	total  int
	want   int
	done   chan struct{}
	closed bool
}

func (h *groupHandler) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (h *groupHandler) Cleanup(sarama.ConsumerGroupSession) error { return nil }
func (h *groupHandler) ConsumeClaim(s sarama.ConsumerGroupSession, c sarama.ConsumerGroupClaim) error {
	for m := range c.Messages() {
		h.mu.Lock()
		h.got[m.Partition] = append(h.got[m.Partition], got{m.Offset, m.Key, m.Value, m.Headers, m.Timestamp})
		h.total++
		s.MarkMessage(m, "")
		if h.total >= h.want && !h.closed {
			h.closed = true
			close(h.done)
		}
		h.mu.Unlock()
	}
	return nil
}

func TestConsumerGroup(t *testing.T) {
	feature(t, "consume_group")
	b := startBroker(t)
	needGroups(t, b)
	topic := "go-group"
	createTopic(t, b, topic, 3)
	recs := makeRecords(90, 3, "grp", time.Now().Add(-5*time.Second).Truncate(time.Millisecond))
	offsets := produce(t, b, topic, recs, config())
	cfg := config()
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	cfg.Consumer.Group.Session.Timeout = 10 * time.Second
	cfg.Consumer.Group.Heartbeat.Interval = time.Second
	cfg.Consumer.Offsets.CommitInterval = 200 * time.Millisecond
	g, err := sarama.NewConsumerGroup([]string{b.addr}, "go-g1", cfg)
	if err != nil {
		fatalf(t, "NewConsumerGroup: %v", err)
	}
	h := &groupHandler{got: map[int32][]got{}, want: len(recs), done: make(chan struct{})}
	stop := make(chan struct{})
	errc := make(chan error, 1)
	go func() {
		for {
			if err := g.Consume(context.Background(), []string{topic}, h); err != nil {
				errc <- err
				return
			}
			select {
			case <-stop:
				errc <- nil
				return
			default:
			}
		}
	}()
	select {
	case <-h.done:
	case err := <-errc:
		fatalf(t, "Consume: %v", err)
	case e := <-g.Errors():
		fatalf(t, "group error: %v", e)
	case <-time.After(step):
		fatalf(t, "group consumed %d of %d within %v", h.total, len(recs), step)
	}
	close(stop)
	time.Sleep(500 * time.Millisecond) // let a commit interval pass
	within(t, "group close", 30*time.Second, g.Close)
	h.mu.Lock()
	checkRoundtrip(t, recs, offsets, h.got)
	h.mu.Unlock()
	// committed offsets (OffsetFetch through a new offset manager): 30 per partition
	client, err := sarama.NewClient([]string{b.addr}, config())
	if err != nil {
		fatalf(t, "%v", err)
	}
	defer client.Close()
	om, err := sarama.NewOffsetManagerFromClient("go-g1", client)
	if err != nil {
		fatalf(t, "%v", err)
	}
	defer om.Close()
	for p := int32(0); p < 3; p++ {
		pom, err := om.ManagePartition(topic, p)
		if err != nil {
			fatalf(t, "%v", err)
		}
		if next, _ := pom.NextOffset(); next != 30 {
			errorf(t, "p%d: committed %d, want 30", p, next)
		}
		within(t, "pom close", 30*time.Second, pom.Close)
	}
}

func TestCommitFetchOffsets(t *testing.T) {
	feature(t, "commit_fetch_offsets")
	b := startBroker(t)
	needGroups(t, b)
	topic := "go-commit"
	createTopic(t, b, topic, 2)
	produce(t, b, topic, makeRecords(20, 2, "cm", time.Now().Truncate(time.Millisecond)), config())
	cfg := config()
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	commit := func() {
		client, err := sarama.NewClient([]string{b.addr}, cfg)
		if err != nil {
			fatalf(t, "%v", err)
		}
		defer client.Close()
		om, err := sarama.NewOffsetManagerFromClient("go-manual", client)
		if err != nil {
			fatalf(t, "%v", err)
		}
		for p, off := range map[int32]int64{0: 7, 1: 3} {
			pom, err := om.ManagePartition(topic, p)
			if err != nil {
				fatalf(t, "%v", err)
			}
			if next, _ := pom.NextOffset(); next != sarama.OffsetOldest {
				errorf(t, "p%d: committed before any commit: %d", p, next)
			}
			pom.MarkOffset(off, "meta")
			within(t, "pom close (flushes the commit)", 30*time.Second, pom.Close)
		}
		within(t, "offset manager close", 30*time.Second, om.Close)
	}
	commit()
	client, err := sarama.NewClient([]string{b.addr}, cfg)
	if err != nil {
		fatalf(t, "%v", err)
	}
	defer client.Close()
	om, err := sarama.NewOffsetManagerFromClient("go-manual", client)
	if err != nil {
		fatalf(t, "%v", err)
	}
	defer om.Close()
	for p, want := range map[int32]int64{0: 7, 1: 3} {
		pom, err := om.ManagePartition(topic, p)
		if err != nil {
			fatalf(t, "%v", err)
		}
		next, meta := pom.NextOffset()
		if next != want || meta != "meta" {
			errorf(t, "p%d: fetched committed %d %q, want %d \"meta\"", p, next, meta, want)
		}
		within(t, "pom close", 30*time.Second, pom.Close)
	}
}
