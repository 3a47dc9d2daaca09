// segmentio/kafka-go (see go.mod) against a real gregor process: the Writer (per codec and
// acks), the Reader (by partition and in a consumer group, with commits) and the admin calls of
// kafka.Client (CreateTopics, DeleteTopics, Metadata, CreatePartitions, configs, groups,
// offsets). kafka-go has no idempotent or transactional producer, no KIP-848 consumer, no static
// membership or cooperative rebalancing, and no DeleteRecords / DescribeLogDirs /
// DescribeTransactions / DescribeCluster calls: those rows are n/a.
//
// Results: compat/results/kafka-go.json (key "kafka-go", read by scripts/matrix.py).
package kafkago_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/compress"

	gt "gregor/compat/go/internal/gregortest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	gt.WriteResults("kafka-go", gt.ModuleVersion("github.com/segmentio/kafka-go"))
	os.Exit(code)
}

// ------------------------------------------------------------------ helpers

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), gt.Step)
	t.Cleanup(cancel)
	return ctx
}

func client(b *gt.Broker) *kafka.Client {
	// a Transport of its own: kafka.DefaultTransport caches metadata across tests
	return &kafka.Client{Addr: kafka.TCP(b.Addr), Timeout: 30 * time.Second, Transport: &kafka.Transport{}}
}

func createTopic(t *testing.T, b *gt.Broker, topic string, partitions int, configs ...kafka.ConfigEntry) {
	t.Helper()
	r, err := client(b).CreateTopics(ctxT(t), &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{
		{Topic: topic, NumPartitions: partitions, ReplicationFactor: 1, ConfigEntries: configs}}})
	gt.Check(t, err, "CreateTopics "+topic)
	gt.Check(t, r.Errors[topic], "CreateTopics "+topic)
}

// partitionOf: the Writer ignores Message.Partition; this balancer honours it.
type partitionOf struct{}

func (partitionOf) Balance(m kafka.Message, partitions ...int) int { return m.Partition }

func writer(b *gt.Broker, topic string) *kafka.Writer {
	return &kafka.Writer{Addr: kafka.TCP(b.Addr), Topic: topic, Balancer: partitionOf{},
		BatchTimeout: 10 * time.Millisecond, BatchSize: 50, RequiredAcks: kafka.RequireAll,
		WriteTimeout: 30 * time.Second, ReadTimeout: 30 * time.Second, MaxAttempts: 3,
		Transport: &kafka.Transport{}} // not DefaultTransport: it caches metadata across tests
}

func makeMessages(n, partitions int, tag string, base time.Time) []kafka.Message {
	out := make([]kafka.Message, n)
	for i := 0; i < n; i++ {
		out[i] = kafka.Message{
			Partition: i % partitions,
			Key:       []byte(fmt.Sprintf("%s-key-%d", tag, i)),
			Value:     []byte(fmt.Sprintf("%s-value-%d-%s", tag, i, strings.Repeat("x", i%50))),
			Headers: []kafka.Header{
				{Key: "h-index", Value: []byte(fmt.Sprint(i))},
				{Key: "h-tag", Value: []byte(tag)},
				{Key: "empty", Value: []byte{}},
			},
			Time: base.Add(time.Duration(i) * time.Millisecond),
		}
	}
	return out
}

func write(t *testing.T, w *kafka.Writer, msgs []kafka.Message) {
	t.Helper()
	defer w.Close()
	// copies: WriteMessages fills in fields (topic, offsets) of the messages it is given
	cp := append([]kafka.Message{}, msgs...)
	gt.Check(t, w.WriteMessages(ctxT(t), cp...), "WriteMessages")
}

// readPartition reads want records from one partition from offset 0 (a Reader without a group)
// and checks that nothing more is there.
func readPartition(t *testing.T, b *gt.Broker, topic string, p, want int, opts ...func(*kafka.ReaderConfig)) []kafka.Message {
	t.Helper()
	cfg := kafka.ReaderConfig{Brokers: []string{b.Addr}, Topic: topic, Partition: p, MinBytes: 1,
		MaxBytes: 10 << 20, MaxWait: 200 * time.Millisecond}
	for _, o := range opts {
		o(&cfg)
	}
	r := kafka.NewReader(cfg)
	defer r.Close()
	var out []kafka.Message
	ctx := ctxT(t)
	for len(out) < want {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			gt.Fatalf(t, "p%d: read %d of %d: %v", p, len(out), want, err)
		}
		out = append(out, m)
	}
	ctx2, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	if m, err := r.ReadMessage(ctx2); err == nil {
		gt.Errorf(t, "p%d: unexpected extra record at %d: %q", p, m.Offset, m.Value)
	}
	return out
}

func readAll(t *testing.T, b *gt.Broker, topic string, partitions int, msgs []kafka.Message) map[int][]kafka.Message {
	want := map[int]int{}
	for _, m := range msgs {
		want[m.Partition]++
	}
	out := map[int][]kafka.Message{}
	for p := 0; p < partitions; p++ {
		out[p] = readPartition(t, b, topic, p, want[p])
	}
	return out
}

func checkRoundtrip(t *testing.T, msgs []kafka.Message, got map[int][]kafka.Message) {
	t.Helper()
	want := map[int][]kafka.Message{}
	for _, m := range msgs {
		want[m.Partition] = append(want[m.Partition], m)
	}
	for p, ms := range want {
		gs := got[p]
		if len(gs) != len(ms) {
			gt.Fatalf(t, "p%d: read %d records, wrote %d", p, len(gs), len(ms))
		}
		for j, w := range ms {
			g := gs[j]
			if g.Offset != int64(j) || g.Partition != p {
				gt.Fatalf(t, "p%d: record %d at p%d@%d", p, j, g.Partition, g.Offset)
			}
			if !bytes.Equal(g.Key, w.Key) || !bytes.Equal(g.Value, w.Value) {
				gt.Fatalf(t, "p%d@%d: key/value %q/%q, want %q/%q", p, g.Offset, g.Key, g.Value, w.Key, w.Value)
			}
			if !g.Time.Equal(w.Time) {
				gt.Fatalf(t, "p%d@%d: time %v, want %v", p, g.Offset, g.Time, w.Time)
			}
			if len(g.Headers) != len(w.Headers) {
				gt.Fatalf(t, "p%d@%d: %d headers, want %d", p, g.Offset, len(g.Headers), len(w.Headers))
			}
			for k, h := range g.Headers {
				if h.Key != w.Headers[k].Key || !bytes.Equal(h.Value, w.Headers[k].Value) {
					gt.Fatalf(t, "p%d@%d: header %d = %q:%q, want %q:%q", p, g.Offset, k, h.Key, h.Value,
						w.Headers[k].Key, w.Headers[k].Value)
				}
			}
		}
	}
}

// ------------------------------------------------------------------ produce / consume

func testCodec(t *testing.T, name string, codec compress.Compression) {
	b := gt.Start(t)
	topic := "kg-codec-" + name
	createTopic(t, b, topic, 3)
	msgs := makeMessages(300, 3, name, time.Now().Add(-time.Minute).Truncate(time.Millisecond))
	w := writer(b, topic)
	w.Compression = codec
	write(t, w, msgs)
	checkRoundtrip(t, msgs, readAll(t, b, topic, 3, msgs))
}

func TestProduceConsumeNone(t *testing.T) {
	gt.Feature(t, "produce_none", "consume_assign", "acks_all")
	testCodec(t, "none", 0)
}

func TestProduceConsumeGzip(t *testing.T) {
	gt.Feature(t, "produce_gzip")
	testCodec(t, "gzip", kafka.Gzip)
}

func TestProduceConsumeSnappy(t *testing.T) {
	gt.Feature(t, "produce_snappy")
	testCodec(t, "snappy", kafka.Snappy)
}

func TestProduceConsumeLz4(t *testing.T) {
	gt.Feature(t, "produce_lz4")
	testCodec(t, "lz4", kafka.Lz4)
}

func TestProduceConsumeZstd(t *testing.T) {
	gt.Feature(t, "produce_zstd")
	testCodec(t, "zstd", kafka.Zstd)
}

func testAcks(t *testing.T, name string, acks kafka.RequiredAcks) {
	b := gt.Start(t)
	topic := "kg-acks-" + name
	createTopic(t, b, topic, 2)
	msgs := makeMessages(100, 2, "acks"+name, time.Now().Add(-30*time.Second).Truncate(time.Millisecond))
	w := writer(b, topic)
	w.RequiredAcks = acks
	write(t, w, msgs)
	checkRoundtrip(t, msgs, readAll(t, b, topic, 2, msgs))
}

func TestAcks0(t *testing.T)   { gt.Feature(t, "acks_0"); testAcks(t, "0", kafka.RequireNone) }
func TestAcks1(t *testing.T)   { gt.Feature(t, "acks_1"); testAcks(t, "1", kafka.RequireOne) }
func TestAcksAll(t *testing.T) { gt.Feature(t, "acks_all"); testAcks(t, "all", kafka.RequireAll) }

func TestMessageTooLarge(t *testing.T) {
	gt.Feature(t, "message_too_large")
	b := gt.Start(t)
	createTopic(t, b, "kg-big", 1)
	w := writer(b, "kg-big")
	w.BatchBytes = 16 << 20 // above the broker's message.max.bytes: the broker must reject
	w.MaxAttempts = 1
	defer w.Close()
	err := w.WriteMessages(ctxT(t), kafka.Message{Key: []byte("big"), Value: bytes.Repeat([]byte("x"), 2<<20)})
	var we kafka.WriteErrors
	if !errors.Is(err, kafka.MessageSizeTooLarge) && !(errors.As(err, &we) && errors.Is(we[0], kafka.MessageSizeTooLarge)) {
		gt.Fatalf(t, "2 MiB record: %v, want MESSAGE_TOO_LARGE", err)
	}
	ts := time.UnixMilli(1_700_000_000_000)
	gt.Check(t, w.WriteMessages(ctxT(t), kafka.Message{Key: []byte("k"), Value: []byte("small"), Time: ts,
		Headers: []kafka.Header{{Key: "a", Value: []byte("b")}}}), "small write after the rejection")
	g := readPartition(t, b, "kg-big", 0, 1)[0]
	if g.Offset != 0 || string(g.Value) != "small" || !g.Time.Equal(ts) || len(g.Headers) != 1 {
		gt.Fatalf(t, "read back %+v", g)
	}
}

func TestUnknownTopicNoAutoCreate(t *testing.T) {
	gt.Feature(t, "unknown_topic_no_autocreate")
	b := gt.Start(t, "--set", "auto.create.topics.enable=false")
	w := writer(b, "kg-nope")
	w.AllowAutoTopicCreation = true // asks for it; the broker must still refuse
	w.MaxAttempts = 2
	defer w.Close()
	err := w.WriteMessages(ctxT(t), kafka.Message{Value: []byte("v")})
	if !errors.Is(err, kafka.UnknownTopicOrPartition) {
		gt.Fatalf(t, "write to unknown topic: %v, want UNKNOWN_TOPIC_OR_PARTITION", err)
	}
	md, err := client(b).Metadata(ctxT(t), &kafka.MetadataRequest{})
	gt.Check(t, err, "Metadata")
	for _, tp := range md.Topics {
		if tp.Name == "kg-nope" {
			gt.Fatalf(t, "%s", "kg-nope was auto-created")
		}
	}
}

func TestListOffsets(t *testing.T) {
	gt.Feature(t, "list_offsets_earliest", "list_offsets_latest", "list_offsets_by_time")
	b := gt.Start(t)
	createTopic(t, b, "kg-offsets", 2)
	base := time.Now().Add(-100 * time.Second).Truncate(time.Millisecond)
	var msgs []kafka.Message
	for i := 0; i < 10; i++ {
		msgs = append(msgs, kafka.Message{Partition: 0, Key: []byte{byte(i)}, Value: []byte("v"),
			Time: base.Add(time.Duration(i) * time.Second)})
	}
	write(t, writer(b, "kg-offsets"), msgs)
	cl := client(b)
	r, err := cl.ListOffsets(ctxT(t), &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{
		"kg-offsets": {kafka.FirstOffsetOf(0), kafka.LastOffsetOf(0), kafka.FirstOffsetOf(1), kafka.LastOffsetOf(1)}}})
	gt.Check(t, err, "ListOffsets")
	got := map[int]kafka.PartitionOffsets{}
	for _, po := range r.Topics["kg-offsets"] {
		gt.Check(t, po.Error, fmt.Sprintf("ListOffsets p%d", po.Partition))
		got[po.Partition] = po
	}
	if got[0].FirstOffset != 0 || got[0].LastOffset != 10 || got[1].FirstOffset != 0 || got[1].LastOffset != 0 {
		gt.Fatalf(t, "earliest/latest: %+v", got)
	}
	byTime := func(ts time.Time) int64 {
		t.Helper()
		r, err := cl.ListOffsets(ctxT(t), &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{
			"kg-offsets": {kafka.TimeOffsetOf(0, ts)}}})
		gt.Check(t, err, "ListOffsets by time")
		po := r.Topics["kg-offsets"][0]
		gt.Check(t, po.Error, "ListOffsets by time")
		for off := range po.Offsets {
			return off
		}
		return -2
	}
	if o := byTime(base.Add(3500 * time.Millisecond)); o != 4 {
		gt.Errorf(t, "offset at base+3.5s = %d, want 4", o)
	}
	if o := byTime(base); o != 0 {
		gt.Errorf(t, "offset at base = %d, want 0", o)
	}
	if o := byTime(base.Add(999 * time.Second)); o != -1 {
		gt.Errorf(t, "offset after the last record = %d, want -1", o)
	}
}

// ------------------------------------------------------------------ groups

// readGroup reads n records with a group Reader, committing each (sync commits).
func readGroup(t *testing.T, b *gt.Broker, group, topic string, n int) map[int][]kafka.Message {
	t.Helper()
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{b.Addr}, GroupID: group, Topic: topic,
		MinBytes: 1, MaxBytes: 10 << 20, MaxWait: 200 * time.Millisecond, StartOffset: kafka.FirstOffset,
		HeartbeatInterval: time.Second, SessionTimeout: 10 * time.Second, RebalanceTimeout: 10 * time.Second,
		JoinGroupBackoff: 500 * time.Millisecond})
	defer func() { gt.Within(t, "group reader close", 30*time.Second, r.Close) }()
	out := map[int][]kafka.Message{}
	ctx := ctxT(t)
	for i := 0; i < n; i++ {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			gt.Fatalf(t, "group read %d of %d: %v", i, n, err)
		}
		out[m.Partition] = append(out[m.Partition], m)
		gt.Check(t, r.CommitMessages(ctx, m), "CommitMessages")
	}
	return out
}

func TestConsumerGroup(t *testing.T) {
	gt.Feature(t, "consume_group", "commit_fetch_offsets")
	b := gt.Start(t)
	createTopic(t, b, "kg-group", 3)
	msgs := makeMessages(90, 3, "grp", time.Now().Add(-5*time.Second).Truncate(time.Millisecond))
	write(t, writer(b, "kg-group"), msgs)
	checkRoundtrip(t, msgs, readGroup(t, b, "kg-g1", "kg-group", len(msgs)))
	offs, err := client(b).ConsumerOffsets(ctxT(t), kafka.TopicAndGroup{Topic: "kg-group", GroupId: "kg-g1"})
	gt.Check(t, err, "ConsumerOffsets")
	for p := 0; p < 3; p++ {
		if offs[p] != 30 {
			gt.Errorf(t, "committed p%d = %d, want 30 (%v)", p, offs[p], offs)
		}
	}
	// a new reader in the same group has nothing left to read: 5 more records are all it sees
	more := makeMessages(6, 3, "more", time.Now().Truncate(time.Millisecond))
	write(t, writer(b, "kg-group"), more)
	got := readGroup(t, b, "kg-g1", "kg-group", 6)
	for p, ms := range got {
		if len(ms) != 2 || ms[0].Offset != 30 || string(ms[0].Value) != string(more[p].Value) {
			gt.Errorf(t, "resumed p%d: %d records from %d", p, len(ms), ms[0].Offset)
		}
	}
}

func TestCommitFetchOffsets(t *testing.T) {
	gt.Feature(t, "commit_fetch_offsets")
	b := gt.Start(t)
	createTopic(t, b, "kg-commit", 2)
	write(t, writer(b, "kg-commit"), makeMessages(20, 2, "cm", time.Now().Truncate(time.Millisecond)))
	cl := client(b)
	// a standalone commit (no member, generation -1), as admin tools do
	r, err := cl.OffsetCommit(ctxT(t), &kafka.OffsetCommitRequest{GroupID: "kg-manual", GenerationID: -1,
		Topics: map[string][]kafka.OffsetCommit{"kg-commit": {{Partition: 0, Offset: 7, Metadata: "m0"}, {Partition: 1, Offset: 3, Metadata: "m1"}}}})
	gt.Check(t, err, "OffsetCommit")
	for _, p := range r.Topics["kg-commit"] {
		gt.Check(t, p.Error, fmt.Sprintf("OffsetCommit p%d", p.Partition))
	}
	f, err := cl.OffsetFetch(ctxT(t), &kafka.OffsetFetchRequest{GroupID: "kg-manual", Topics: map[string][]int{"kg-commit": {0, 1}}})
	gt.Check(t, err, "OffsetFetch")
	gt.Check(t, f.Error, "OffsetFetch")
	got := map[int]kafka.OffsetFetchPartition{}
	for _, p := range f.Topics["kg-commit"] {
		got[p.Partition] = p
	}
	if got[0].CommittedOffset != 7 || got[0].Metadata != "m0" || got[1].CommittedOffset != 3 || got[1].Metadata != "m1" {
		gt.Fatalf(t, "OffsetFetch: %+v", got)
	}
	// a group reader resumes there
	res := readGroup(t, b, "kg-manual", "kg-commit", 10)
	if res[0][0].Offset != 7 || res[1][0].Offset != 3 {
		gt.Errorf(t, "group resumed at p0@%d p1@%d, want 7 and 3", res[0][0].Offset, res[1][0].Offset)
	}
}

// ------------------------------------------------------------------ admin

func TestAdminTopics(t *testing.T) {
	gt.Feature(t, "admin_create_topic", "admin_delete_topic", "metadata_all_topics")
	b := gt.Start(t)
	cl := client(b)
	ctx := ctxT(t)
	r, err := cl.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{
		{Topic: "kg-a", NumPartitions: 4, ReplicationFactor: 1, ConfigEntries: []kafka.ConfigEntry{{ConfigName: "retention.ms", ConfigValue: "3600000"}}},
		{Topic: "kg-b", NumPartitions: 1, ReplicationFactor: 1}}})
	gt.Check(t, err, "CreateTopics")
	gt.Check(t, r.Errors["kg-a"], "CreateTopics kg-a")
	gt.Check(t, r.Errors["kg-b"], "CreateTopics kg-b")
	r, err = cl.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{{Topic: "kg-a", NumPartitions: 1, ReplicationFactor: 1}}})
	gt.Check(t, err, "CreateTopics again")
	if !errors.Is(r.Errors["kg-a"], kafka.TopicAlreadyExists) {
		gt.Fatalf(t, "second create: %v, want TOPIC_ALREADY_EXISTS", r.Errors["kg-a"])
	}
	names := func() map[string]int {
		md, err := cl.Metadata(ctx, &kafka.MetadataRequest{}) // all topics
		gt.Check(t, err, "Metadata")
		out := map[string]int{}
		for _, tp := range md.Topics {
			out[tp.Name] = len(tp.Partitions)
		}
		return out
	}
	if n := names(); n["kg-a"] != 4 || n["kg-b"] != 1 {
		gt.Fatalf(t, "Metadata (all topics): %v", n)
	}
	d, err := cl.DeleteTopics(ctx, &kafka.DeleteTopicsRequest{Topics: []string{"kg-a", "kg-never"}})
	gt.Check(t, err, "DeleteTopics")
	gt.Check(t, d.Errors["kg-a"], "DeleteTopics kg-a")
	if !errors.Is(d.Errors["kg-never"], kafka.UnknownTopicOrPartition) {
		gt.Errorf(t, "delete unknown: %v, want UNKNOWN_TOPIC_OR_PARTITION", d.Errors["kg-never"])
	}
	gt.Eventually(t, "kg-a gone", 20*time.Second, func() error {
		n := names()
		if _, ok := n["kg-a"]; ok {
			return fmt.Errorf("topics %v", n)
		}
		return nil
	})
}

func TestAdminPartitions(t *testing.T) {
	gt.Feature(t, "admin_partitions")
	b := gt.Start(t)
	createTopic(t, b, "kg-parts", 2)
	cl := client(b)
	r, err := cl.CreatePartitions(ctxT(t), &kafka.CreatePartitionsRequest{Topics: []kafka.TopicPartitionsConfig{{Name: "kg-parts", Count: 5}}})
	gt.Check(t, err, "CreatePartitions")
	gt.Check(t, r.Errors["kg-parts"], "CreatePartitions")
	r, err = cl.CreatePartitions(ctxT(t), &kafka.CreatePartitionsRequest{Topics: []kafka.TopicPartitionsConfig{{Name: "kg-parts", Count: 3}}})
	gt.Check(t, err, "CreatePartitions (shrink)")
	if !errors.Is(r.Errors["kg-parts"], kafka.InvalidPartitionNumber) {
		gt.Errorf(t, "shrink: %v, want INVALID_PARTITIONS", r.Errors["kg-parts"])
	}
	msgs := makeMessages(10, 5, "parts", time.Now().Truncate(time.Millisecond))
	write(t, writer(b, "kg-parts"), msgs)
	checkRoundtrip(t, msgs, readAll(t, b, "kg-parts", 5, msgs))
}

func TestAdminConfigs(t *testing.T) {
	gt.Feature(t, "admin_configs")
	b := gt.Start(t)
	createTopic(t, b, "kg-cfg", 1, kafka.ConfigEntry{ConfigName: "cleanup.policy", ConfigValue: "compact"})
	cl := client(b)
	get := func(name string) kafka.DescribeConfigResponseConfigEntry {
		t.Helper()
		r, err := cl.DescribeConfigs(ctxT(t), &kafka.DescribeConfigsRequest{Resources: []kafka.DescribeConfigRequestResource{
			{ResourceType: kafka.ResourceTypeTopic, ResourceName: "kg-cfg", ConfigNames: []string{name}}}})
		gt.Check(t, err, "DescribeConfigs")
		gt.Check(t, r.Resources[0].Error, "DescribeConfigs")
		for _, e := range r.Resources[0].ConfigEntries {
			if e.ConfigName == name {
				return e
			}
		}
		gt.Fatalf(t, "config %s not described", name)
		return kafka.DescribeConfigResponseConfigEntry{}
	}
	if e := get("cleanup.policy"); e.ConfigValue != "compact" || e.IsDefault {
		gt.Fatalf(t, "cleanup.policy: %+v, want compact from the topic", e)
	}
	r, err := cl.IncrementalAlterConfigs(ctxT(t), &kafka.IncrementalAlterConfigsRequest{Resources: []kafka.IncrementalAlterConfigsRequestResource{
		{ResourceType: kafka.ResourceTypeTopic, ResourceName: "kg-cfg", Configs: []kafka.IncrementalAlterConfigsRequestConfig{
			{Name: "retention.ms", Value: "123456", ConfigOperation: kafka.ConfigOperationSet},
			{Name: "cleanup.policy", ConfigOperation: kafka.ConfigOperationDelete}}}}})
	gt.Check(t, err, "IncrementalAlterConfigs")
	gt.Check(t, r.Resources[0].Error, "IncrementalAlterConfigs")
	if e := get("retention.ms"); e.ConfigValue != "123456" {
		gt.Errorf(t, "retention.ms after set: %+v", e)
	}
	if e := get("cleanup.policy"); e.ConfigValue != "delete" {
		gt.Errorf(t, "cleanup.policy after delete: %+v, want the default", e)
	}
	ar, err := cl.AlterConfigs(ctxT(t), &kafka.AlterConfigsRequest{Resources: []kafka.AlterConfigRequestResource{
		{ResourceType: kafka.ResourceTypeTopic, ResourceName: "kg-cfg", Configs: []kafka.AlterConfigRequestConfig{{Name: "segment.ms", Value: "7200000"}}}}})
	gt.Check(t, err, "AlterConfigs")
	for _, e := range ar.Errors {
		gt.Check(t, e, "AlterConfigs")
	}
	if e := get("segment.ms"); e.ConfigValue != "7200000" {
		gt.Errorf(t, "segment.ms after AlterConfigs: %+v", e)
	}
}

func TestAdminGroups(t *testing.T) {
	gt.Feature(t, "admin_groups")
	b := gt.Start(t)
	createTopic(t, b, "kg-ag", 2)
	write(t, writer(b, "kg-ag"), makeMessages(20, 2, "ag", time.Now().Truncate(time.Millisecond)))
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{b.Addr}, GroupID: "kg-admin-group", Topic: "kg-ag",
		MinBytes: 1, MaxBytes: 10 << 20, MaxWait: 200 * time.Millisecond, StartOffset: kafka.FirstOffset, HeartbeatInterval: time.Second,
		SessionTimeout: 10 * time.Second})
	ctx := ctxT(t)
	for i := 0; i < 20; i++ {
		m, err := r.FetchMessage(ctx)
		gt.Check(t, err, "FetchMessage")
		gt.Check(t, r.CommitMessages(ctx, m), "CommitMessages")
	}
	cl := client(b)
	lg, err := cl.ListGroups(ctx, &kafka.ListGroupsRequest{})
	gt.Check(t, err, "ListGroups")
	gt.Check(t, lg.Error, "ListGroups")
	found := false
	for _, g := range lg.Groups {
		found = found || (g.GroupID == "kg-admin-group" && g.ProtocolType == "consumer" && g.Coordinator == 1)
	}
	if !found {
		gt.Errorf(t, "ListGroups: %+v", lg.Groups)
	}
	dg, err := cl.DescribeGroups(ctx, &kafka.DescribeGroupsRequest{GroupIDs: []string{"kg-admin-group"}})
	gt.Check(t, err, "DescribeGroups")
	if len(dg.Groups) != 1 || dg.Groups[0].Error != nil || dg.Groups[0].GroupState != "Stable" || len(dg.Groups[0].Members) != 1 {
		gt.Fatalf(t, "DescribeGroups: %+v", dg.Groups)
	}
	var parts []int
	for _, tp := range dg.Groups[0].Members[0].MemberAssignments.Topics {
		parts = append(parts, tp.Partitions...)
	}
	sort.Ints(parts)
	if fmt.Sprint(parts) != "[0 1]" {
		gt.Errorf(t, "member assignment %v, want [0 1]", parts)
	}
	del, err := cl.DeleteGroups(ctx, &kafka.DeleteGroupsRequest{GroupIDs: []string{"kg-admin-group"}})
	gt.Check(t, err, "DeleteGroups (active)")
	if !errors.Is(del.Errors["kg-admin-group"], kafka.NonEmptyGroup) {
		gt.Errorf(t, "delete active group: %v, want NON_EMPTY_GROUP", del.Errors["kg-admin-group"])
	}
	gt.Within(t, "reader close (leaves the group)", 30*time.Second, r.Close)
	od, err := cl.OffsetDelete(ctx, &kafka.OffsetDeleteRequest{GroupID: "kg-admin-group", Topics: map[string][]int{"kg-ag": {1}}})
	gt.Check(t, err, "OffsetDelete")
	gt.Check(t, od.Error, "OffsetDelete")
	for _, p := range od.Topics["kg-ag"] {
		gt.Check(t, p.Error, "OffsetDelete partition")
	}
	offs, err := cl.ConsumerOffsets(ctx, kafka.TopicAndGroup{Topic: "kg-ag", GroupId: "kg-admin-group"})
	gt.Check(t, err, "ConsumerOffsets")
	if offs[0] != 10 || offs[1] != -1 {
		gt.Errorf(t, "offsets after OffsetDelete(p1): %v, want p0=10 p1=-1", offs)
	}
	del, err = cl.DeleteGroups(ctx, &kafka.DeleteGroupsRequest{GroupIDs: []string{"kg-admin-group"}})
	gt.Check(t, err, "DeleteGroups")
	gt.Check(t, del.Errors["kg-admin-group"], "DeleteGroups")
}

// The matrix rows kafka-go cannot exercise.
func TestNotInKafkaGo(t *testing.T) {
	for feature, why := range map[string]string{
		"idempotent_produce":              "kafka-go's Writer has no idempotent mode",
		"transactions":                    "kafka-go has no transactional producer",
		"transactions_offsets":            "kafka-go has no transactional producer",
		"consume_group_consumer_protocol": "kafka-go's Reader speaks only the classic group protocol",
		"static_membership":               "kafka-go's Reader has no group.instance.id",
		"cooperative_rebalance":           "kafka-go's Reader has only eager balancers",
		"admin_delete_records":            "kafka.Client has no DeleteRecords",
		"admin_log_dirs":                  "kafka.Client has no DescribeLogDirs",
		"admin_transactions":              "kafka.Client has no List/DescribeTransactions or DescribeProducers",
		"admin_features":                  "kafka.Client has no DescribeCluster / features call",
	} {
		t.Run(feature, func(t *testing.T) {
			gt.Feature(t, feature)
			gt.Skip(t, "n/a: "+why)
		})
	}
}
