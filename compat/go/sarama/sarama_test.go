// sarama (github.com/IBM/sarama, see go.mod) against a real gregor process.
//
// Each test starts its own broker (free port, temp log dir) and checks the data that comes
// back: keys, values, headers, timestamps, offsets and order per partition.
//
// Config.Version is sarama.MaxVersion (4.3): sarama clamps every request to the range the
// broker advertises in ApiVersions, so this exercises the newest versions of both. The
// TestLegacyV2_1 subtests run the core paths again at V2_1_0_0, which makes sarama send older
// versions Kafka 4.x (and gregor) still serve (seen in gregor's protocol log): Produce v7,
// Fetch v10, Metadata v7, ListOffsets v4, OffsetCommit v6, OffsetFetch v5, FindCoordinator v2,
// JoinGroup v3, SyncGroup v2, Heartbeat v2, LeaveGroup v2.
//
// Results: compat/results/sarama.json (key "sarama", read by scripts/matrix.py).
package sarama_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"

	gt "gregor/compat/go/internal/gregortest"
)

var (
	modern = sarama.MaxVersion
	legacy = sarama.V2_1_0_0
)

func TestMain(m *testing.M) {
	code := m.Run()
	gt.WriteResults("sarama", gt.ModuleVersion("github.com/IBM/sarama")+
		" (Config.Version "+modern.String()+"; legacy runs at "+legacy.String()+")")
	os.Exit(code)
}

// ------------------------------------------------------------------ helpers

func config(v sarama.KafkaVersion) *sarama.Config {
	c := sarama.NewConfig()
	c.Version = v
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
	c.Consumer.Offsets.Retention = 7 * 24 * time.Hour
	return c
}

func admin(t *testing.T, b *gt.Broker, v sarama.KafkaVersion) sarama.TransactionClusterAdmin {
	t.Helper()
	a, err := sarama.NewClusterAdmin([]string{b.Addr}, config(v))
	gt.Check(t, err, "NewClusterAdmin")
	t.Cleanup(func() { a.Close() })
	return a.(sarama.TransactionClusterAdmin)
}

func client(t *testing.T, b *gt.Broker, cfg *sarama.Config) sarama.Client {
	t.Helper()
	c, err := sarama.NewClient([]string{b.Addr}, cfg)
	gt.Check(t, err, "NewClient")
	t.Cleanup(func() { c.Close() })
	return c
}

func createTopic(t *testing.T, b *gt.Broker, topic string, partitions int32) {
	t.Helper()
	a, err := sarama.NewClusterAdmin([]string{b.Addr}, config(modern))
	gt.Check(t, err, "NewClusterAdmin")
	defer a.Close()
	gt.Check(t, a.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: partitions, ReplicationFactor: 1}, false),
		"CreateTopic "+topic)
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

func message(topic string, r rec, meta any) *sarama.ProducerMessage {
	return &sarama.ProducerMessage{Topic: topic, Partition: r.partition, Key: sarama.ByteEncoder(r.key),
		Value: sarama.ByteEncoder(r.value), Headers: r.headers, Timestamp: r.ts, Metadata: meta}
}

// produce sends all records through the async producer (so batches hold several records);
// returns the offset assigned to each record (in input order).
func produce(t *testing.T, b *gt.Broker, topic string, recs []rec, cfg *sarama.Config) []int64 {
	t.Helper()
	p, err := sarama.NewAsyncProducer([]string{b.Addr}, cfg)
	gt.Check(t, err, "NewAsyncProducer")
	defer p.Close()
	go func() {
		for i, r := range recs {
			p.Input() <- message(topic, r, i)
		}
	}()
	offsets := make([]int64, len(recs))
	timeout := time.After(gt.Step)
	for n := 0; n < len(recs); n++ {
		select {
		case m := <-p.Successes():
			offsets[m.Metadata.(int)] = m.Offset
		case e := <-p.Errors():
			gt.Fatalf(t, "produce error: %v", e.Err)
		case <-timeout:
			gt.Fatalf(t, "timed out waiting for deliveries (%d of %d)", n, len(recs))
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

func consumeAssigned(t *testing.T, b *gt.Broker, cfg *sarama.Config, topic string, partitions int32, perPartition map[int32]int) map[int32][]got {
	t.Helper()
	c, err := sarama.NewConsumer([]string{b.Addr}, cfg)
	gt.Check(t, err, "NewConsumer")
	defer c.Close()
	out := map[int32][]got{}
	for p := int32(0); p < partitions; p++ {
		pc, err := c.ConsumePartition(topic, p, sarama.OffsetOldest)
		gt.Check(t, err, fmt.Sprintf("ConsumePartition %d", p))
		timeout := time.After(gt.Step)
		for len(out[p]) < perPartition[p] {
			select {
			case m := <-pc.Messages():
				out[p] = append(out[p], got{m.Offset, m.Key, m.Value, m.Headers, m.Timestamp})
			case e := <-pc.Errors():
				pc.Close()
				gt.Fatalf(t, "consume p%d: %v", p, e.Err)
			case <-timeout:
				pc.Close()
				gt.Fatalf(t, "p%d: consumed %d of %d within %v", p, len(out[p]), perPartition[p], gt.Step)
			}
		}
		// nothing beyond what was produced
		select {
		case m := <-pc.Messages():
			gt.Errorf(t, "p%d: unexpected extra record at offset %d: %q", p, m.Offset, m.Value)
		case <-time.After(300 * time.Millisecond):
		}
		pc.Close()
	}
	return out
}

// checkRoundtrip: per partition, the consumed records are the produced ones in order, at
// offsets 0.. (or at want offsets when offsets != nil), with keys, values, headers, timestamps.
func checkRoundtrip(t *testing.T, recs []rec, offsets []int64, consumed map[int32][]got) {
	t.Helper()
	checkRoundtripFrom(t, recs, offsets, consumed, true)
}

func checkRoundtripFrom(t *testing.T, recs []rec, offsets []int64, consumed map[int32][]got, dense bool) {
	t.Helper()
	want := map[int32][]int{}
	for i, r := range recs {
		want[r.partition] = append(want[r.partition], i)
	}
	for p, idxs := range want {
		gs := consumed[p]
		if len(gs) != len(idxs) {
			gt.Fatalf(t, "p%d: consumed %d records, produced %d", p, len(gs), len(idxs))
		}
		for j, i := range idxs {
			g, r := gs[j], recs[i]
			if dense && g.offset != int64(j) {
				gt.Fatalf(t, "p%d: record %d at offset %d", p, j, g.offset)
			}
			if j > 0 && g.offset <= gs[j-1].offset {
				gt.Fatalf(t, "p%d: offsets not increasing: %d after %d", p, g.offset, gs[j-1].offset)
			}
			if offsets != nil && offsets[i] != g.offset {
				gt.Fatalf(t, "p%d: delivered offset %d, consumed at %d", p, offsets[i], g.offset)
			}
			if !bytes.Equal(g.key, r.key) || !bytes.Equal(g.value, r.value) {
				gt.Fatalf(t, "p%d@%d: key/value %q/%q, want %q/%q", p, g.offset, g.key, g.value, r.key, r.value)
			}
			if !g.ts.Equal(r.ts) {
				gt.Fatalf(t, "p%d@%d: timestamp %v, want %v", p, g.offset, g.ts, r.ts)
			}
			if len(g.headers) != len(r.headers) {
				gt.Fatalf(t, "p%d@%d: %d headers, want %d", p, g.offset, len(g.headers), len(r.headers))
			}
			for k, h := range g.headers {
				if !bytes.Equal(h.Key, r.headers[k].Key) || !bytes.Equal(h.Value, r.headers[k].Value) {
					gt.Fatalf(t, "p%d@%d: header %d = %q:%q, want %q:%q", p, g.offset, k, h.Key, h.Value,
						r.headers[k].Key, r.headers[k].Value)
				}
			}
		}
	}
}

func counts(recs []rec) map[int32]int {
	m := map[int32]int{}
	for _, r := range recs {
		m[r.partition]++
	}
	return m
}

// ------------------------------------------------------------------ admin

func TestAdminCreateDeleteTopic(t *testing.T) {
	gt.Feature(t, "admin_create_topic", "admin_delete_topic", "metadata_all_topics")
	b := gt.Start(t)
	a := admin(t, b, modern)
	gt.Check(t, a.CreateTopic("go-admin", &sarama.TopicDetail{NumPartitions: 4, ReplicationFactor: 1,
		ConfigEntries: map[string]*string{"retention.ms": ptr("3600000")}}, false), "create")
	err := a.CreateTopic("go-admin", &sarama.TopicDetail{NumPartitions: 4, ReplicationFactor: 1}, false)
	if !errors.Is(err, sarama.ErrTopicAlreadyExists) {
		gt.Fatalf(t, "second create: %v, want TOPIC_ALREADY_EXISTS", err)
	}
	topics, err := a.ListTopics() // Metadata (all topics) + DescribeConfigs
	gt.Check(t, err, "ListTopics")
	d, ok := topics["go-admin"]
	if !ok || d.NumPartitions != 4 || d.ReplicationFactor != 1 {
		gt.Fatalf(t, "ListTopics: go-admin = %+v (listed %v)", d, ok)
	}
	if v := d.ConfigEntries["retention.ms"]; v == nil || *v != "3600000" {
		gt.Errorf(t, "ListTopics: retention.ms = %v, want 3600000", v)
	}
	md, err := a.DescribeTopics([]string{"go-admin"})
	gt.Check(t, err, "DescribeTopics")
	if len(md) != 1 || len(md[0].Partitions) != 4 || md[0].Err != sarama.ErrNoError {
		gt.Fatalf(t, "DescribeTopics: %+v", md)
	}
	gt.Check(t, a.DeleteTopic("go-admin"), "delete")
	gt.Eventually(t, "go-admin gone from ListTopics", 20*time.Second, func() error {
		topics, err := a.ListTopics()
		if err != nil {
			return err
		}
		if _, ok := topics["go-admin"]; ok {
			return errors.New("still listed")
		}
		return nil
	})
	if err := a.DeleteTopic("go-never"); !errors.Is(err, sarama.ErrUnknownTopicOrPartition) {
		gt.Fatalf(t, "delete unknown: %v, want UNKNOWN_TOPIC_OR_PARTITION", err)
	}
}

func ptr[T any](v T) *T { return &v }

func TestAdminPartitions(t *testing.T) {
	gt.Feature(t, "admin_partitions")
	b := gt.Start(t)
	a := admin(t, b, modern)
	createTopic(t, b, "go-parts", 2)
	gt.Check(t, a.CreatePartitions("go-parts", 5, nil, false), "CreatePartitions 5")
	err := a.CreatePartitions("go-parts", 3, nil, false)
	if !errors.Is(err, sarama.ErrInvalidPartitions) {
		gt.Errorf(t, "shrink to 3: %v, want INVALID_PARTITIONS", err)
	}
	md, err := a.DescribeTopics([]string{"go-parts"})
	gt.Check(t, err, "DescribeTopics")
	if len(md) != 1 || len(md[0].Partitions) != 5 {
		gt.Fatalf(t, "after CreatePartitions: %d partitions, want 5", len(md[0].Partitions))
	}
	// the new partition takes data
	recs := makeRecords(10, 5, "parts", time.Now().Truncate(time.Millisecond))
	offsets := produce(t, b, "go-parts", recs, config(modern))
	checkRoundtrip(t, recs, offsets, consumeAssigned(t, b, config(modern), "go-parts", 5, counts(recs)))
}

func TestAdminConfigs(t *testing.T) {
	gt.Feature(t, "admin_configs")
	b := gt.Start(t)
	a := admin(t, b, modern)
	createTopic(t, b, "go-cfg", 1)
	res := sarama.ConfigResource{Type: sarama.TopicResource, Name: "go-cfg"}
	find := func(name string) *sarama.ConfigEntry {
		entries, err := a.DescribeConfig(res)
		gt.Check(t, err, "DescribeConfig")
		for i := range entries {
			if entries[i].Name == name {
				return &entries[i]
			}
		}
		return nil
	}
	e := find("cleanup.policy")
	if e == nil || e.Value != "delete" || !e.Default {
		gt.Fatalf(t, "cleanup.policy before: %+v, want delete (default)", e)
	}
	gt.Check(t, a.IncrementalAlterConfig(sarama.TopicResource, "go-cfg", map[string]sarama.IncrementalAlterConfigsEntry{
		"retention.ms": {Operation: sarama.IncrementalAlterConfigsOperationSet, Value: ptr("123456")},
	}, false), "IncrementalAlterConfig")
	if e := find("retention.ms"); e == nil || e.Value != "123456" || e.Source != sarama.SourceTopic {
		gt.Fatalf(t, "retention.ms after incremental alter: %+v", e)
	}
	// legacy AlterConfigs replaces the whole set
	gt.Check(t, a.AlterConfig(sarama.TopicResource, "go-cfg", map[string]*string{"segment.ms": ptr("7200000")}, false),
		"AlterConfig")
	if e := find("segment.ms"); e == nil || e.Value != "7200000" {
		gt.Fatalf(t, "segment.ms after AlterConfig: %+v", e)
	}
	if e := find("retention.ms"); e == nil || e.Value == "123456" {
		gt.Fatalf(t, "retention.ms after a full AlterConfig without it: %+v, want the default back", e)
	}
	// broker configs
	entries, err := a.DescribeConfig(sarama.ConfigResource{Type: sarama.BrokerResource, Name: "1"})
	gt.Check(t, err, "DescribeConfig broker 1")
	found := false
	for _, e := range entries {
		if e.Name == "message.max.bytes" {
			found = e.Value == "1048588"
		}
	}
	if !found {
		gt.Errorf(t, "broker config message.max.bytes=1048588 not described (%d entries)", len(entries))
	}
}

func TestAdminDeleteRecords(t *testing.T) {
	gt.Feature(t, "admin_delete_records")
	b := gt.Start(t)
	a := admin(t, b, modern)
	createTopic(t, b, "go-delrec", 1)
	recs := makeRecords(20, 1, "dr", time.Now().Truncate(time.Millisecond))
	produce(t, b, "go-delrec", recs, config(modern))
	gt.Check(t, a.DeleteRecords("go-delrec", map[int32]int64{0: 12}), "DeleteRecords")
	c := client(t, b, config(modern))
	if off, err := c.GetOffset("go-delrec", 0, sarama.OffsetOldest); err != nil || off != 12 {
		gt.Fatalf(t, "earliest after DeleteRecords(12): %d %v", off, err)
	}
	cons := consumeAssigned(t, b, config(modern), "go-delrec", 1, map[int32]int{0: 8})
	if cons[0][0].offset != 12 || string(cons[0][0].value) != string(recs[12].value) {
		gt.Fatalf(t, "first record after delete: offset %d %q", cons[0][0].offset, cons[0][0].value)
	}
}

func TestAdminLogDirs(t *testing.T) {
	gt.Feature(t, "admin_log_dirs")
	b := gt.Start(t)
	a := admin(t, b, modern)
	createTopic(t, b, "go-logdirs", 2)
	produce(t, b, "go-logdirs", makeRecords(50, 1, "ld", time.Now().Truncate(time.Millisecond)), config(modern))
	dirs, err := a.DescribeLogDirs([]int32{1})
	gt.Check(t, err, "DescribeLogDirs")
	var sizes = map[int32]int64{}
	for _, d := range dirs[1] {
		if d.ErrorCode != sarama.ErrNoError || !strings.Contains(d.Path, b.Dir) {
			gt.Errorf(t, "log dir %q error %v (want under %s)", d.Path, d.ErrorCode, b.Dir)
		}
		for _, tp := range d.Topics {
			if tp.Topic == "go-logdirs" {
				for _, p := range tp.Partitions {
					sizes[p.PartitionID] = p.Size
				}
			}
		}
	}
	if len(sizes) != 2 || sizes[0] <= 0 || sizes[1] != 0 {
		gt.Fatalf(t, "partition sizes %v: want p0 > 0, p1 = 0", sizes)
	}
}

func TestAdminCluster(t *testing.T) {
	gt.Feature(t, "admin_features")
	b := gt.Start(t)
	a := admin(t, b, modern)
	brokers, controller, err := a.DescribeCluster()
	gt.Check(t, err, "DescribeCluster")
	if len(brokers) != 1 || brokers[0].ID() != 1 || brokers[0].Addr() != b.Addr || controller != 1 {
		gt.Fatalf(t, "DescribeCluster: %d brokers (first %v), controller %d", len(brokers), brokers, controller)
	}
}

// ------------------------------------------------------------------ produce / consume

func testCodec(t *testing.T, v sarama.KafkaVersion, name string, codec sarama.CompressionCodec) {
	b := gt.Start(t)
	topic := "go-codec-" + name
	createTopic(t, b, topic, 3)
	recs := makeRecords(300, 3, name, time.Now().Add(-time.Minute).Truncate(time.Millisecond))
	cfg := config(v)
	cfg.Producer.Compression = codec
	offsets := produce(t, b, topic, recs, cfg)
	checkRoundtrip(t, recs, offsets, consumeAssigned(t, b, config(v), topic, 3, counts(recs)))
}

func TestProduceConsumeNone(t *testing.T) {
	gt.Feature(t, "produce_none", "consume_assign", "acks_all")
	testCodec(t, modern, "none", sarama.CompressionNone)
}

func TestProduceConsumeGzip(t *testing.T) {
	gt.Feature(t, "produce_gzip")
	testCodec(t, modern, "gzip", sarama.CompressionGZIP)
}

func TestProduceConsumeSnappy(t *testing.T) {
	gt.Feature(t, "produce_snappy")
	testCodec(t, modern, "snappy", sarama.CompressionSnappy)
}

func TestProduceConsumeLz4(t *testing.T) {
	gt.Feature(t, "produce_lz4")
	testCodec(t, modern, "lz4", sarama.CompressionLZ4)
}

func TestProduceConsumeZstd(t *testing.T) {
	gt.Feature(t, "produce_zstd")
	testCodec(t, modern, "zstd", sarama.CompressionZSTD)
}

func testAcks(t *testing.T, name string, acks sarama.RequiredAcks) {
	b := gt.Start(t)
	topic := "go-acks-" + name
	createTopic(t, b, topic, 2)
	recs := makeRecords(100, 2, "acks"+name, time.Now().Add(-30*time.Second).Truncate(time.Millisecond))
	cfg := config(modern)
	cfg.Producer.RequiredAcks = acks
	offsets := produce(t, b, topic, recs, cfg)
	if acks == sarama.NoResponse {
		offsets = nil // the client learns no offsets with acks=0; the data must still land
	}
	checkRoundtrip(t, recs, offsets, consumeAssigned(t, b, config(modern), topic, 2, counts(recs)))
}

func TestAcks0(t *testing.T)   { gt.Feature(t, "acks_0"); testAcks(t, "0", sarama.NoResponse) }
func TestAcks1(t *testing.T)   { gt.Feature(t, "acks_1"); testAcks(t, "1", sarama.WaitForLocal) }
func TestAcksAll(t *testing.T) { gt.Feature(t, "acks_all"); testAcks(t, "all", sarama.WaitForAll) }

func TestIdempotentProducer(t *testing.T) {
	gt.Feature(t, "idempotent_produce")
	b := gt.Start(t)
	createTopic(t, b, "go-idem", 2)
	cfg := config(modern)
	cfg.Producer.Idempotent = true
	cfg.Net.MaxOpenRequests = 1
	cfg.Producer.Retry.Max = 3
	cfg.Producer.Compression = sarama.CompressionZSTD
	recs := makeRecords(200, 2, "idem", time.Now().Add(-10*time.Second).Truncate(time.Millisecond))
	offsets := produce(t, b, "go-idem", recs, cfg)
	checkRoundtrip(t, recs, offsets, consumeAssigned(t, b, config(modern), "go-idem", 2, counts(recs)))
	// the broker knows the producer (DescribeProducers): sequence of the last record = 99
	a := admin(t, b, modern)
	ps, err := a.DescribeProducers(map[string][]int32{"go-idem": {0, 1}})
	gt.Check(t, err, "DescribeProducers")
	for p := int32(0); p < 2; p++ {
		st := ps["go-idem"][p]
		if st.ErrorCode != sarama.ErrNoError || len(st.ActiveProducers) != 1 || st.ActiveProducers[0].LastSequence != 99 {
			gt.Errorf(t, "DescribeProducers p%d: %+v, want one producer with last sequence 99", p, st)
		}
	}
}

// listOffsetsSetup: 10 records on p0 with timestamps base, base+1s, ... base+9s; p1 empty.
func listOffsetsSetup(t *testing.T, v sarama.KafkaVersion) (sarama.Client, time.Time) {
	b := gt.Start(t)
	createTopic(t, b, "go-offsets", 2)
	base := time.Now().Add(-100 * time.Second).Truncate(time.Millisecond)
	var recs []rec
	for i := 0; i < 10; i++ {
		recs = append(recs, rec{partition: 0, key: []byte{byte(i)}, value: []byte("v"), ts: base.Add(time.Duration(i) * time.Second)})
	}
	produce(t, b, "go-offsets", recs, config(v))
	return client(t, b, config(v)), base
}

func checkOffset(t *testing.T, c sarama.Client, p int32, at int64, want int64) {
	t.Helper()
	got, err := c.GetOffset("go-offsets", p, at)
	gt.Check(t, err, fmt.Sprintf("GetOffset(p%d, %d)", p, at))
	if got != want {
		gt.Fatalf(t, "GetOffset(p%d, %d) = %d, want %d", p, at, got, want)
	}
}

func listOffsetsEarliestLatest(t *testing.T, v sarama.KafkaVersion) {
	c, _ := listOffsetsSetup(t, v)
	checkOffset(t, c, 0, sarama.OffsetOldest, 0)
	checkOffset(t, c, 0, sarama.OffsetNewest, 10)
	checkOffset(t, c, 1, sarama.OffsetOldest, 0)
	checkOffset(t, c, 1, sarama.OffsetNewest, 0)
}

func listOffsetsByTime(t *testing.T, v sarama.KafkaVersion) {
	c, base := listOffsetsSetup(t, v)
	checkOffset(t, c, 0, base.Add(3500*time.Millisecond).UnixMilli(), 4)
	checkOffset(t, c, 0, base.UnixMilli(), 0)
	checkOffset(t, c, 0, base.Add(999*time.Second).UnixMilli(), -1) // no record at/after: -1
}

func TestListOffsetsEarliestLatest(t *testing.T) {
	gt.Feature(t, "list_offsets_earliest", "list_offsets_latest")
	listOffsetsEarliestLatest(t, modern)
}

func TestListOffsetsByTime(t *testing.T) {
	gt.Feature(t, "list_offsets_by_time")
	listOffsetsByTime(t, modern)
}

func TestUnknownTopicNoAutoCreate(t *testing.T) {
	gt.Feature(t, "unknown_topic_no_autocreate")
	b := gt.Start(t, "--set", "auto.create.topics.enable=false")
	cfg := config(modern)
	cfg.Producer.Partitioner = sarama.NewHashPartitioner
	p, err := sarama.NewSyncProducer([]string{b.Addr}, cfg)
	gt.Check(t, err, "NewSyncProducer")
	defer p.Close()
	done := make(chan error, 1)
	go func() {
		_, _, err := p.SendMessage(&sarama.ProducerMessage{Topic: "go-nope", Value: sarama.StringEncoder("v")})
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, sarama.ErrUnknownTopicOrPartition) {
			gt.Fatalf(t, "send to unknown topic: %v, want UNKNOWN_TOPIC_OR_PARTITION", err)
		}
	case <-time.After(gt.Step):
		gt.Fatalf(t, "%v", "send to unknown topic did not fail within 60s")
	}
	c := client(t, b, config(modern))
	_ = c.RefreshMetadata()
	topics, err := c.Topics()
	gt.Check(t, err, "Topics")
	for _, tp := range topics {
		if tp == "go-nope" {
			gt.Fatalf(t, "%v", "topic was auto-created")
		}
	}
}

func TestMessageTooLarge(t *testing.T) {
	gt.Feature(t, "message_too_large")
	b := gt.Start(t)
	createTopic(t, b, "go-big", 1)
	cfg := config(modern)
	// the client-side limit is raised above the broker's message.max.bytes (1048588), so
	// MESSAGE_TOO_LARGE can only come from the broker's Produce response
	cfg.Producer.MaxMessageBytes = 8 << 20
	cfg.Producer.Retry.Max = 0
	p, err := sarama.NewSyncProducer([]string{b.Addr}, cfg)
	gt.Check(t, err, "NewSyncProducer")
	defer p.Close()
	_, _, err = p.SendMessage(&sarama.ProducerMessage{Topic: "go-big", Partition: 0, Key: sarama.StringEncoder("big"),
		Value: sarama.ByteEncoder(bytes.Repeat([]byte("x"), 2<<20))})
	if !errors.Is(err, sarama.ErrMessageSizeTooLarge) {
		gt.Fatalf(t, "big send: %v, want MESSAGE_TOO_LARGE", err)
	}
	ts := time.Unix(1_700_000_000, 0)
	_, off, err := p.SendMessage(&sarama.ProducerMessage{Topic: "go-big", Partition: 0, Key: sarama.StringEncoder("k"),
		Value: sarama.StringEncoder("small"), Timestamp: ts,
		Headers: []sarama.RecordHeader{{Key: []byte("a"), Value: []byte("b")}}})
	if err != nil || off != 0 {
		gt.Fatalf(t, "small send after rejection: offset %d, %v", off, err)
	}
	g := consumeAssigned(t, b, config(modern), "go-big", 1, map[int32]int{0: 1})[0][0]
	if string(g.value) != "small" || !g.ts.Equal(ts) || len(g.headers) != 1 || string(g.headers[0].Value) != "b" {
		gt.Fatalf(t, "read back %+v", g)
	}
}

// ------------------------------------------------------------------ groups

type groupHandler struct {
	mu     sync.Mutex
	got    map[int32][]got
	total  int
	want   int
	done   chan struct{}
	closed bool
	owned  map[int32]bool // partitions whose ConsumeClaim is running
}

func newHandler(want int) *groupHandler {
	return &groupHandler{got: map[int32][]got{}, want: want, done: make(chan struct{}), owned: map[int32]bool{}}
}

func (h *groupHandler) Setup(s sarama.ConsumerGroupSession) error { return nil }
func (h *groupHandler) Cleanup(sarama.ConsumerGroupSession) error { return nil }
func (h *groupHandler) ConsumeClaim(s sarama.ConsumerGroupSession, c sarama.ConsumerGroupClaim) error {
	h.mu.Lock()
	h.owned[c.Partition()] = true
	h.mu.Unlock()
	defer func() {
		h.mu.Lock()
		delete(h.owned, c.Partition())
		h.mu.Unlock()
	}()
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

func (h *groupHandler) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.total
}

// lastClaim: the partitions this member consumes now.
func (h *groupHandler) lastClaim() []int32 {
	h.mu.Lock()
	defer h.mu.Unlock()
	var ps []int32
	for p := range h.owned {
		ps = append(ps, p)
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i] < ps[j] })
	return ps
}

// runGroup consumes in a loop until ctx ends; returns the channel of Consume's final error.
func runGroup(ctx context.Context, g sarama.ConsumerGroup, topics []string, h sarama.ConsumerGroupHandler) chan error {
	errc := make(chan error, 1)
	go func() {
		for {
			if err := g.Consume(ctx, topics, h); err != nil {
				errc <- err
				return
			}
			if ctx.Err() != nil {
				errc <- nil
				return
			}
		}
	}()
	return errc
}

func groupConfig(v sarama.KafkaVersion) *sarama.Config {
	cfg := config(v)
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	cfg.Consumer.Group.Session.Timeout = 10 * time.Second
	cfg.Consumer.Group.Heartbeat.Interval = time.Second
	cfg.Consumer.Offsets.AutoCommit.Interval = 200 * time.Millisecond
	return cfg
}

func consumerGroup(t *testing.T, v sarama.KafkaVersion) {
	b := gt.Start(t)
	topic := "go-group"
	createTopic(t, b, topic, 3)
	recs := makeRecords(90, 3, "grp", time.Now().Add(-5*time.Second).Truncate(time.Millisecond))
	offsets := produce(t, b, topic, recs, config(v))
	g, err := sarama.NewConsumerGroup([]string{b.Addr}, "go-g1", groupConfig(v))
	gt.Check(t, err, "NewConsumerGroup")
	h := newHandler(len(recs))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := runGroup(ctx, g, []string{topic}, h)
	select {
	case <-h.done:
	case err := <-errc:
		gt.Fatalf(t, "Consume: %v", err)
	case e := <-g.Errors():
		gt.Fatalf(t, "group error: %v", e)
	case <-time.After(gt.Step):
		gt.Fatalf(t, "group consumed %d of %d within %v", h.count(), len(recs), gt.Step)
	}
	cancel()
	gt.Within(t, "group close", 30*time.Second, g.Close) // commits the marked offsets
	h.mu.Lock()
	checkRoundtrip(t, recs, offsets, h.got)
	h.mu.Unlock()
	// committed offsets (OffsetFetch through a new offset manager): 30 per partition
	c := client(t, b, config(v))
	om, err := sarama.NewOffsetManagerFromClient("go-g1", c)
	gt.Check(t, err, "NewOffsetManagerFromClient")
	defer om.Close()
	for p := int32(0); p < 3; p++ {
		pom, err := om.ManagePartition(topic, p)
		gt.Check(t, err, "ManagePartition")
		if next, _ := pom.NextOffset(); next != 30 {
			gt.Errorf(t, "p%d: committed %d, want 30", p, next)
		}
		gt.Within(t, "pom close", 30*time.Second, pom.Close)
	}
}

func TestConsumerGroup(t *testing.T) {
	gt.Feature(t, "consume_group")
	consumerGroup(t, modern)
}

func commitFetchOffsets(t *testing.T, v sarama.KafkaVersion) {
	b := gt.Start(t)
	topic := "go-commit"
	createTopic(t, b, topic, 2)
	produce(t, b, topic, makeRecords(20, 2, "cm", time.Now().Truncate(time.Millisecond)), config(v))
	cfg := config(v)
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	func() {
		c := client(t, b, cfg)
		om, err := sarama.NewOffsetManagerFromClient("go-manual", c)
		gt.Check(t, err, "NewOffsetManagerFromClient")
		for p, off := range map[int32]int64{0: 7, 1: 3} {
			pom, err := om.ManagePartition(topic, p)
			gt.Check(t, err, "ManagePartition")
			if next, _ := pom.NextOffset(); next != sarama.OffsetOldest {
				gt.Errorf(t, "p%d: committed before any commit: %d", p, next)
			}
			pom.MarkOffset(off, "meta")
			gt.Within(t, "pom close (flushes the commit)", 30*time.Second, pom.Close)
		}
		gt.Within(t, "offset manager close", 30*time.Second, om.Close)
	}()
	c := client(t, b, cfg)
	om, err := sarama.NewOffsetManagerFromClient("go-manual", c)
	gt.Check(t, err, "NewOffsetManagerFromClient")
	defer om.Close()
	for p, want := range map[int32]int64{0: 7, 1: 3} {
		pom, err := om.ManagePartition(topic, p)
		gt.Check(t, err, "ManagePartition")
		next, meta := pom.NextOffset()
		if next != want || meta != "meta" {
			gt.Errorf(t, "p%d: fetched committed %d %q, want %d \"meta\"", p, next, meta, want)
		}
		gt.Within(t, "pom close", 30*time.Second, pom.Close)
	}
}

func TestCommitFetchOffsets(t *testing.T) {
	gt.Feature(t, "commit_fetch_offsets")
	commitFetchOffsets(t, modern)
}

// Two members with the cooperative-sticky strategy: the second join moves partitions without
// revoking the first member's others; between them they read every record exactly once.
func TestCooperativeRebalance(t *testing.T) {
	gt.Feature(t, "cooperative_rebalance")
	testTwoMembers(t, "go-coop", func(cfg *sarama.Config, i int) {
		cfg.Consumer.Group.Rebalance.GroupStrategies = []sarama.BalanceStrategy{sarama.NewBalanceStrategyCooperativeSticky()}
	})
}

// Static members (group.instance.id): both join, split the partitions, read everything; the
// group description shows the instance ids.
func TestStaticMembership(t *testing.T) {
	gt.Feature(t, "static_membership")
	b := testTwoMembers(t, "go-static", func(cfg *sarama.Config, i int) {
		cfg.Consumer.Group.InstanceId = fmt.Sprintf("static-%d", i)
	})
	_ = b
}

func testTwoMembers(t *testing.T, group string, tweak func(*sarama.Config, int)) *gt.Broker {
	b := gt.Start(t)
	topic := group + "-t"
	createTopic(t, b, topic, 4)
	recs := makeRecords(200, 4, group, time.Now().Add(-5*time.Second).Truncate(time.Millisecond))
	offsets := produce(t, b, topic, recs, config(modern))
	var hs []*groupHandler
	var errcs []chan error
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var groups []sarama.ConsumerGroup
	for i := 0; i < 2; i++ {
		cfg := groupConfig(modern)
		cfg.Consumer.Group.Rebalance.Timeout = 20 * time.Second
		tweak(cfg, i)
		g, err := sarama.NewConsumerGroup([]string{b.Addr}, group, cfg)
		gt.Check(t, err, "NewConsumerGroup")
		groups = append(groups, g)
		h := newHandler(1 << 30)
		hs = append(hs, h)
		errcs = append(errcs, runGroup(ctx, g, []string{topic}, h))
		if i == 0 {
			// the first member owns everything before the second joins
			gt.Eventually(t, "first member owns 4 partitions", gt.Step, func() error {
				if c := hs[0].lastClaim(); len(c) != 4 {
					return fmt.Errorf("claims %v", c)
				}
				return nil
			})
		}
	}
	gt.Eventually(t, "two members split the partitions and read everything", gt.Step, func() error {
		for i, errc := range errcs {
			select {
			case err := <-errc:
				gt.Fatalf(t, "member %d: Consume: %v", i, err)
			default:
			}
		}
		a, c := hs[0].lastClaim(), hs[1].lastClaim()
		if len(a) != 2 || len(c) != 2 {
			return fmt.Errorf("claims %v / %v", a, c)
		}
		if n := hs[0].count() + hs[1].count(); n < len(recs) {
			return fmt.Errorf("read %d of %d", n, len(recs))
		}
		return nil
	})
	a, c := hs[0].lastClaim(), hs[1].lastClaim()
	seen := map[int32]bool{}
	for _, p := range append(append([]int32{}, a...), c...) {
		if seen[p] {
			gt.Fatalf(t, "partition %d owned by both members: %v / %v", p, a, c)
		}
		seen[p] = true
	}
	// merge: every record once, in order per partition (a partition may have moved between
	// members; offsets increase and nothing is lost or duplicated past the commits)
	merged := map[int32][]got{}
	for _, h := range hs {
		h.mu.Lock()
		for p, gs := range h.got {
			merged[p] = append(merged[p], gs...)
		}
		h.mu.Unlock()
	}
	for p := range merged {
		sort.SliceStable(merged[p], func(i, j int) bool { return merged[p][i].offset < merged[p][j].offset })
		// drop re-deliveries after a move (at-least-once across a rebalance)
		var dedup []got
		for _, g := range merged[p] {
			if len(dedup) == 0 || dedup[len(dedup)-1].offset != g.offset {
				dedup = append(dedup, g)
			}
		}
		merged[p] = dedup
	}
	checkRoundtrip(t, recs, offsets, merged)
	if strings.HasPrefix(group, "go-static") {
		ad := admin(t, b, modern)
		ds, err := ad.DescribeConsumerGroups([]string{group})
		gt.Check(t, err, "DescribeConsumerGroups")
		ids := []string{}
		for _, m := range ds[0].Members {
			if m.GroupInstanceId != nil {
				ids = append(ids, *m.GroupInstanceId)
			}
		}
		sort.Strings(ids)
		if strings.Join(ids, ",") != "static-0,static-1" || ds[0].State != "Stable" {
			gt.Errorf(t, "group %s: state %s, instance ids %v", group, ds[0].State, ids)
		}
	}
	cancel()
	for _, g := range groups {
		gt.Within(t, "group close", 30*time.Second, g.Close)
	}
	return b
}

func TestAdminGroups(t *testing.T) {
	gt.Feature(t, "admin_groups")
	b := gt.Start(t)
	createTopic(t, b, "go-ag", 2)
	recs := makeRecords(20, 2, "ag", time.Now().Truncate(time.Millisecond))
	produce(t, b, "go-ag", recs, config(modern))
	g, err := sarama.NewConsumerGroup([]string{b.Addr}, "go-admin-group", groupConfig(modern))
	gt.Check(t, err, "NewConsumerGroup")
	h := newHandler(len(recs))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := runGroup(ctx, g, []string{"go-ag"}, h)
	select {
	case <-h.done:
	case err := <-errc:
		gt.Fatalf(t, "Consume: %v", err)
	case <-time.After(gt.Step):
		gt.Fatalf(t, "group consumed %d of %d", h.count(), len(recs))
	}
	a := admin(t, b, modern)
	groups, err := a.ListConsumerGroups()
	gt.Check(t, err, "ListConsumerGroups")
	if groups["go-admin-group"] != "consumer" {
		gt.Errorf(t, "ListConsumerGroups: %v, want go-admin-group with protocol type consumer", groups)
	}
	ds, err := a.DescribeConsumerGroups([]string{"go-admin-group"})
	gt.Check(t, err, "DescribeConsumerGroups")
	if len(ds) != 1 || ds[0].State != "Stable" || len(ds[0].Members) != 1 || ds[0].Protocol != "range" {
		gt.Fatalf(t, "DescribeConsumerGroups: %+v", ds[0])
	}
	for _, m := range ds[0].Members {
		asg, err := m.GetMemberAssignment()
		gt.Check(t, err, "GetMemberAssignment")
		if len(asg.Topics["go-ag"]) != 2 {
			gt.Errorf(t, "member assignment %v, want both partitions of go-ag", asg.Topics)
		}
	}
	// deleting a group with a live member fails with NON_EMPTY_GROUP
	if err := a.DeleteConsumerGroup("go-admin-group"); !errors.Is(err, sarama.ErrNonEmptyGroup) {
		gt.Errorf(t, "DeleteConsumerGroup while active: %v, want NON_EMPTY_GROUP", err)
	}
	cancel()
	gt.Within(t, "group close", 30*time.Second, g.Close)
	offs, err := a.ListConsumerGroupOffsets("go-admin-group", nil)
	gt.Check(t, err, "ListConsumerGroupOffsets")
	for p := int32(0); p < 2; p++ {
		if blk := offs.GetBlock("go-ag", p); blk == nil || blk.Offset != 10 {
			gt.Errorf(t, "committed offset p%d: %+v, want 10", p, blk)
		}
	}
	// AlterConsumerGroupOffsets then DeleteConsumerGroupOffset
	_, err = a.AlterConsumerGroupOffsets("go-admin-group", map[string]map[int32]sarama.OffsetAndMetadata{
		"go-ag": {0: {Offset: 4, Metadata: "reset"}}}, nil)
	gt.Check(t, err, "AlterConsumerGroupOffsets")
	offs, err = a.ListConsumerGroupOffsets("go-admin-group", map[string][]int32{"go-ag": {0}})
	gt.Check(t, err, "ListConsumerGroupOffsets")
	if blk := offs.GetBlock("go-ag", 0); blk == nil || blk.Offset != 4 || blk.Metadata != "reset" {
		gt.Errorf(t, "after alter: %+v, want 4 \"reset\"", blk)
	}
	// once the last member has left, the group is Empty and its offsets can be deleted
	gt.Check(t, a.DeleteConsumerGroupOffset("go-admin-group", "go-ag", 1), "DeleteConsumerGroupOffset (group left)")
	offs, err = a.ListConsumerGroupOffsets("go-admin-group", map[string][]int32{"go-ag": {1}})
	gt.Check(t, err, "ListConsumerGroupOffsets")
	if blk := offs.GetBlock("go-ag", 1); blk == nil || blk.Offset != -1 {
		gt.Errorf(t, "after DeleteConsumerGroupOffset: %+v, want -1", blk)
	}
	gt.Check(t, a.DeleteConsumerGroup("go-admin-group"), "DeleteConsumerGroup")
	groups, err = a.ListConsumerGroups()
	gt.Check(t, err, "ListConsumerGroups")
	if _, ok := groups["go-admin-group"]; ok {
		gt.Errorf(t, "group still listed after delete: %v", groups)
	}
}

// ------------------------------------------------------------------ transactions

func txnConfig(id string) *sarama.Config {
	cfg := config(modern)
	cfg.Producer.Idempotent = true
	cfg.Producer.Transaction.ID = id
	cfg.Producer.Transaction.Timeout = 30 * time.Second
	cfg.Net.MaxOpenRequests = 1
	cfg.Producer.Retry.Max = 5
	return cfg
}

func readCommitted() *sarama.Config {
	cfg := config(modern)
	cfg.Consumer.IsolationLevel = sarama.ReadCommitted
	return cfg
}

// send produces synchronously through a (transactional) async producer.
func send(t *testing.T, p sarama.AsyncProducer, topic string, recs []rec) {
	t.Helper()
	for i, r := range recs {
		p.Input() <- message(topic, r, i)
	}
	for range recs {
		select {
		case <-p.Successes():
		case e := <-p.Errors():
			gt.Fatalf(t, "transactional produce: %v", e.Err)
		case <-time.After(gt.Step):
			gt.Fatalf(t, "%v", "transactional produce timed out")
		}
	}
}

// A committed transaction is read under read_committed; an aborted one is skipped (its
// records and the markers take offsets, so read_committed sees a gap).
func TestTransactions(t *testing.T) {
	gt.Feature(t, "transactions")
	b := gt.Start(t)
	createTopic(t, b, "go-txn", 2)
	p, err := sarama.NewAsyncProducer([]string{b.Addr}, txnConfig("go-txn-1"))
	gt.Check(t, err, "NewAsyncProducer (transactional)")
	defer p.Close()
	base := time.Now().Add(-time.Minute).Truncate(time.Millisecond)
	committed1 := makeRecords(10, 2, "c1", base)
	aborted := makeRecords(6, 2, "ab", base.Add(time.Second))
	committed2 := makeRecords(4, 2, "c2", base.Add(2*time.Second))

	gt.Check(t, p.BeginTxn(), "BeginTxn")
	send(t, p, "go-txn", committed1)
	gt.Check(t, p.CommitTxn(), "CommitTxn")
	gt.Check(t, p.BeginTxn(), "BeginTxn")
	send(t, p, "go-txn", aborted)
	gt.Check(t, p.AbortTxn(), "AbortTxn")
	gt.Check(t, p.BeginTxn(), "BeginTxn")
	send(t, p, "go-txn", committed2)
	gt.Check(t, p.CommitTxn(), "CommitTxn")

	want := append(append([]rec{}, committed1...), committed2...)
	got := consumeAssigned(t, b, readCommitted(), "go-txn", 2, counts(want))
	checkRoundtripFrom(t, want, nil, got, false)
	// per partition: 5 committed + marker (0..5), 3 aborted + marker (6..9), 2 committed (10, 11)
	for p := int32(0); p < 2; p++ {
		if o := got[p][5].offset; o != 10 {
			gt.Errorf(t, "p%d: first record of the second committed txn at %d, want 10", p, o)
		}
	}
	// read_uncommitted sees the aborted records too
	all := consumeAssigned(t, b, config(modern), "go-txn", 2, map[int32]int{0: 10, 1: 10})
	if string(all[0][5].value) != string(aborted[0].value) {
		gt.Errorf(t, "read_uncommitted p0@%d: %q, want the aborted %q", all[0][5].offset, all[0][5].value, aborted[0].value)
	}
	// last stable offset = high watermark once all is decided
	c := client(t, b, readCommitted())
	if off, err := c.GetOffset("go-txn", 0, sarama.OffsetNewest); err != nil || off != 13 {
		gt.Errorf(t, "latest offset p0 (read_committed): %d %v, want 13", off, err)
	}
}

// Consume-transform-produce: the consumed offsets are committed inside the transaction
// (AddOffsetsToTxn + TxnOffsetCommit); an aborted transaction commits neither.
func TestTransactionsOffsets(t *testing.T) {
	gt.Feature(t, "transactions_offsets")
	b := gt.Start(t)
	createTopic(t, b, "go-txn-in", 1)
	createTopic(t, b, "go-txn-out", 1)
	in := makeRecords(10, 1, "in", time.Now().Add(-time.Minute).Truncate(time.Millisecond))
	produce(t, b, "go-txn-in", in, config(modern))

	p, err := sarama.NewAsyncProducer([]string{b.Addr}, txnConfig("go-txn-ctp"))
	gt.Check(t, err, "NewAsyncProducer (transactional)")
	defer p.Close()
	consumed := consumeAssigned(t, b, config(modern), "go-txn-in", 1, map[int32]int{0: 10})[0]
	transform := func(gs []got) []rec {
		var out []rec
		for _, g := range gs {
			out = append(out, rec{key: g.key, value: []byte(strings.ToUpper(string(g.value))), ts: g.ts})
		}
		return out
	}
	// first half committed with its offsets
	gt.Check(t, p.BeginTxn(), "BeginTxn")
	send(t, p, "go-txn-out", transform(consumed[:5]))
	gt.Check(t, p.AddOffsetsToTxn(map[string][]*sarama.PartitionOffsetMetadata{
		"go-txn-in": {{Partition: 0, Offset: 5, Metadata: ptr("half")}}}, "go-ctp-group"), "AddOffsetsToTxn")
	gt.Check(t, p.CommitTxn(), "CommitTxn")
	// second half aborted: neither output nor offsets
	gt.Check(t, p.BeginTxn(), "BeginTxn")
	send(t, p, "go-txn-out", transform(consumed[5:]))
	gt.Check(t, p.AddOffsetsToTxn(map[string][]*sarama.PartitionOffsetMetadata{
		"go-txn-in": {{Partition: 0, Offset: 10, Metadata: ptr("all")}}}, "go-ctp-group"), "AddOffsetsToTxn")
	gt.Check(t, p.AbortTxn(), "AbortTxn")

	a := admin(t, b, modern)
	offs, err := a.ListConsumerGroupOffsets("go-ctp-group", map[string][]int32{"go-txn-in": {0}})
	gt.Check(t, err, "ListConsumerGroupOffsets")
	if blk := offs.GetBlock("go-txn-in", 0); blk == nil || blk.Offset != 5 || blk.Metadata != "half" {
		gt.Fatalf(t, "group offset after commit+abort: %+v, want 5 \"half\"", blk)
	}
	out := consumeAssigned(t, b, readCommitted(), "go-txn-out", 1, map[int32]int{0: 5})
	checkRoundtripFrom(t, transform(consumed[:5]), nil, out, false)
}

func TestAdminTransactions(t *testing.T) {
	gt.Feature(t, "admin_transactions")
	b := gt.Start(t)
	createTopic(t, b, "go-txn-adm", 1)
	p, err := sarama.NewAsyncProducer([]string{b.Addr}, txnConfig("go-txn-adm-id"))
	gt.Check(t, err, "NewAsyncProducer (transactional)")
	defer p.Close()
	gt.Check(t, p.BeginTxn(), "BeginTxn")
	send(t, p, "go-txn-adm", makeRecords(3, 1, "ta", time.Now().Truncate(time.Millisecond)))
	a := admin(t, b, modern)
	// an open transaction: listed as Ongoing, described with its partition
	list, err := a.ListTransactions(nil, nil, -1)
	gt.Check(t, err, "ListTransactions")
	var pid int64 = -1
	for _, tx := range list {
		if tx.TransactionalID == "go-txn-adm-id" {
			pid = tx.ProducerID
			if tx.TransactionState != "Ongoing" {
				gt.Errorf(t, "ListTransactions state %q, want Ongoing", tx.TransactionState)
			}
		}
	}
	if pid < 0 {
		gt.Fatalf(t, "ListTransactions: %+v, want go-txn-adm-id", list)
	}
	ds, err := a.DescribeTransactions([]string{"go-txn-adm-id"})
	gt.Check(t, err, "DescribeTransactions")
	d := ds["go-txn-adm-id"]
	if d.ErrorCode != sarama.ErrNoError || d.TransactionState != "Ongoing" || d.ProducerID != pid ||
		len(d.Topics) != 1 || d.Topics[0].Topic != "go-txn-adm" {
		gt.Errorf(t, "DescribeTransactions: %+v", d)
	}
	ps, err := a.DescribeProducers(map[string][]int32{"go-txn-adm": {0}})
	gt.Check(t, err, "DescribeProducers")
	st := ps["go-txn-adm"][0]
	if len(st.ActiveProducers) != 1 || st.ActiveProducers[0].ProducerID != pid || st.ActiveProducers[0].CurrentTxnStartOffset != 0 {
		gt.Errorf(t, "DescribeProducers: %+v, want producer %d with an open txn at 0", st, pid)
	}
	gt.Check(t, p.CommitTxn(), "CommitTxn")
	gt.Eventually(t, "transaction CompleteCommit", 10*time.Second, func() error {
		ds, err := a.DescribeTransactions([]string{"go-txn-adm-id"})
		if err != nil {
			return err
		}
		if s := ds["go-txn-adm-id"].TransactionState; s != "CompleteCommit" {
			return fmt.Errorf("state %q", s)
		}
		return nil
	})
}

// ------------------------------------------------------------------ legacy protocol versions

// The core paths again at V2_1_0_0: the oldest request versions Kafka 4.x still serves.
func TestLegacyV2_1(t *testing.T) {
	t.Run("ProduceConsumeGzip", func(t *testing.T) {
		gt.Feature(t, "produce_gzip", "consume_assign")
		testCodec(t, legacy, "gzip", sarama.CompressionGZIP)
	})
	t.Run("ProduceConsumeZstd", func(t *testing.T) {
		gt.Feature(t, "produce_zstd")
		testCodec(t, legacy, "zstd", sarama.CompressionZSTD)
	})
	t.Run("ListOffsets", func(t *testing.T) {
		gt.Feature(t, "list_offsets_earliest", "list_offsets_latest")
		listOffsetsEarliestLatest(t, legacy)
	})
	t.Run("ListOffsetsByTime", func(t *testing.T) {
		gt.Feature(t, "list_offsets_by_time")
		listOffsetsByTime(t, legacy)
	})
	t.Run("ConsumerGroup", func(t *testing.T) {
		gt.Feature(t, "consume_group")
		consumerGroup(t, legacy)
	})
	t.Run("CommitFetchOffsets", func(t *testing.T) {
		gt.Feature(t, "commit_fetch_offsets")
		commitFetchOffsets(t, legacy)
	})
}

// sarama implements only the classic group protocol (no ConsumerGroupHeartbeat client).
func TestConsumerGroupKIP848(t *testing.T) {
	gt.Feature(t, "consume_group_consumer_protocol")
	gt.Skip(t, "n/a: sarama has no KIP-848 (group.protocol=consumer) consumer")
}
