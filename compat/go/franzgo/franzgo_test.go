// franz-go (github.com/twmb/franz-go/pkg/kgo + pkg/kadm, see go.mod) against a real gregor
// process. franz-go negotiates every request version from ApiVersions (newest both sides
// support), so this exercises gregor's newest versions: Produce v12/13, Fetch v16+,
// KIP-848 ConsumerGroupHeartbeat, KIP-890 transactions, ...
//
// Each test starts its own broker (free port, temp log dir) and checks the data that comes
// back: keys, values, headers, timestamps, offsets and order per partition.
//
// Results: compat/results/franz-go.json (key "franz-go", read by scripts/matrix.py).
package franzgo_test

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

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	gt "gregor/compat/go/internal/gregortest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	gt.WriteResults("franz-go", "kgo "+gt.ModuleVersion("github.com/twmb/franz-go")+
		", kadm "+gt.ModuleVersion("github.com/twmb/franz-go/pkg/kadm"))
	os.Exit(code)
}

// ------------------------------------------------------------------ helpers

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), gt.Step)
	t.Cleanup(cancel)
	return ctx
}

func newClient(t *testing.T, b *gt.Broker, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	base := []kgo.Opt{kgo.SeedBrokers(b.Addr), kgo.ClientID("gregor-compat-franz-go"),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(5 * time.Millisecond),
		kgo.FetchMaxWait(500 * time.Millisecond), kgo.RetryTimeout(20 * time.Second)}
	cl, err := kgo.NewClient(append(base, opts...)...)
	gt.Check(t, err, "kgo.NewClient")
	t.Cleanup(cl.Close)
	return cl
}

func adminFor(t *testing.T, b *gt.Broker) *kadm.Client {
	t.Helper()
	return kadm.NewClient(newClient(t, b))
}

func createTopic(t *testing.T, b *gt.Broker, topic string, partitions int32, configs map[string]*string) {
	t.Helper()
	r, err := adminFor(t, b).CreateTopic(ctxT(t), partitions, 1, configs, topic)
	gt.Check(t, err, "CreateTopic "+topic)
	gt.Check(t, r.Err, "CreateTopic "+topic)
}

func makeRecords(n int, partitions int32, topic, tag string, base time.Time) []*kgo.Record {
	out := make([]*kgo.Record, n)
	for i := 0; i < n; i++ {
		out[i] = &kgo.Record{
			Topic:     topic,
			Partition: int32(i) % partitions,
			Key:       []byte(fmt.Sprintf("%s-key-%d", tag, i)),
			Value:     []byte(fmt.Sprintf("%s-value-%d-%s", tag, i, strings.Repeat("x", i%50))),
			Headers: []kgo.RecordHeader{
				{Key: "h-index", Value: []byte(fmt.Sprint(i))},
				{Key: "h-tag", Value: []byte(tag)},
				{Key: "empty", Value: []byte{}},
			},
			Timestamp: base.Add(time.Duration(i) * time.Millisecond),
		}
	}
	return out
}

// produceAll produces asynchronously (so batches hold several records) and waits for every
// promise; returns the offsets in input order.
func produceAll(t *testing.T, cl *kgo.Client, recs []*kgo.Record) []int64 {
	t.Helper()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	offsets := make([]int64, len(recs))
	ctx := ctxT(t)
	for i, r := range recs {
		i := i
		wg.Add(1)
		cl.Produce(ctx, r, func(r *kgo.Record, err error) {
			defer wg.Done()
			mu.Lock()
			defer mu.Unlock()
			if err != nil && firstErr == nil {
				firstErr = err
			}
			offsets[i] = r.Offset
		})
	}
	wg.Wait()
	gt.Check(t, firstErr, "produce")
	return offsets
}

// consume polls until want records per partition arrived (then checks that nothing more comes).
func consume(t *testing.T, cl *kgo.Client, want map[int32]int) map[int32][]*kgo.Record {
	t.Helper()
	out := map[int32][]*kgo.Record{}
	total, n := 0, 0
	for _, c := range want {
		total += c
	}
	deadline := time.Now().Add(gt.Step)
	for n < total {
		if time.Now().After(deadline) {
			gt.Fatalf(t, "consumed %d of %d within %v", n, total, gt.Step)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		fs := cl.PollFetches(ctx)
		cancel()
		for _, e := range fs.Errors() {
			if !errors.Is(e.Err, context.DeadlineExceeded) {
				gt.Fatalf(t, "fetch %s/%d: %v", e.Topic, e.Partition, e.Err)
			}
		}
		fs.EachRecord(func(r *kgo.Record) {
			out[r.Partition] = append(out[r.Partition], r)
			n++
		})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	fs := cl.PollFetches(ctx)
	cancel()
	fs.EachRecord(func(r *kgo.Record) {
		gt.Errorf(t, "unexpected extra record p%d@%d: %q", r.Partition, r.Offset, r.Value)
	})
	return out
}

func counts(recs []*kgo.Record) map[int32]int {
	m := map[int32]int{}
	for _, r := range recs {
		m[r.Partition]++
	}
	return m
}

func assignClient(t *testing.T, b *gt.Broker, topic string, partitions int32, opts ...kgo.Opt) *kgo.Client {
	ps := map[int32]kgo.Offset{}
	for p := int32(0); p < partitions; p++ {
		ps[p] = kgo.NewOffset().AtStart()
	}
	return newClient(t, b, append(opts, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: ps}))...)
}

// checkRoundtrip: per partition, the consumed records are the produced ones in order (at
// offsets 0.. when dense), with the delivered offsets, keys, values, headers and timestamps.
func checkRoundtrip(t *testing.T, recs []*kgo.Record, offsets []int64, consumed map[int32][]*kgo.Record, dense bool) {
	t.Helper()
	want := map[int32][]int{}
	for i, r := range recs {
		want[r.Partition] = append(want[r.Partition], i)
	}
	for p, idxs := range want {
		gs := consumed[p]
		if len(gs) != len(idxs) {
			gt.Fatalf(t, "p%d: consumed %d records, produced %d", p, len(gs), len(idxs))
		}
		for j, i := range idxs {
			g, r := gs[j], recs[i]
			if dense && g.Offset != int64(j) {
				gt.Fatalf(t, "p%d: record %d at offset %d", p, j, g.Offset)
			}
			if j > 0 && g.Offset <= gs[j-1].Offset {
				gt.Fatalf(t, "p%d: offsets not increasing: %d after %d", p, g.Offset, gs[j-1].Offset)
			}
			if offsets != nil && offsets[i] != g.Offset {
				gt.Fatalf(t, "p%d: delivered offset %d, consumed at %d", p, offsets[i], g.Offset)
			}
			if !bytes.Equal(g.Key, r.Key) || !bytes.Equal(g.Value, r.Value) {
				gt.Fatalf(t, "p%d@%d: key/value %q/%q, want %q/%q", p, g.Offset, g.Key, g.Value, r.Key, r.Value)
			}
			if !g.Timestamp.Equal(r.Timestamp) {
				gt.Fatalf(t, "p%d@%d: timestamp %v, want %v", p, g.Offset, g.Timestamp, r.Timestamp)
			}
			if len(g.Headers) != len(r.Headers) {
				gt.Fatalf(t, "p%d@%d: %d headers, want %d", p, g.Offset, len(g.Headers), len(r.Headers))
			}
			for k, h := range g.Headers {
				if h.Key != r.Headers[k].Key || !bytes.Equal(h.Value, r.Headers[k].Value) {
					gt.Fatalf(t, "p%d@%d: header %d = %q:%q, want %q:%q", p, g.Offset, k, h.Key, h.Value,
						r.Headers[k].Key, r.Headers[k].Value)
				}
			}
		}
	}
}

// ------------------------------------------------------------------ produce / consume

func testCodec(t *testing.T, name string, codec kgo.CompressionCodec, extra ...kgo.Opt) {
	b := gt.Start(t)
	topic := "fg-codec-" + name
	createTopic(t, b, topic, 3, nil)
	recs := makeRecords(300, 3, topic, name, time.Now().Add(-time.Minute).Truncate(time.Millisecond))
	p := newClient(t, b, append([]kgo.Opt{kgo.ProducerBatchCompression(codec)}, extra...)...)
	offsets := produceAll(t, p, recs)
	c := assignClient(t, b, topic, 3)
	checkRoundtrip(t, recs, offsets, consume(t, c, counts(recs)), true)
}

func TestProduceConsumeNone(t *testing.T) {
	gt.Feature(t, "produce_none", "consume_assign", "idempotent_produce")
	testCodec(t, "none", kgo.NoCompression())
}

func TestProduceConsumeGzip(t *testing.T) {
	gt.Feature(t, "produce_gzip", "idempotent_produce")
	testCodec(t, "gzip", kgo.GzipCompression())
}

func TestProduceConsumeSnappy(t *testing.T) {
	gt.Feature(t, "produce_snappy", "idempotent_produce")
	testCodec(t, "snappy", kgo.SnappyCompression())
}

func TestProduceConsumeLz4(t *testing.T) {
	gt.Feature(t, "produce_lz4", "idempotent_produce")
	testCodec(t, "lz4", kgo.Lz4Compression())
}

func TestProduceConsumeZstd(t *testing.T) {
	gt.Feature(t, "produce_zstd", "idempotent_produce")
	testCodec(t, "zstd", kgo.ZstdCompression())
}

func testAcks(t *testing.T, name string, acks kgo.Acks) {
	b := gt.Start(t)
	topic := "fg-acks-" + name
	createTopic(t, b, topic, 2, nil)
	recs := makeRecords(100, 2, topic, "acks"+name, time.Now().Add(-30*time.Second).Truncate(time.Millisecond))
	opts := []kgo.Opt{kgo.RequiredAcks(acks)}
	if name != "all" {
		opts = append(opts, kgo.DisableIdempotentWrite()) // idempotence needs acks=all
	}
	offsets := produceAll(t, newClient(t, b, opts...), recs)
	if name == "0" {
		offsets = nil // no offsets come back with acks=0; the data must still land
	}
	checkRoundtrip(t, recs, offsets, consume(t, assignClient(t, b, topic, 2), counts(recs)), true)
}

func TestAcks0(t *testing.T)   { gt.Feature(t, "acks_0"); testAcks(t, "0", kgo.NoAck()) }
func TestAcks1(t *testing.T)   { gt.Feature(t, "acks_1"); testAcks(t, "1", kgo.LeaderAck()) }
func TestAcksAll(t *testing.T) { gt.Feature(t, "acks_all"); testAcks(t, "all", kgo.AllISRAcks()) }

func TestIdempotentProducer(t *testing.T) {
	gt.Feature(t, "idempotent_produce")
	b := gt.Start(t)
	createTopic(t, b, "fg-idem", 2, nil)
	recs := makeRecords(400, 2, "fg-idem", "idem", time.Now().Add(-10*time.Second).Truncate(time.Millisecond))
	p := newClient(t, b) // idempotent is franz-go's default
	offsets := produceAll(t, p, recs)
	checkRoundtrip(t, recs, offsets, consume(t, assignClient(t, b, "fg-idem", 2), counts(recs)), true)
	// DescribeProducers: one idempotent producer per partition, last sequence 199
	ds, err := kadm.NewClient(p).DescribeProducers(ctxT(t), kadm.TopicsSet{"fg-idem": {0: {}, 1: {}}})
	gt.Check(t, err, "DescribeProducers")
	for part := int32(0); part < 2; part++ {
		d := ds["fg-idem"].Partitions[part]
		ps := d.ActiveProducers.Sorted()
		if d.Err != nil || len(ps) != 1 || ps[0].LastSequence != 199 {
			gt.Errorf(t, "DescribeProducers p%d: %+v (err %v), want one producer at sequence 199", part, ps, d.Err)
		}
	}
}

func TestMessageTooLarge(t *testing.T) {
	gt.Feature(t, "message_too_large")
	b := gt.Start(t)
	createTopic(t, b, "fg-big", 1, nil)
	// the client limit is above the broker's message.max.bytes (1048588): the rejection must
	// come from the broker. Uncompressed: the limit applies to the batch as sent.
	p := newClient(t, b, kgo.ProducerBatchMaxBytes(16<<20), kgo.RecordRetries(0),
		kgo.ProducerBatchCompression(kgo.NoCompression()))
	r := p.ProduceSync(ctxT(t), &kgo.Record{Topic: "fg-big", Key: []byte("big"), Value: bytes.Repeat([]byte("x"), 2<<20)})
	if err := r.FirstErr(); !errors.Is(err, kerr.MessageTooLarge) {
		gt.Fatalf(t, "2 MiB record: %v, want MESSAGE_TOO_LARGE", err)
	}
	ts := time.UnixMilli(1_700_000_000_000)
	r = p.ProduceSync(ctxT(t), &kgo.Record{Topic: "fg-big", Key: []byte("k"), Value: []byte("small"), Timestamp: ts,
		Headers: []kgo.RecordHeader{{Key: "a", Value: []byte("b")}}})
	rec, err := r.First()
	if err != nil || rec.Offset != 0 {
		gt.Fatalf(t, "small record after the rejection: %v (offset %d)", err, rec.Offset)
	}
	g := consume(t, assignClient(t, b, "fg-big", 1), map[int32]int{0: 1})[0][0]
	if string(g.Value) != "small" || !g.Timestamp.Equal(ts) || len(g.Headers) != 1 || string(g.Headers[0].Value) != "b" {
		gt.Fatalf(t, "read back %+v", g)
	}
}

func TestUnknownTopicNoAutoCreate(t *testing.T) {
	gt.Feature(t, "unknown_topic_no_autocreate")
	b := gt.Start(t, "--set", "auto.create.topics.enable=false")
	p := newClient(t, b, kgo.AllowAutoTopicCreation(), kgo.UnknownTopicRetries(2))
	r := p.ProduceSync(ctxT(t), &kgo.Record{Topic: "fg-nope", Value: []byte("v")})
	if err := r.FirstErr(); !errors.Is(err, kerr.UnknownTopicOrPartition) {
		gt.Fatalf(t, "produce to unknown topic: %v, want UNKNOWN_TOPIC_OR_PARTITION", err)
	}
	topics, err := adminFor(t, b).ListTopics(ctxT(t))
	gt.Check(t, err, "ListTopics")
	if topics.Has("fg-nope") {
		gt.Fatalf(t, "%s", "fg-nope was auto-created")
	}
}

// ------------------------------------------------------------------ list offsets

func TestListOffsets(t *testing.T) {
	gt.Feature(t, "list_offsets_earliest", "list_offsets_latest", "list_offsets_by_time")
	b := gt.Start(t)
	createTopic(t, b, "fg-offsets", 2, nil)
	base := time.Now().Add(-100 * time.Second).Truncate(time.Millisecond)
	var recs []*kgo.Record
	for i := 0; i < 10; i++ {
		recs = append(recs, &kgo.Record{Topic: "fg-offsets", Partition: 0, Key: []byte{byte(i)}, Value: []byte("v"),
			Timestamp: base.Add(time.Duration(i) * time.Second)})
	}
	p := newClient(t, b)
	produceAll(t, p, recs)
	adm := kadm.NewClient(p)
	check := func(what string, lo kadm.ListedOffsets, err error, part int32, want int64) {
		t.Helper()
		gt.Check(t, err, what)
		o, ok := lo.Lookup("fg-offsets", part)
		if !ok || o.Err != nil || o.Offset != want {
			gt.Fatalf(t, "%s p%d: %+v, want %d", what, part, o, want)
		}
	}
	ctx := ctxT(t)
	lo, err := adm.ListStartOffsets(ctx, "fg-offsets")
	check("earliest", lo, err, 0, 0)
	check("earliest", lo, err, 1, 0)
	lo, err = adm.ListEndOffsets(ctx, "fg-offsets")
	check("latest", lo, err, 0, 10)
	check("latest", lo, err, 1, 0)
	lo, err = adm.ListOffsetsAfterMilli(ctx, base.Add(3500*time.Millisecond).UnixMilli(), "fg-offsets")
	check("by time base+3.5s", lo, err, 0, 4)
	lo, err = adm.ListOffsetsAfterMilli(ctx, base.UnixMilli(), "fg-offsets")
	check("by time base", lo, err, 0, 0)
	// past the last record: Kafka answers -1, which kadm turns into the end offset
	lo, err = adm.ListOffsetsAfterMilli(ctx, base.Add(999*time.Second).UnixMilli(), "fg-offsets")
	check("by time after the end", lo, err, 0, 10)
	lo, err = adm.ListMaxTimestampOffsets(ctx, "fg-offsets")
	check("max timestamp", lo, err, 0, 9)
	// a consumer starting at a time
	c := newClient(t, b, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{
		"fg-offsets": {0: kgo.NewOffset().AfterMilli(base.Add(7 * time.Second).UnixMilli())}}))
	got := consume(t, c, map[int32]int{0: 3})
	if got[0][0].Offset != 7 {
		gt.Fatalf(t, "consume from base+7s starts at %d, want 7", got[0][0].Offset)
	}
}

// ------------------------------------------------------------------ groups

type groupRun struct {
	mu      sync.Mutex
	got     map[int32][]*kgo.Record
	n       int
	owned   map[int32]bool
	revoked int
}

func newGroupRun() *groupRun {
	return &groupRun{got: map[int32][]*kgo.Record{}, owned: map[int32]bool{}}
}

func (g *groupRun) opts(topic string) []kgo.Opt {
	return []kgo.Opt{
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
			g.mu.Lock()
			defer g.mu.Unlock()
			for _, ps := range m {
				for _, p := range ps {
					g.owned[p] = true
				}
			}
		}),
		kgo.OnPartitionsRevoked(func(ctx context.Context, cl *kgo.Client, m map[string][]int32) {
			_ = cl.CommitMarkedOffsets(ctx)
			g.mu.Lock()
			defer g.mu.Unlock()
			for _, ps := range m {
				for _, p := range ps {
					delete(g.owned, p)
					g.revoked++
				}
			}
		}),
		kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
			g.mu.Lock()
			defer g.mu.Unlock()
			for _, ps := range m {
				for _, p := range ps {
					delete(g.owned, p)
				}
			}
		}),
	}
}

func (g *groupRun) ownedList() []int32 {
	g.mu.Lock()
	defer g.mu.Unlock()
	var ps []int32
	for p := range g.owned {
		ps = append(ps, p)
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i] < ps[j] })
	return ps
}

// poll runs one PollFetches and records what came.
func (g *groupRun) poll(t *testing.T, cl *kgo.Client, d time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	fs := cl.PollFetches(ctx)
	cancel()
	for _, e := range fs.Errors() {
		if !errors.Is(e.Err, context.DeadlineExceeded) && !errors.Is(e.Err, kgo.ErrClientClosed) {
			gt.Errorf(t, "group fetch %s/%d: %v", e.Topic, e.Partition, e.Err)
		}
	}
	g.mu.Lock()
	fs.EachRecord(func(r *kgo.Record) {
		g.got[r.Partition] = append(g.got[r.Partition], r)
		g.n++
	})
	g.mu.Unlock()
}

func (g *groupRun) count() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.n
}

func dedup(runs ...*groupRun) map[int32][]*kgo.Record {
	merged := map[int32][]*kgo.Record{}
	for _, g := range runs {
		g.mu.Lock()
		for p, rs := range g.got {
			merged[p] = append(merged[p], rs...)
		}
		g.mu.Unlock()
	}
	for p, rs := range merged {
		sort.SliceStable(rs, func(i, j int) bool { return rs[i].Offset < rs[j].Offset })
		var out []*kgo.Record
		for _, r := range rs {
			if len(out) == 0 || out[len(out)-1].Offset != r.Offset {
				out = append(out, r)
			}
		}
		merged[p] = out
	}
	return merged
}

// testGroup: one member reads everything, commits on leave; a second client then sees the
// committed offsets (30 per partition) with OffsetFetch.
func testGroup(t *testing.T, group string, kip848 bool, extra ...kgo.Opt) {
	b := gt.Start(t)
	topic := group + "-t"
	createTopic(t, b, topic, 3, nil)
	recs := makeRecords(90, 3, topic, "grp", time.Now().Add(-5*time.Second).Truncate(time.Millisecond))
	offsets := produceAll(t, newClient(t, b), recs)
	g := newGroupRun()
	opts := append(g.opts(topic), kgo.ConsumerGroup(group), kgo.SessionTimeout(10*time.Second),
		kgo.HeartbeatInterval(time.Second))
	c := newClient(t, b, append(opts, extra...)...)
	deadline := time.Now().Add(gt.Step)
	for g.count() < len(recs) {
		if time.Now().After(deadline) {
			gt.Fatalf(t, "group consumed %d of %d within %v", g.count(), len(recs), gt.Step)
		}
		g.poll(t, c, time.Second)
	}
	checkRoundtrip(t, recs, offsets, dedup(g), true)
	gt.Check(t, c.CommitUncommittedOffsets(ctxT(t)), "CommitUncommittedOffsets")
	adm := adminFor(t, b)
	lg, err := adm.ListGroups(ctxT(t))
	gt.Check(t, err, "ListGroups")
	wantType := "classic"
	if kip848 {
		wantType = "consumer"
		dg, err := adm.DescribeConsumerGroups(ctxT(t), group)
		gt.Check(t, err, "DescribeConsumerGroups")
		d := dg[group]
		if d.Err != nil || d.State != "Stable" || len(d.Members) != 1 || len(d.Members[0].Assignment[topic]) != 3 {
			gt.Errorf(t, "DescribeConsumerGroups: %+v", d)
		}
	}
	if l := lg[group]; l.GroupType != wantType {
		gt.Errorf(t, "ListGroups: %+v, want type %s", l, wantType)
	}
	gt.Within(t, "LeaveGroup", 30*time.Second, func() error { return c.LeaveGroupContext(ctxT(t)) })
	os, err := adm.FetchOffsets(ctxT(t), group)
	gt.Check(t, err, "FetchOffsets")
	for p := int32(0); p < 3; p++ {
		if o, ok := os.Lookup(topic, p); !ok || o.Err != nil || o.At != 30 {
			gt.Errorf(t, "committed p%d: %+v, want 30", p, o)
		}
	}
}

func TestConsumerGroupClassic(t *testing.T) {
	gt.Feature(t, "consume_group")
	testGroup(t, "fg-classic", false, kgo.Balancers(kgo.RangeBalancer()))
}

func TestConsumerGroupKIP848(t *testing.T) {
	gt.Feature(t, "consume_group_consumer_protocol")
	testGroup(t, "fg-848", true, kgo.Balancers(kgo.RangeBalancer()), kgo.ServerSideBalancer())
}

// Two KIP-848 members: the broker assigns (server-side range assignor) and moves two
// partitions to the second member; everything is read once.
func TestConsumerGroupKIP848TwoMembers(t *testing.T) {
	gt.Feature(t, "consume_group_consumer_protocol")
	b, _ := testTwoMembers(t, "fg-848x2", func(int) []kgo.Opt {
		return []kgo.Opt{kgo.Balancers(kgo.RangeBalancer()), kgo.ServerSideBalancer()}
	})
	dg, err := adminFor(t, b).DescribeConsumerGroups(ctxT(t), "fg-848x2")
	gt.Check(t, err, "DescribeConsumerGroups")
	d := dg["fg-848x2"]
	if d.Err != nil || len(d.Members) != 2 {
		gt.Fatalf(t, "DescribeConsumerGroups: %+v", d)
	}
	for _, m := range d.Members {
		if n := len(m.Assignment["fg-848x2-t"]); n != 2 {
			gt.Errorf(t, "member %s assigned %d partitions, want 2", m.MemberID, n)
		}
	}
}

func TestCommitFetchOffsets(t *testing.T) {
	gt.Feature(t, "commit_fetch_offsets")
	b := gt.Start(t)
	createTopic(t, b, "fg-commit", 2, nil)
	produceAll(t, newClient(t, b), makeRecords(20, 2, "fg-commit", "cm", time.Now().Truncate(time.Millisecond)))
	adm := adminFor(t, b)
	os, err := adm.FetchOffsets(ctxT(t), "fg-manual")
	gt.Check(t, err, "FetchOffsets (no group yet)")
	if len(os) != 0 {
		gt.Errorf(t, "offsets of an unknown group: %v", os)
	}
	var set kadm.Offsets
	set.Add(kadm.Offset{Topic: "fg-commit", Partition: 0, At: 7, LeaderEpoch: -1, Metadata: "meta0"})
	set.Add(kadm.Offset{Topic: "fg-commit", Partition: 1, At: 3, LeaderEpoch: -1, Metadata: "meta1"})
	gt.Check(t, adm.CommitAllOffsets(ctxT(t), "fg-manual", set), "CommitAllOffsets")
	os, err = adm.FetchOffsets(ctxT(t), "fg-manual")
	gt.Check(t, err, "FetchOffsets")
	for p, want := range map[int32]int64{0: 7, 1: 3} {
		o, ok := os.Lookup("fg-commit", p)
		if !ok || o.Err != nil || o.At != want || o.Metadata != fmt.Sprintf("meta%d", p) {
			gt.Errorf(t, "fetched p%d: %+v, want %d meta%d", p, o, want, p)
		}
	}
	// a group consumer resumes from the committed offsets
	g := newGroupRun()
	c := newClient(t, b, append(g.opts("fg-commit"), kgo.ConsumerGroup("fg-manual"))...)
	deadline := time.Now().Add(gt.Step)
	for g.count() < 10 {
		if time.Now().After(deadline) {
			gt.Fatalf(t, "resumed group consumed %d of 10", g.count())
		}
		g.poll(t, c, time.Second)
	}
	if g.got[0][0].Offset != 7 || g.got[1][0].Offset != 3 {
		gt.Errorf(t, "group resumed at p0@%d p1@%d, want 7 and 3", g.got[0][0].Offset, g.got[1][0].Offset)
	}
}

// two members: the partitions are split and everything is read once; with tweak per member.
func testTwoMembers(t *testing.T, group string, tweak func(i int) []kgo.Opt) (*gt.Broker, []*groupRun) {
	b := gt.Start(t)
	topic := group + "-t"
	createTopic(t, b, topic, 4, nil)
	recs := makeRecords(200, 4, topic, group, time.Now().Add(-5*time.Second).Truncate(time.Millisecond))
	offsets := produceAll(t, newClient(t, b), recs)
	var runs []*groupRun
	var cls []*kgo.Client
	var stop sync.WaitGroup
	done := make(chan struct{})
	for i := 0; i < 2; i++ {
		g := newGroupRun()
		opts := append(g.opts(topic), kgo.ConsumerGroup(group), kgo.SessionTimeout(10*time.Second),
			kgo.HeartbeatInterval(500*time.Millisecond))
		c := newClient(t, b, append(opts, tweak(i)...)...)
		runs, cls = append(runs, g), append(cls, c)
		stop.Add(1)
		go func() {
			defer stop.Done()
			for {
				select {
				case <-done:
					return
				default:
				}
				g.poll(t, c, 500*time.Millisecond)
			}
		}()
		if i == 0 {
			gt.Eventually(t, "first member owns 4 partitions", gt.Step, func() error {
				if o := g.ownedList(); len(o) != 4 {
					return fmt.Errorf("owns %v", o)
				}
				return nil
			})
		}
	}
	gt.Eventually(t, "two members split the partitions and read everything", gt.Step, func() error {
		a, c := runs[0].ownedList(), runs[1].ownedList()
		if len(a) != 2 || len(c) != 2 {
			return fmt.Errorf("owned %v / %v", a, c)
		}
		if n := len(dedup(runs...)[0]) + len(dedup(runs...)[1]) + len(dedup(runs...)[2]) + len(dedup(runs...)[3]); n < len(recs) {
			return fmt.Errorf("read %d of %d", n, len(recs))
		}
		return nil
	})
	close(done)
	stop.Wait()
	a, c := runs[0].ownedList(), runs[1].ownedList()
	for _, p := range a {
		for _, q := range c {
			if p == q {
				gt.Fatalf(t, "partition %d owned by both: %v / %v", p, a, c)
			}
		}
	}
	checkRoundtrip(t, recs, offsets, dedup(runs...), true)
	return b, runs
}

func TestCooperativeRebalance(t *testing.T) {
	gt.Feature(t, "cooperative_rebalance")
	_, runs := testTwoMembers(t, "fg-coop", func(int) []kgo.Opt {
		return []kgo.Opt{kgo.Balancers(kgo.CooperativeStickyBalancer())}
	})
	// incremental: the first member gives up only the 2 partitions that move
	if r := runs[0].revoked; r != 2 {
		gt.Errorf(t, "first member had %d partitions revoked, want 2 (cooperative)", r)
	}
}

func TestStaticMembership(t *testing.T) {
	gt.Feature(t, "static_membership")
	b, _ := testTwoMembers(t, "fg-static", func(i int) []kgo.Opt {
		return []kgo.Opt{kgo.InstanceID(fmt.Sprintf("static-%d", i)), kgo.Balancers(kgo.RangeBalancer())}
	})
	ds, err := adminFor(t, b).DescribeGroups(ctxT(t), "fg-static")
	gt.Check(t, err, "DescribeGroups")
	var ids []string
	for _, m := range ds["fg-static"].Members {
		if m.InstanceID != nil {
			ids = append(ids, *m.InstanceID)
		}
	}
	sort.Strings(ids)
	if strings.Join(ids, ",") != "static-0,static-1" {
		gt.Errorf(t, "instance ids %v", ids)
	}
}

// ------------------------------------------------------------------ transactions

func TestTransactions(t *testing.T) {
	gt.Feature(t, "transactions")
	b := gt.Start(t)
	createTopic(t, b, "fg-txn", 2, nil)
	p := newClient(t, b, kgo.TransactionalID("fg-txn-1"), kgo.TransactionTimeout(30*time.Second))
	base := time.Now().Add(-time.Minute).Truncate(time.Millisecond)
	committed1 := makeRecords(10, 2, "fg-txn", "c1", base)
	aborted := makeRecords(6, 2, "fg-txn", "ab", base.Add(time.Second))
	committed2 := makeRecords(4, 2, "fg-txn", "c2", base.Add(2*time.Second))
	ctx := ctxT(t)
	for _, step := range []struct {
		recs []*kgo.Record
		end  kgo.TransactionEndTry
	}{{committed1, kgo.TryCommit}, {aborted, kgo.TryAbort}, {committed2, kgo.TryCommit}} {
		gt.Check(t, p.BeginTransaction(), "BeginTransaction")
		produceAll(t, p, step.recs)
		gt.Check(t, p.Flush(ctx), "Flush")
		gt.Check(t, p.EndTransaction(ctx, step.end), "EndTransaction")
	}
	want := append(append([]*kgo.Record{}, committed1...), committed2...)
	got := consume(t, assignClient(t, b, "fg-txn", 2, kgo.FetchIsolationLevel(kgo.ReadCommitted())), counts(want))
	checkRoundtrip(t, want, nil, got, false)
	for part := int32(0); part < 2; part++ {
		// 5 committed + marker (0..5), 3 aborted + marker (6..9), then 10, 11
		if o := got[part][5].Offset; o != 10 {
			gt.Errorf(t, "p%d: first record of the second committed txn at %d, want 10", part, o)
		}
	}
	all := consume(t, assignClient(t, b, "fg-txn", 2), map[int32]int{0: 10, 1: 10})
	if !bytes.Equal(all[0][5].Value, aborted[0].Value) {
		gt.Errorf(t, "read_uncommitted p0@%d: %q, want the aborted %q", all[0][5].Offset, all[0][5].Value, aborted[0].Value)
	}
}

// GroupTransactSession: consume from fg-in in a group, produce to fg-out, commit the
// consumed offsets inside the transaction; an aborted round commits neither.
func TestTransactionsOffsets(t *testing.T) {
	gt.Feature(t, "transactions_offsets")
	b := gt.Start(t)
	createTopic(t, b, "fg-in", 1, nil)
	createTopic(t, b, "fg-out", 1, nil)
	in := makeRecords(10, 1, "fg-in", "in", time.Now().Add(-time.Minute).Truncate(time.Millisecond))
	produceAll(t, newClient(t, b), in)
	s, err := kgo.NewGroupTransactSession(kgo.SeedBrokers(b.Addr), kgo.TransactionalID("fg-ctp"),
		kgo.TransactionTimeout(30*time.Second), kgo.ConsumerGroup("fg-ctp-group"), kgo.ConsumeTopics("fg-in"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.SessionTimeout(10*time.Second))
	gt.Check(t, err, "NewGroupTransactSession")
	defer s.Close()
	round := func(want int, end kgo.TransactionEndTry) []*kgo.Record {
		t.Helper()
		var consumed []*kgo.Record
		deadline := time.Now().Add(gt.Step)
		for len(consumed) < want {
			if time.Now().After(deadline) {
				gt.Fatalf(t, "session consumed %d of %d", len(consumed), want)
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			fs := s.PollFetches(ctx)
			cancel()
			fs.EachRecord(func(r *kgo.Record) { consumed = append(consumed, r) })
		}
		gt.Check(t, s.Begin(), "Begin")
		for _, r := range consumed {
			out := &kgo.Record{Topic: "fg-out", Key: r.Key, Value: bytes.ToUpper(r.Value), Timestamp: r.Timestamp}
			gt.Check(t, s.ProduceSync(ctxT(t), out).FirstErr(), "transactional produce")
		}
		committed, err := s.End(ctxT(t), end)
		gt.Check(t, err, "End")
		if committed != (end == kgo.TryCommit) {
			gt.Fatalf(t, "End(%v) committed=%v", end, committed)
		}
		return consumed
	}
	first := round(10, kgo.TryCommit)
	adm := adminFor(t, b)
	os, err := adm.FetchOffsets(ctxT(t), "fg-ctp-group")
	gt.Check(t, err, "FetchOffsets")
	if o, ok := os.Lookup("fg-in", 0); !ok || o.At != 10 {
		gt.Fatalf(t, "group offset after the committed txn: %+v, want 10", o)
	}
	// an aborted round: 5 more inputs, output and offsets rolled back
	produceAll(t, newClient(t, b), makeRecords(5, 1, "fg-in", "in2", time.Now().Truncate(time.Millisecond)))
	round(5, kgo.TryAbort)
	os, err = adm.FetchOffsets(ctxT(t), "fg-ctp-group")
	gt.Check(t, err, "FetchOffsets")
	if o, ok := os.Lookup("fg-in", 0); !ok || o.At != 10 {
		gt.Fatalf(t, "group offset after the aborted txn: %+v, want still 10", o)
	}
	var want []*kgo.Record
	for _, r := range first {
		want = append(want, &kgo.Record{Partition: 0, Key: r.Key, Value: bytes.ToUpper(r.Value), Timestamp: r.Timestamp})
	}
	got := consume(t, assignClient(t, b, "fg-out", 1, kgo.FetchIsolationLevel(kgo.ReadCommitted())), map[int32]int{0: 10})
	checkRoundtrip(t, want, nil, got, true)
}

// ------------------------------------------------------------------ admin

func TestAdminTopics(t *testing.T) {
	gt.Feature(t, "admin_create_topic", "admin_delete_topic", "metadata_all_topics")
	b := gt.Start(t)
	adm := adminFor(t, b)
	ctx := ctxT(t)
	rs, err := adm.CreateTopics(ctx, 4, 1, map[string]*string{"retention.ms": kadm.StringPtr("3600000")}, "fg-a", "fg-b")
	gt.Check(t, err, "CreateTopics")
	gt.Check(t, rs.Error(), "CreateTopics")
	r, _ := adm.CreateTopic(ctx, 4, 1, nil, "fg-a")
	if !errors.Is(r.Err, kerr.TopicAlreadyExists) {
		gt.Fatalf(t, "second create: %v, want TOPIC_ALREADY_EXISTS", r.Err)
	}
	r, _ = adm.CreateTopic(ctx, 1, 3, nil, "fg-rf3")
	if !errors.Is(r.Err, kerr.InvalidReplicationFactor) {
		gt.Errorf(t, "replication factor 3 on one broker: %v, want INVALID_REPLICATION_FACTOR", r.Err)
	}
	td, err := adm.ListTopics(ctx)
	gt.Check(t, err, "ListTopics")
	if !td.Has("fg-a") || !td.Has("fg-b") || len(td["fg-a"].Partitions) != 4 {
		gt.Fatalf(t, "ListTopics: %v", td.Names())
	}
	if td["fg-a"].ID == (kadm.TopicID{}) {
		gt.Errorf(t, "%s", "fg-a has no topic id")
	}
	ds, err := adm.DeleteTopics(ctx, "fg-a")
	gt.Check(t, err, "DeleteTopics")
	gt.Check(t, ds.Error(), "DeleteTopics")
	gt.Eventually(t, "fg-a gone", 20*time.Second, func() error {
		td, err := adm.ListTopics(ctx)
		if err != nil {
			return err
		}
		if td.Has("fg-a") || !td.Has("fg-b") {
			return fmt.Errorf("topics %v", td.Names())
		}
		return nil
	})
	ds, _ = adm.DeleteTopics(ctx, "fg-never")
	if err := ds.Error(); !errors.Is(err, kerr.UnknownTopicOrPartition) {
		gt.Errorf(t, "delete unknown topic: %v, want UNKNOWN_TOPIC_OR_PARTITION", err)
	}
}

func TestAdminPartitions(t *testing.T) {
	gt.Feature(t, "admin_partitions")
	b := gt.Start(t)
	createTopic(t, b, "fg-parts", 2, nil)
	adm := adminFor(t, b)
	rs, err := adm.CreatePartitions(ctxT(t), 3, "fg-parts")
	gt.Check(t, err, "CreatePartitions")
	gt.Check(t, rs.Error(), "CreatePartitions")
	rs, _ = adm.UpdatePartitions(ctxT(t), 2, "fg-parts")
	if err := rs.Error(); !errors.Is(err, kerr.InvalidPartitions) {
		gt.Errorf(t, "shrink to 2: %v, want INVALID_PARTITIONS", err)
	}
	gt.Eventually(t, "5 partitions in metadata", 10*time.Second, func() error {
		td, err := adm.ListTopics(ctxT(t), "fg-parts")
		if err != nil {
			return err
		}
		if n := len(td["fg-parts"].Partitions); n != 5 {
			return fmt.Errorf("%d partitions", n)
		}
		return nil
	})
	recs := makeRecords(10, 5, "fg-parts", "parts", time.Now().Truncate(time.Millisecond))
	offsets := produceAll(t, newClient(t, b), recs)
	checkRoundtrip(t, recs, offsets, consume(t, assignClient(t, b, "fg-parts", 5), counts(recs)), true)
}

func TestAdminConfigs(t *testing.T) {
	gt.Feature(t, "admin_configs")
	b := gt.Start(t)
	createTopic(t, b, "fg-cfg", 1, map[string]*string{"cleanup.policy": kadm.StringPtr("compact")})
	adm := adminFor(t, b)
	get := func(name string) kadm.Config {
		t.Helper()
		rc, err := adm.DescribeTopicConfigs(ctxT(t), "fg-cfg")
		gt.Check(t, err, "DescribeTopicConfigs")
		c, err := rc.On("fg-cfg", nil)
		gt.Check(t, err, "DescribeTopicConfigs fg-cfg")
		gt.Check(t, c.Err, "DescribeTopicConfigs fg-cfg")
		for _, e := range c.Configs {
			if e.Key == name {
				return e
			}
		}
		gt.Fatalf(t, "config %s not described", name)
		return kadm.Config{}
	}
	if c := get("cleanup.policy"); c.MaybeValue() != "compact" || c.Source != kmsg.ConfigSourceDynamicTopicConfig {
		gt.Fatalf(t, "cleanup.policy: %q from %v, want compact from the topic", c.MaybeValue(), c.Source)
	}
	if c := get("max.message.bytes"); c.MaybeValue() != "1048588" {
		gt.Errorf(t, "max.message.bytes: %q, want 1048588 (default)", c.MaybeValue())
	}
	rs, err := adm.AlterTopicConfigs(ctxT(t), []kadm.AlterConfig{
		{Op: kadm.SetConfig, Name: "retention.ms", Value: kadm.StringPtr("123456")},
		{Op: kadm.DeleteConfig, Name: "cleanup.policy"},
	}, "fg-cfg")
	gt.Check(t, err, "AlterTopicConfigs")
	for _, r := range rs {
		gt.Check(t, r.Err, "AlterTopicConfigs "+r.Name)
	}
	if c := get("retention.ms"); c.MaybeValue() != "123456" {
		gt.Errorf(t, "retention.ms after set: %q", c.MaybeValue())
	}
	if c := get("cleanup.policy"); c.MaybeValue() != "delete" {
		gt.Errorf(t, "cleanup.policy after delete: %q, want the default delete", c.MaybeValue())
	}
	rs, _ = adm.AlterTopicConfigs(ctxT(t), []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "no.such.config", Value: kadm.StringPtr("1")}}, "fg-cfg")
	if len(rs) != 1 || !errors.Is(rs[0].Err, kerr.InvalidConfig) {
		gt.Errorf(t, "unknown config: %+v, want INVALID_CONFIG", rs)
	}
	bc, err := adm.DescribeBrokerConfigs(ctxT(t), 1)
	gt.Check(t, err, "DescribeBrokerConfigs")
	found := ""
	for _, r := range bc {
		for _, c := range r.Configs {
			if c.Key == "auto.create.topics.enable" {
				found = c.MaybeValue()
			}
		}
	}
	if found != "true" {
		gt.Errorf(t, "broker auto.create.topics.enable = %q, want true", found)
	}
}

func TestAdminGroups(t *testing.T) {
	gt.Feature(t, "admin_groups")
	b := gt.Start(t)
	createTopic(t, b, "fg-ag", 2, nil)
	recs := makeRecords(20, 2, "fg-ag", "ag", time.Now().Truncate(time.Millisecond))
	produceAll(t, newClient(t, b), recs)
	g := newGroupRun()
	c := newClient(t, b, append(g.opts("fg-ag"), kgo.ConsumerGroup("fg-admin-group"), kgo.Balancers(kgo.RangeBalancer()))...)
	deadline := time.Now().Add(gt.Step)
	for g.count() < len(recs) {
		if time.Now().After(deadline) {
			gt.Fatalf(t, "group consumed %d of %d", g.count(), len(recs))
		}
		g.poll(t, c, time.Second)
	}
	gt.Check(t, c.CommitUncommittedOffsets(ctxT(t)), "CommitUncommittedOffsets")
	adm := adminFor(t, b)
	ctx := ctxT(t)
	lg, err := adm.ListGroups(ctx)
	gt.Check(t, err, "ListGroups")
	if l, ok := lg["fg-admin-group"]; !ok || l.ProtocolType != "consumer" || l.State != "Stable" {
		gt.Errorf(t, "ListGroups: %+v", lg)
	}
	dg, err := adm.DescribeGroups(ctx, "fg-admin-group")
	gt.Check(t, err, "DescribeGroups")
	d := dg["fg-admin-group"]
	if d.Err != nil || d.State != "Stable" || d.Protocol != "range" || len(d.Members) != 1 {
		gt.Fatalf(t, "DescribeGroups: %+v", d)
	}
	lag, err := adm.Lag(ctx, "fg-admin-group")
	gt.Check(t, err, "Lag")
	if l := lag["fg-admin-group"]; l.Error() != nil || l.Lag.Total() != 0 {
		gt.Errorf(t, "lag: %v total %d, want 0", l.Error(), l.Lag.Total())
	}
	dr, _ := adm.DeleteGroup(ctx, "fg-admin-group")
	if !errors.Is(dr.Err, kerr.NonEmptyGroup) {
		gt.Errorf(t, "delete while active: %v, want NON_EMPTY_GROUP", dr.Err)
	}
	gt.Within(t, "LeaveGroup", 30*time.Second, func() error { return c.LeaveGroupContext(ctx) })
	c.Close()
	// DeleteOffsets (OffsetDelete) on the now-empty group
	do, err := adm.DeleteOffsets(ctx, "fg-admin-group", kadm.TopicsSet{"fg-ag": {1: {}}})
	gt.Check(t, err, "DeleteOffsets")
	if e, ok := do.Lookup("fg-ag", 1); !ok || e != nil {
		gt.Errorf(t, "DeleteOffsets p1: %v", e)
	}
	os, err := adm.FetchOffsets(ctx, "fg-admin-group")
	gt.Check(t, err, "FetchOffsets")
	if o, ok := os.Lookup("fg-ag", 0); !ok || o.At != 10 {
		gt.Errorf(t, "p0 offset %+v, want 10", o)
	}
	if o, ok := os.Lookup("fg-ag", 1); ok && o.At >= 0 {
		gt.Errorf(t, "p1 offset after delete %+v", o)
	}
	dr, err = adm.DeleteGroup(ctx, "fg-admin-group")
	gt.Check(t, err, "DeleteGroup")
	gt.Check(t, dr.Err, "DeleteGroup")
	lg, err = adm.ListGroups(ctx)
	gt.Check(t, err, "ListGroups")
	if _, ok := lg["fg-admin-group"]; ok {
		gt.Errorf(t, "group listed after delete: %+v", lg)
	}
}

func TestAdminDeleteRecords(t *testing.T) {
	gt.Feature(t, "admin_delete_records")
	b := gt.Start(t)
	createTopic(t, b, "fg-delrec", 1, nil)
	recs := makeRecords(20, 1, "fg-delrec", "dr", time.Now().Truncate(time.Millisecond))
	produceAll(t, newClient(t, b), recs)
	adm := adminFor(t, b)
	var os kadm.Offsets
	os.AddOffset("fg-delrec", 0, 12, -1)
	rs, err := adm.DeleteRecords(ctxT(t), os)
	gt.Check(t, err, "DeleteRecords")
	if r, ok := rs.Lookup("fg-delrec", 0); !ok || r.Err != nil || r.LowWatermark != 12 {
		gt.Fatalf(t, "DeleteRecords: %+v", r)
	}
	lo, err := adm.ListStartOffsets(ctxT(t), "fg-delrec")
	gt.Check(t, err, "ListStartOffsets")
	if o, _ := lo.Lookup("fg-delrec", 0); o.Offset != 12 {
		gt.Fatalf(t, "start offset %d, want 12", o.Offset)
	}
	got := consume(t, assignClient(t, b, "fg-delrec", 1), map[int32]int{0: 8})
	if got[0][0].Offset != 12 || !bytes.Equal(got[0][0].Value, recs[12].Value) {
		gt.Fatalf(t, "first record after delete: %d %q", got[0][0].Offset, got[0][0].Value)
	}
}

func TestAdminLogDirs(t *testing.T) {
	gt.Feature(t, "admin_log_dirs")
	b := gt.Start(t)
	createTopic(t, b, "fg-logdirs", 2, nil)
	produceAll(t, newClient(t, b), makeRecords(50, 1, "fg-logdirs", "ld", time.Now().Truncate(time.Millisecond)))
	all, err := adminFor(t, b).DescribeAllLogDirs(ctxT(t), nil)
	gt.Check(t, err, "DescribeAllLogDirs")
	dirs := all[1]
	if len(dirs) != 1 {
		gt.Fatalf(t, "broker 1 log dirs: %v", dirs)
	}
	p0, ok0 := dirs.LookupPartition("fg-logdirs", 0)
	p1, ok1 := dirs.LookupPartition("fg-logdirs", 1)
	if !ok0 || !ok1 || p0.Size <= 0 || p1.Size != 0 || !strings.Contains(p0.Dir, b.Dir) {
		gt.Fatalf(t, "partitions: %+v %+v", p0, p1)
	}
}

func TestAdminTransactions(t *testing.T) {
	gt.Feature(t, "admin_transactions")
	b := gt.Start(t)
	createTopic(t, b, "fg-txa", 1, nil)
	p := newClient(t, b, kgo.TransactionalID("fg-txa-id"))
	gt.Check(t, p.BeginTransaction(), "BeginTransaction")
	produceAll(t, p, makeRecords(3, 1, "fg-txa", "ta", time.Now().Truncate(time.Millisecond)))
	adm := adminFor(t, b)
	ctx := ctxT(t)
	lt, err := adm.ListTransactions(ctx, nil, nil)
	gt.Check(t, err, "ListTransactions")
	l, ok := lt["fg-txa-id"]
	if !ok || l.State != "Ongoing" {
		gt.Fatalf(t, "ListTransactions: %+v", lt)
	}
	dt, err := adm.DescribeTransactions(ctx, "fg-txa-id")
	gt.Check(t, err, "DescribeTransactions")
	d := dt["fg-txa-id"]
	if d.Err != nil || d.State != "Ongoing" || d.ProducerID != l.ProducerID || !d.Topics.Lookup("fg-txa", 0) {
		gt.Errorf(t, "DescribeTransactions: %+v", d)
	}
	dp, err := adm.DescribeProducers(ctx, kadm.TopicsSet{"fg-txa": {0: {}}})
	gt.Check(t, err, "DescribeProducers")
	ps := dp["fg-txa"].Partitions[0].ActiveProducers.Sorted()
	if len(ps) != 1 || ps[0].ProducerID != l.ProducerID || ps[0].CurrentTxnStartOffset != 0 {
		gt.Errorf(t, "DescribeProducers: %+v, want producer %d with a txn from offset 0", ps, l.ProducerID)
	}
	gt.Check(t, p.Flush(ctx), "Flush")
	gt.Check(t, p.EndTransaction(ctx, kgo.TryCommit), "EndTransaction")
	gt.Eventually(t, "CompleteCommit", 10*time.Second, func() error {
		dt, err := adm.DescribeTransactions(ctx, "fg-txa-id")
		if err != nil {
			return err
		}
		if s := dt["fg-txa-id"].State; s != "CompleteCommit" {
			return fmt.Errorf("state %q", s)
		}
		return nil
	})
	lt, err = adm.ListTransactions(ctx, nil, []string{"Ongoing"})
	gt.Check(t, err, "ListTransactions Ongoing")
	if _, ok := lt["fg-txa-id"]; ok {
		gt.Errorf(t, "still listed as Ongoing after commit: %+v", lt)
	}
}

func TestAdminClusterFeatures(t *testing.T) {
	gt.Feature(t, "admin_features")
	b := gt.Start(t)
	cl := newClient(t, b)
	adm := kadm.NewClient(cl)
	ctx := ctxT(t)
	md, err := adm.BrokerMetadata(ctx)
	gt.Check(t, err, "BrokerMetadata")
	if md.Cluster == "" || md.Controller != 1 || len(md.Brokers) != 1 || md.Brokers[0].Port != int32(b.Port) {
		gt.Fatalf(t, "metadata: cluster %q controller %d brokers %+v", md.Cluster, md.Controller, md.Brokers)
	}
	dc := kmsg.NewPtrDescribeClusterRequest()
	resp, err := dc.RequestWith(ctx, cl)
	gt.Check(t, err, "DescribeCluster")
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil || resp.ClusterID != md.Cluster || len(resp.Brokers) != 1 || resp.ControllerID != 1 {
		gt.Fatalf(t, "DescribeCluster: err %v cluster %q controller %d brokers %d", err, resp.ClusterID, resp.ControllerID, len(resp.Brokers))
	}
	av, err := adm.ApiVersions(ctx)
	gt.Check(t, err, "ApiVersions")
	bav := av[1]
	raw := bav.Raw()
	if raw == nil {
		gt.Fatalf(t, "%s", "no ApiVersions from broker 1")
	}
	finalized := map[string]int16{}
	for _, f := range raw.FinalizedFeatures {
		finalized[f.Name] = f.MaxVersionLevel
	}
	supported := map[string]bool{}
	for _, f := range raw.SupportedFeatures {
		supported[f.Name] = true
	}
	if !supported["metadata.version"] || finalized["metadata.version"] <= 0 {
		gt.Errorf(t, "features: supported %v finalized %v, want metadata.version", supported, finalized)
	}
	if _, ok := bav.KeyMaxVersion(int16(kmsg.ConsumerGroupHeartbeat)); !ok {
		gt.Errorf(t, "%s", "ConsumerGroupHeartbeat not advertised")
	}
}
