package gregor.flink;

import gregor.support.GregorBroker;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.ByteBuffer;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.stream.Collectors;

import org.apache.flink.api.common.JobExecutionResult;
import org.apache.flink.api.common.eventtime.WatermarkStrategy;
import org.apache.flink.configuration.CheckpointingOptions;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.configuration.RestOptions;
import org.apache.flink.configuration.RestartStrategyOptions;
import org.apache.flink.configuration.StateRecoveryOptions;
import org.apache.flink.connector.base.DeliveryGuarantee;
import org.apache.flink.connector.kafka.sink.KafkaSink;
import org.apache.flink.connector.kafka.sink.TransactionNamingStrategy;
import org.apache.flink.connector.kafka.source.KafkaSource;
import org.apache.flink.connector.kafka.source.enumerator.initializer.OffsetsInitializer;
import org.apache.flink.connector.kafka.source.reader.deserializer.KafkaRecordDeserializationSchema;
import org.apache.flink.core.execution.CheckpointingMode;
import org.apache.flink.core.execution.JobClient;
import org.apache.flink.core.execution.SavepointFormatType;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.streaming.api.functions.sink.v2.DiscardingSink;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.header.internals.RecordHeaders;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestMethodOrder;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * The broker runs with 16 KiB segments (log.segment.bytes=16384): transactions, LSO, aborted-transaction
 * indexes and restarts span many segments. Input is produced lz4-compressed, the exactly-once sinks
 * write zstd.
 *
 * Apache Flink's Kafka connector (KafkaSource / KafkaSink) against a real gregor broker, in a Flink
 * MiniCluster inside this JVM. Input records (keys, values, headers, timestamps, several partitions)
 * are produced with the Kafka Java client; the job upper-cases the value and appends a running count
 * per key (keyed state); the KafkaSink writes EXACTLY_ONCE (transactions, checkpoint every second).
 * The output is checked with a read_committed consumer: every input record exactly once, counts per
 * key exact (1..n in order), headers, keys and timestamps carried over.
 */
@TestMethodOrder(MethodOrderer.MethodName.class)
class FlinkKafkaTest {
    @RegisterExtension
    static final GregorBroker broker = GregorBroker.withSettings("num.partitions=1", "log.segment.bytes=16384");

    static final int KEYS = 20;
    static final long BASE_TS = 1_700_000_000_000L;
    static final Duration JOB_TIMEOUT = Duration.ofSeconds(120);

    // ------------------------------------------------------------------ tests

    @Test
    @Check(name = "exactly_once_sink", label = "KafkaSource -> keyed count -> KafkaSink EXACTLY_ONCE (4 -> 3 partitions, lz4 in, "
            + "zstd out, checkpoint 1 s): read_committed output has every record once, per-key order and counts, keys/headers/timestamps kept")
    void test01ExactlyOnceSink() throws Exception {
        String in = "eo-in", out = "eo-out";
        createTopic(in, 4);
        createTopic(out, 3);
        Map<String, List<Rec>> input = produceInput(in, 3000);
        Jobs.FailOnce.reset(false);
        runJob(pipeline(in, out, "eo-sink", TransactionNamingStrategy.INCREMENTING, "flink-eo", 0, 0), "exactly-once");
        verifyExactlyOnce(input, out, 3000, false);
    }

    @Test
    @Check(name = "source_commits_offsets", label = "KafkaSource with a group.id commits its positions to the group on checkpoints "
            + "(OffsetCommit; ListConsumerGroupOffsets equals the input's end offsets); a later job starting from the committed offsets "
            + "(OffsetFetch) reads only the records produced since")
    void test02SourceCommitsOffsets() throws Exception {
        String in = "commit-in", out = "commit-out";
        createTopic(in, 4);
        createTopic(out, 2);
        Map<String, List<Rec>> input = produceInput(in, 800);
        Jobs.FailOnce.reset(false);
        // unbounded: the source commits on notifyCheckpointComplete, asynchronously; a bounded job may
        // finish (and close its consumers) before the final checkpoint's commit is sent, so wait for the
        // commits while the job runs, then cancel it
        JobClient job = pipeline(in, out, "commit-sink", TransactionNamingStrategy.INCREMENTING, "flink-commit", 0, 0, false, null)
                .executeAsync("compat-flink-commit-offsets");
        try (Admin admin = broker.admin()) {
            Map<TopicPartition, Long> want = new TreeMap<>(java.util.Comparator.comparing(TopicPartition::toString));
            want.putAll(endOffsets(admin, in, 4, OffsetSpec.latest()));
            Map<TopicPartition, Long> got = new TreeMap<>(java.util.Comparator.comparing(TopicPartition::toString));
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
            while (System.nanoTime() < deadline) {
                got.clear();
                admin.listConsumerGroupOffsets("flink-commit").partitionsToOffsetAndMetadata().get(30, TimeUnit.SECONDS)
                        .forEach((tp, om) -> got.put(tp, om == null ? null : om.offset()));
                if (got.equals(want)) {
                    break;
                }
                Thread.sleep(500);
            }
            assertEquals(want, got, "committed group offsets of flink-commit vs end offsets of " + in + " (60 s)");
            awaitCommitted(out, 800);
        } finally {
            job.cancel().get(30, TimeUnit.SECONDS);
            try {
                job.getJobExecutionResult().get(30, TimeUnit.SECONDS);
            } catch (Exception expected) {
                // cancelled
            }
        }
        verifyExactlyOnce(input, out, 800, false, 2);
        Map<String, List<Rec>> more = new LinkedHashMap<>();
        produceInput(in, 800, 1000, more);
        StreamExecutionEnvironment env = env();
        String id = "committed";
        Jobs.Gather.start(id);
        env.fromSource(KafkaSource.<Rec>builder()
                        .setBootstrapServers(broker.bootstrap())
                        .setTopics(in)
                        .setGroupId("flink-commit")
                        .setStartingOffsets(OffsetsInitializer.committedOffsets(org.apache.kafka.clients.consumer.OffsetResetStrategy.EARLIEST))
                        .setBounded(OffsetsInitializer.latest())
                        .setDeserializer(new Jobs.RecDeserializer())
                        .build(), WatermarkStrategy.noWatermarks(), "kafka-" + in)
                .map(new Jobs.Gather(id)).sinkTo(new DiscardingSink<>());
        runJob(env, "from-committed-offsets");
        List<Long> seqs = Jobs.Gather.take(id).stream().map(r -> r.seq).sorted().toList();
        assertEquals(java.util.stream.LongStream.range(800, 1000).boxed().toList(), seqs,
                "records read from the group's committed offsets: only those produced after the first job");
    }

    @Test
    @Check(name = "restart_exactly_once", label = "job fails mid-run after a checkpoint and restarts from it (fixed-delay): the open "
            + "transaction is aborted (InitProducerId fencing, PROBING), committed ones kept, output still exactly once")
    void test03RestartExactlyOnce() throws Exception {
        restartCase("rs", TransactionNamingStrategy.INCREMENTING);
    }

    @Test
    @Check(name = "restart_exactly_once_pooling", label = "same with TransactionNamingStrategy.POOLING: lingering transactions found "
            + "with DescribeProducers + ListTransactions and aborted, output still exactly once")
    void test04RestartExactlyOncePooling() throws Exception {
        restartCase("rp", TransactionNamingStrategy.POOLING);
    }

    @Test
    @Check(name = "read_committed_source", label = "KafkaSource (isolation.level=read_committed, bounded) on a topic with committed, "
            + "aborted and interleaved transactions: only committed and plain records, each once, in offset order")
    void test05ReadCommittedSource() throws Exception {
        String topic = "txn-src";
        createTopic(topic, 3);
        Map<String, Set<String>> byKind = produceTransactional(topic);
        List<Rec> got = collect(topic, "read_committed");
        Set<String> want = new HashSet<>(byKind.get("plain"));
        want.addAll(byKind.get("committed"));
        checkSourceResult(got, want, byKind.get("aborted"));
    }

    @Test
    @Check(name = "read_uncommitted_source", label = "the same topic with the KafkaSource's default isolation (read_uncommitted): "
            + "aborted records are seen too, control records are not")
    void test06ReadUncommittedSource() throws Exception {
        String topic = "txn-src-u";
        createTopic(topic, 3);
        Map<String, Set<String>> byKind = produceTransactional(topic);
        List<Rec> got = collect(topic, "read_uncommitted");
        Set<String> want = new HashSet<>(byKind.get("plain"));
        want.addAll(byKind.get("committed"));
        want.addAll(byKind.get("aborted"));
        checkSourceResult(got, want, Set.of());
    }

    @Test
    @Check(name = "savepoint_resume", label = "unbounded job stopped with a savepoint (stop-with-savepoint commits the open transactions), "
            + "more input produced, a new job resumes from the savepoint: output exactly once, counts continue from the restored state")
    void test07SavepointResume() throws Exception {
        String in = "sp-in", out = "sp-out";
        int n1 = 1200, n2 = 1200;
        createTopic(in, 4);
        createTopic(out, 3);
        Map<String, List<Rec>> input = new LinkedHashMap<>();
        produceInput(in, 0, n1, input);
        Jobs.FailOnce.reset(false);
        java.nio.file.Path dir = java.nio.file.Paths.get(System.getProperty("gregor.work.dir", "target")).getParent().resolve("savepoints");
        java.nio.file.Files.createDirectories(dir);

        JobClient first = pipeline(in, out, "sp-sink", TransactionNamingStrategy.INCREMENTING, "flink-sp", 0, 0, false, null)
                .executeAsync("compat-flink-savepoint-1");
        String savepoint;
        try {
            awaitCommitted(out, n1);
            savepoint = first.stopWithSavepoint(false, dir.toUri().toString(), SavepointFormatType.CANONICAL).get(60, TimeUnit.SECONDS);
            first.getJobExecutionResult().get(60, TimeUnit.SECONDS);
        } finally {
            cancelQuietly(first);
        }
        assertEquals(n1, readAll(out, "read_committed").size(), "committed records after stop-with-savepoint");

        produceInput(in, n1, n1 + n2, input);
        JobClient second = pipeline(in, out, "sp-sink", TransactionNamingStrategy.INCREMENTING, "flink-sp", 0, 0, false, savepoint)
                .executeAsync("compat-flink-savepoint-2");
        try {
            awaitCommitted(out, n1 + n2);
            Thread.sleep(2500); // two more checkpoints: anything replayed by mistake would be committed by now
        } finally {
            second.cancel().get(30, TimeUnit.SECONDS);
            try {
                second.getJobExecutionResult().get(30, TimeUnit.SECONDS);
            } catch (Exception expected) {
                // cancelled
            }
        }
        verifyExactlyOnce(input, out, n1 + n2, false);
    }

    @Test
    @Check(name = "default_txn_timeout_refused", label = "KafkaSink EXACTLY_ONCE left at the connector's default transaction.timeout.ms "
            + "(1 h) fails as on Kafka: InitProducerId answers INVALID_TRANSACTION_TIMEOUT (above transaction.max.timeout.ms, 15 min)")
    void test08DefaultTransactionTimeoutRefused() throws Exception {
        String in = "tt-in", out = "tt-out";
        createTopic(in, 1);
        createTopic(out, 1);
        produceInput(in, 20);
        StreamExecutionEnvironment env = env();
        env.fromSource(source(in, null, "read_committed"), WatermarkStrategy.noWatermarks(), "kafka-" + in)
                .sinkTo(KafkaSink.<Rec>builder()
                        .setBootstrapServers(broker.bootstrap())
                        .setRecordSerializer(new Jobs.RecSerializer(out))
                        .setDeliveryGuarantee(DeliveryGuarantee.EXACTLY_ONCE)
                        .setTransactionalIdPrefix("tt-sink")
                        .build());
        Throwable failure = null;
        try {
            runJob(env, "default-txn-timeout");
        } catch (java.util.concurrent.ExecutionException e) {
            failure = e;
        }
        assertTrue(failure != null, "the job with transaction.timeout.ms=3600000 succeeded; Kafka refuses it (max 900000)");
        boolean found = false;
        for (Throwable t = failure; t != null; t = t.getCause()) {
            // the Java client turns INVALID_TRANSACTION_TIMEOUT from InitProducerId into a fatal
            // KafkaException("Unexpected error in InitProducerIdResponse; <the error's message>")
            found |= t instanceof org.apache.kafka.common.errors.InvalidTxnTimeoutException
                    || String.valueOf(t.getMessage()).contains(org.apache.kafka.common.protocol.Errors.INVALID_TRANSACTION_TIMEOUT.message());
        }
        if (!found) {
            throw new AssertionError("the job failed, but not with INVALID_TRANSACTION_TIMEOUT", failure);
        }
        assertEquals(0, readAll(out, "read_uncommitted").size(), "nothing written to " + out);
    }

    @Test
    @Check(name = "lingering_txn_aborted", label = "transactions left open with data by a crashed earlier run (same transactionalIdPrefix) "
            + "are aborted by a fresh job's KafkaSink: by InitProducerId probing (INCREMENTING) and by ListTransactions (POOLING); LSO moves on")
    void test09LingeringTransactionsAborted() throws Exception {
        lingeringCase("li", TransactionNamingStrategy.INCREMENTING, List.of("li-sink-0-1", "li-sink-1-1"));
        lingeringCase("lp", TransactionNamingStrategy.POOLING, List.of("lp-sink-0-3", "lp-sink-1-5"));
    }

    private void lingeringCase(String name, TransactionNamingStrategy strategy, List<String> lingering) throws Exception {
        String in = name + "-in", out = name + "-out";
        createTopic(in, 2);
        createTopic(out, 3);
        Map<String, List<Rec>> input = produceInput(in, 600);
        // a "crashed" previous run: open transactions with data on every output partition, never ended
        List<KafkaProducer<String, String>> abandoned = new ArrayList<>();
        try {
            for (String txnId : lingering) {
                KafkaProducer<String, String> p = new KafkaProducer<>(broker.producerProps(
                        "transactional.id", txnId, "transaction.timeout.ms", 300000));
                abandoned.add(p);
                p.initTransactions();
                p.beginTransaction();
                for (int i = 0; i < 30; i++) {
                    p.send(new ProducerRecord<>(out, i % 3, "zz-lingering", txnId + "-" + i)).get(30, TimeUnit.SECONDS);
                }
            }
            try (Admin admin = broker.admin()) {
                var d = admin.describeTransactions(lingering).all().get(30, TimeUnit.SECONDS);
                d.forEach((id, desc) -> assertEquals(org.apache.kafka.clients.admin.TransactionState.ONGOING, desc.state(), id));
            }
            Jobs.FailOnce.reset(false);
            runJob(pipeline(in, out, name + "-sink", strategy, null, 0, 0), "lingering-" + name);
            try (Admin admin = broker.admin()) {
                var d = admin.describeTransactions(lingering).all().get(30, TimeUnit.SECONDS);
                // fenced (epoch bumped) and no longer open; INCREMENTING then reuses the id for its own transactions
                d.forEach((id, desc) -> assertTrue(desc.producerEpoch() > 0, id + " was not fenced (" + strategy + "): " + desc));
            }
            verifyExactlyOnce(input, out, 600, false);
        } finally {
            abandoned.forEach(p -> p.close(Duration.ZERO));
        }
    }

    @Test
    @Check(name = "partition_discovery", label = "unbounded KafkaSource (partition.discovery.interval.ms=1000) picks up partitions added "
            + "while it runs (CreatePartitions): records in the new partitions reach the exactly-once output")
    void test10PartitionDiscovery() throws Exception {
        String in = "pd-in", out = "pd-out";
        createTopic(in, 2);
        createTopic(out, 2);
        Map<String, List<Rec>> input = new LinkedHashMap<>();
        produceInput(in, 0, 300, input);
        StreamExecutionEnvironment env = env();
        KafkaSource<Rec> src = KafkaSource.<Rec>builder()
                .setBootstrapServers(broker.bootstrap())
                .setTopics(in)
                .setStartingOffsets(OffsetsInitializer.earliest())
                .setDeserializer(new Jobs.RecDeserializer())
                .setProperty("isolation.level", "read_committed")
                .setProperty("partition.discovery.interval.ms", "1000")
                .build();
        env.fromSource(src, WatermarkStrategy.noWatermarks(), "kafka-" + in)
                .keyBy(r -> r.key)
                .process(new Jobs.UpperCount())
                .sinkTo(KafkaSink.<Rec>builder()
                        .setBootstrapServers(broker.bootstrap())
                        .setRecordSerializer(new Jobs.RecSerializer(out))
                        .setDeliveryGuarantee(DeliveryGuarantee.EXACTLY_ONCE)
                        .setTransactionalIdPrefix("pd-sink")
                        .setProperty("transaction.timeout.ms", "120000")
                        .build());
        JobClient job = env.executeAsync("compat-flink-partition-discovery");
        try {
            awaitCommitted(out, 300);
            try (Admin admin = broker.admin()) {
                admin.createPartitions(Map.of(in, org.apache.kafka.clients.admin.NewPartitions.increaseTo(4)))
                        .all().get(30, TimeUnit.SECONDS);
            }
            // new records go to all 4 partitions (keys hash over 4 now), so some land in partitions 2 and 3
            produceInput(in, 300, 600, input);
            try (Admin admin = broker.admin()) {
                Map<TopicPartition, Long> ends = endOffsets(admin, in, 4, OffsetSpec.latest());
                assertTrue(ends.get(new TopicPartition(in, 2)) > 0 && ends.get(new TopicPartition(in, 3)) > 0,
                        "records in the new partitions: " + ends);
            }
            awaitCommitted(out, 600);
            Thread.sleep(1500);
        } finally {
            job.cancel().get(30, TimeUnit.SECONDS);
            try {
                job.getJobExecutionResult().get(30, TimeUnit.SECONDS);
            } catch (Exception expected) {
                // cancelled
            }
        }
        verifyExactlyOnce(input, out, 600, false, 2);
    }

    @Test
    @Check(name = "source_start_by_timestamp", label = "KafkaSource starting at OffsetsInitializer.timestamp(t) (ListOffsets by timestamp): "
            + "exactly the records with timestamp >= t, from every partition")
    void test11StartByTimestamp() throws Exception {
        String topic = "ts-in";
        createTopic(topic, 3);
        produceInput(topic, 400); // timestamps BASE_TS + seq
        StreamExecutionEnvironment env = env();
        String id = "ts";
        Jobs.Gather.start(id);
        env.fromSource(KafkaSource.<Rec>builder()
                        .setBootstrapServers(broker.bootstrap())
                        .setTopics(topic)
                        .setStartingOffsets(OffsetsInitializer.timestamp(BASE_TS + 250))
                        .setBounded(OffsetsInitializer.latest())
                        .setDeserializer(new Jobs.RecDeserializer())
                        .build(), WatermarkStrategy.noWatermarks(), "kafka-" + topic)
                .map(new Jobs.Gather(id)).sinkTo(new DiscardingSink<>());
        runJob(env, "start-by-timestamp");
        List<Long> seqs = Jobs.Gather.take(id).stream().map(r -> r.seq).sorted().toList();
        List<Long> want = java.util.stream.LongStream.range(250, 400).boxed().toList();
        assertEquals(want, seqs, "seq of the records read from timestamp BASE_TS+250");
    }

    @Test
    @Check(name = "source_topic_pattern", label = "KafkaSource subscribed by topic pattern (Metadata for all topics): every record of "
            + "the matching topics, none of the others")
    void test12TopicPattern() throws Exception {
        createTopic("pat-a", 2);
        createTopic("pat-b", 3);
        createTopic("nopat-c", 1);
        produceInput("pat-a", 100);
        produceInput("pat-b", 150);
        produceInput("nopat-c", 50);
        StreamExecutionEnvironment env = env();
        String id = "pattern";
        Jobs.Gather.start(id);
        env.fromSource(KafkaSource.<Rec>builder()
                        .setBootstrapServers(broker.bootstrap())
                        .setTopicPattern(java.util.regex.Pattern.compile("pat-.*"))
                        .setStartingOffsets(OffsetsInitializer.earliest())
                        .setBounded(OffsetsInitializer.latest())
                        .setDeserializer(new TopicTagging())
                        .build(), WatermarkStrategy.noWatermarks(), "kafka-pattern")
                .map(new Jobs.Gather(id)).sinkTo(new DiscardingSink<>());
        runJob(env, "topic-pattern");
        Map<String, Long> perTopic = new TreeMap<>();
        Set<String> seen = new HashSet<>();
        for (Rec r : Jobs.Gather.take(id)) {
            perTopic.merge(r.tag, 1L, Long::sum);
            assertTrue(seen.add(r.tag + "/" + r.seq), "duplicate " + r);
        }
        assertEquals(Map.of("pat-a", 100L, "pat-b", 150L), perTopic, "records per topic read through the pattern");
    }

    /** Like Jobs.RecDeserializer, with the record's topic in {@code tag}. */
    static final class TopicTagging implements KafkaRecordDeserializationSchema<Rec> {
        private final Jobs.RecDeserializer inner = new Jobs.RecDeserializer();

        @Override
        public void deserialize(ConsumerRecord<byte[], byte[]> r, org.apache.flink.util.Collector<Rec> out) {
            inner.deserialize(r, new org.apache.flink.util.Collector<>() {
                @Override
                public void collect(Rec x) {
                    x.tag = r.topic();
                    out.collect(x);
                }

                @Override
                public void close() {
                }
            });
        }

        @Override
        public org.apache.flink.api.common.typeinfo.TypeInformation<Rec> getProducedType() {
            return inner.getProducedType();
        }
    }

    @Test
    @Check(name = "at_least_once_sink", label = "KafkaSink AT_LEAST_ONCE (idempotent producer, flushed on checkpoints, no transactions): "
            + "every record, per-key order and counts, no transaction markers")
    void test13AtLeastOnceSink() throws Exception {
        String in = "al-in", out = "al-out";
        createTopic(in, 4);
        createTopic(out, 3);
        Map<String, List<Rec>> input = produceInput(in, 1000);
        StreamExecutionEnvironment env = env();
        env.fromSource(source(in, null, "read_committed"), WatermarkStrategy.noWatermarks(), "kafka-" + in)
                .keyBy(r -> r.key)
                .process(new Jobs.UpperCount())
                .sinkTo(KafkaSink.<Rec>builder()
                        .setBootstrapServers(broker.bootstrap())
                        .setRecordSerializer(new Jobs.RecSerializer(out))
                        .setDeliveryGuarantee(DeliveryGuarantee.AT_LEAST_ONCE)
                        .build());
        runJob(env, "at-least-once");
        List<ConsumerRecord<byte[], byte[]>> got = readAll(out, "read_uncommitted");
        try (Admin admin = broker.admin()) {
            long total = endOffsets(admin, out, 3, OffsetSpec.latest()).values().stream().mapToLong(Long::longValue).sum();
            assertEquals(1000, total, "end offsets of " + out + ": records only, no markers");
        }
        assertEquals(1000, got.size());
        verifyExactlyOnceRecords(input, got, out);
    }

    @Test
    @Check(name = "broker_restart_exactly_once", label = "the broker is SIGKILLed and restarted mid-run under an EXACTLY_ONCE job: producers "
            + "reconnect or Flink restarts from its checkpoint; open transactions survive or are aborted, output still exactly once")
    void test14BrokerRestartExactlyOnce() throws Exception {
        String in = "br-in", out = "br-out";
        int n = 4000;
        createTopic(in, 4);
        createTopic(out, 3);
        Map<String, List<Rec>> input = produceInput(in, n);
        Jobs.FailOnce.reset(false);
        restartAttempts = 20;
        JobClient job;
        try {
            job = pipeline(in, out, "br-sink", TransactionNamingStrategy.INCREMENTING, "flink-br", 0, 2000, true, null)
                    .executeAsync("compat-flink-broker-restart");
        } finally {
            restartAttempts = 2;
        }
        try {
            awaitCommitted(out, 600);
            assertEquals(org.apache.flink.api.common.JobStatus.RUNNING, job.getJobStatus().get(10, TimeUnit.SECONDS),
                    "the job is still running when the broker is killed");
            broker.restart(true);
            int afterRestart = readAll(out, "read_committed").size();
            assertTrue(afterRestart < n, "the kill came mid-run (" + afterRestart + " of " + n + " committed after the restart)");
            job.getJobExecutionResult().get(JOB_TIMEOUT.toSeconds(), TimeUnit.SECONDS);
        } finally {
            cancelQuietly(job);
        }
        verifyExactlyOnce(input, out, n, false);
    }

    private static void cancelQuietly(JobClient c) {
        try {
            if (!c.getJobStatus().get(10, TimeUnit.SECONDS).isGloballyTerminalState()) {
                c.cancel().get(30, TimeUnit.SECONDS);
            }
        } catch (Exception ignored) {
            // already gone
        }
    }

    /** Waits (60 s at most) until a read_committed consumer sees at least n records in topic. */
    private static void awaitCommitted(String topic, int n) throws Exception {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
        int seen = 0;
        while (System.nanoTime() < deadline) {
            seen = readAll(topic, "read_committed").size();
            if (seen >= n) {
                return;
            }
            Thread.sleep(500);
        }
        throw new AssertionError("only " + seen + " of " + n + " records committed in " + topic + " after 60 s");
    }

    // ------------------------------------------------------------------ the restart case

    private void restartCase(String name, TransactionNamingStrategy strategy) throws Exception {
        String in = name + "-in", out = name + "-out";
        int n = 3000;
        createTopic(in, 4);
        createTopic(out, 3);
        Map<String, List<Rec>> input = produceInput(in, n);
        Jobs.FailOnce.reset(true);
        // 2 ms per record in each of the 2 source subtasks: ~3 s of processing, so checkpoints complete mid-stream
        runJob(pipeline(in, out, name + "-sink", strategy, null, n / 3, 2000), name);
        assertTrue(Jobs.FailOnce.FAILED.get(), "the injected failure did not happen (checkpoints completed: "
                + Jobs.FailOnce.CHECKPOINTS_COMPLETED.get() + ", records seen: " + Jobs.FailOnce.SEEN.get() + ")");
        assertTrue(Jobs.FailOnce.MAX_ATTEMPT.get() >= 1, "the job was not restarted (max attempt " + Jobs.FailOnce.MAX_ATTEMPT.get() + ")");
        verifyExactlyOnce(input, out, n, true);
    }

    // ------------------------------------------------------------------ Flink plumbing

    /** Fixed-delay restart attempts for the next job (2 unless a test needs more). */
    private static int restartAttempts = 2;

    private static StreamExecutionEnvironment env() {
        return env(null);
    }

    private static StreamExecutionEnvironment env(String restoreFrom) {
        Configuration conf = new Configuration();
        if (restoreFrom != null) {
            conf.set(StateRecoveryOptions.SAVEPOINT_PATH, restoreFrom);
        }
        conf.set(RestartStrategyOptions.RESTART_STRATEGY, "fixed-delay");
        conf.set(RestartStrategyOptions.RESTART_STRATEGY_FIXED_DELAY_ATTEMPTS, restartAttempts);
        conf.set(RestartStrategyOptions.RESTART_STRATEGY_FIXED_DELAY_DELAY, Duration.ofMillis(restartAttempts > 2 ? 1000 : 500));
        conf.set(RestOptions.BIND_PORT, "0");
        conf.set(RestOptions.ADDRESS, "127.0.0.1");
        conf.set(CheckpointingOptions.CHECKPOINTING_INTERVAL, Duration.ofSeconds(1));
        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment(conf);
        env.setParallelism(2);
        env.enableCheckpointing(1000, CheckpointingMode.EXACTLY_ONCE);
        return env;
    }

    private static KafkaSource<Rec> source(String topic, String groupId, String isolation) {
        return source(topic, groupId, isolation, true);
    }

    private static KafkaSource<Rec> source(String topic, String groupId, String isolation, boolean bounded) {
        var b = KafkaSource.<Rec>builder()
                .setBootstrapServers(broker.bootstrap())
                .setTopics(topic)
                .setStartingOffsets(OffsetsInitializer.earliest())
                .setDeserializer(new Jobs.RecDeserializer())
                .setProperty("isolation.level", isolation)
                .setProperty("request.timeout.ms", "15000");
        if (groupId != null) {
            b.setGroupId(groupId);
        }
        if (bounded) {
            b.setBounded(OffsetsInitializer.latest());
        }
        return b.build();
    }

    /** in -> count per key -> (FailOnce) -> EXACTLY_ONCE KafkaSink on out. */
    private static StreamExecutionEnvironment pipeline(String in, String out, String txPrefix, TransactionNamingStrategy strategy,
                                                       String groupId, int failAfter, long sleepMicros) {
        return pipeline(in, out, txPrefix, strategy, groupId, failAfter, sleepMicros, true, null);
    }

    private static StreamExecutionEnvironment pipeline(String in, String out, String txPrefix, TransactionNamingStrategy strategy,
                                                       String groupId, int failAfter, long sleepMicros, boolean bounded,
                                                       String restoreFrom) {
        StreamExecutionEnvironment env = env(restoreFrom);
        DataStream<Rec> s = env.fromSource(source(in, groupId, "read_committed", bounded), WatermarkStrategy.noWatermarks(), "kafka-" + in)
                .uid("source");
        if (sleepMicros > 0) {
            s = s.map(new Jobs.Throttle(sleepMicros)).name("throttle").uid("throttle");
        }
        s = s.keyBy(r -> r.key)
                .process(new Jobs.UpperCount()).name("upper-count").uid("upper-count");
        if (failAfter > 0) {
            s = s.map(new Jobs.FailOnce(failAfter)).name("fail-once");
        }
        s.sinkTo(KafkaSink.<Rec>builder()
                .setBootstrapServers(broker.bootstrap())
                .setRecordSerializer(new Jobs.RecSerializer(out))
                .setDeliveryGuarantee(DeliveryGuarantee.EXACTLY_ONCE)
                .setTransactionalIdPrefix(txPrefix)
                .setTransactionNamingStrategy(strategy)
                // Kafka's default transaction.max.timeout.ms is 15 min; the connector's default (1 h) is above it
                .setProperty("transaction.timeout.ms", "120000")
                .setProperty("request.timeout.ms", "15000")
                .setProperty("compression.type", "zstd")
                .build()).name("kafka-" + out).uid("sink");
        return env;
    }

    private static JobExecutionResult runJob(StreamExecutionEnvironment env, String name) throws Exception {
        JobClient client = env.executeAsync("compat-flink-" + name);
        try {
            return client.getJobExecutionResult().get(JOB_TIMEOUT.toSeconds(), TimeUnit.SECONDS);
        } catch (TimeoutException e) {
            client.cancel().get(30, TimeUnit.SECONDS);
            throw new AssertionError("Flink job " + name + " did not finish within " + JOB_TIMEOUT, e);
        }
    }

    /**
     * Runs a bounded KafkaSource job on topic and returns what it read. The records are gathered in this
     * JVM (the MiniCluster runs in it) by a map into a static list, then discarded: no collect-sink
     * protocol in between.
     */
    private static List<Rec> collect(String topic, String isolation) throws Exception {
        StreamExecutionEnvironment env = env();
        String id = topic + "/" + isolation;
        Jobs.Gather.start(id);
        env.fromSource(source(topic, null, isolation), WatermarkStrategy.noWatermarks(), "kafka-" + topic)
                .map(new Jobs.Gather(id)).name("gather")
                .sinkTo(new DiscardingSink<>());
        runJob(env, "collect-" + topic);
        return Jobs.Gather.take(id);
    }

    // ------------------------------------------------------------------ Kafka side

    private static void createTopic(String name, int partitions) throws Exception {
        try (Admin admin = broker.admin()) {
            admin.createTopics(List.of(new NewTopic(name, partitions, (short) 1))).all().get(30, TimeUnit.SECONDS);
        }
    }

    static String keyOf(int k) {
        return String.format("k%02d", k);
    }

    static byte[] binOf(long seq) {
        return ByteBuffer.allocate(10).put((byte) 0).put((byte) 0xff).putLong(seq).array();
    }

    /** n keyed records with headers and explicit timestamps; returns them per key, in send order. */
    private static Map<String, List<Rec>> produceInput(String topic, int n) throws Exception {
        Map<String, List<Rec>> byKey = new LinkedHashMap<>();
        produceInput(topic, 0, n, byKey);
        return byKey;
    }

    /** Records from..to-1 (seq numbers), appended to byKey. */
    private static void produceInput(String topic, int from, int to, Map<String, List<Rec>> byKey) throws Exception {
        Properties p = broker.producerProps("enable.idempotence", "true", "acks", "all", "compression.type", "lz4");
        try (KafkaProducer<String, String> prod = new KafkaProducer<>(p)) {
            List<java.util.concurrent.Future<RecordMetadata>> fs = new ArrayList<>();
            for (int i = from; i < to; i++) {
                String key = keyOf((i * 7) % KEYS);
                List<Rec> l = byKey.computeIfAbsent(key, k -> new ArrayList<>());
                Rec r = new Rec();
                r.key = key;
                r.value = "v-" + key + "-" + l.size() + "-Ärger";
                r.seq = i;
                r.tag = "t" + (i % 7);
                r.bin = binOf(i);
                r.ts = BASE_TS + i;
                l.add(r);
                RecordHeaders h = new RecordHeaders();
                h.add("seq", Jobs.bytes(Long.toString(i)));
                h.add("tag", Jobs.bytes(r.tag));
                h.add("bin", r.bin);
                fs.add(prod.send(new ProducerRecord<>(topic, null, r.ts, key, r.value, h)));
            }
            for (var f : fs) {
                f.get(30, TimeUnit.SECONDS);
            }
        }
    }

    /**
     * plain (non-transactional) records, committed and aborted transactions, two transactional producers
     * interleaved, ending with an aborted transaction (the last entries of each partition are abort markers).
     * Returns the values by kind: "plain", "committed", "aborted".
     */
    private static Map<String, Set<String>> produceTransactional(String topic) throws Exception {
        Map<String, Set<String>> kinds = new HashMap<>();
        for (String k : List.of("plain", "committed", "aborted")) {
            kinds.put(k, new HashSet<>());
        }
        try (KafkaProducer<String, String> plain = new KafkaProducer<>(broker.producerProps("enable.idempotence", "true", "acks", "all"));
             KafkaProducer<String, String> t1 = new KafkaProducer<>(broker.producerProps("transactional.id", topic + "-t1"));
             KafkaProducer<String, String> t2 = new KafkaProducer<>(broker.producerProps("transactional.id", topic + "-t2"))) {
            t1.initTransactions();
            t2.initTransactions();
            sendAll(plain, topic, "plain-a", 30, kinds.get("plain"));
            plain.flush();
            t1.beginTransaction();
            sendAll(t1, topic, "c1", 40, kinds.get("committed"));
            t1.commitTransaction();
            t2.beginTransaction();
            sendAll(t2, topic, "a1", 40, kinds.get("aborted"));
            t2.flush();
            t2.abortTransaction();
            // interleaved: t2's aborted records sit between t1's committed ones
            t1.beginTransaction();
            t2.beginTransaction();
            for (int i = 0; i < 4; i++) {
                sendAll(t1, topic, "c2-" + i, 10, kinds.get("committed"));
                t1.flush();
                sendAll(t2, topic, "a2-" + i, 10, kinds.get("aborted"));
                t2.flush();
                sendAll(plain, topic, "plain-b" + i, 5, kinds.get("plain"));
                plain.flush();
            }
            t2.abortTransaction();
            t1.commitTransaction();
            t1.beginTransaction();
            sendAll(t1, topic, "c3", 40, kinds.get("committed"));
            t1.commitTransaction();
            // the log ends with an aborted transaction
            t2.beginTransaction();
            sendAll(t2, topic, "a3", 30, kinds.get("aborted"));
            t2.flush();
            t2.abortTransaction();
        }
        return kinds;
    }

    private static void sendAll(KafkaProducer<String, String> prod, String topic, String prefix, int n, Set<String> values)
            throws Exception {
        List<java.util.concurrent.Future<RecordMetadata>> fs = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            String v = prefix + "-" + i;
            values.add(v);
            RecordHeaders h = new RecordHeaders();
            h.add("tag", Jobs.bytes(prefix));
            fs.add(prod.send(new ProducerRecord<>(topic, null, BASE_TS + i, "key-" + (i % 9), v, h)));
        }
        prod.flush();
        for (var f : fs) {
            f.get(30, TimeUnit.SECONDS);
        }
    }

    private static void checkSourceResult(List<Rec> got, Set<String> want, Set<String> mustNotSee) {
        List<String> values = got.stream().map(r -> r.value).toList();
        Set<String> unique = new HashSet<>(values);
        assertEquals(values.size(), unique.size(), "duplicates in the KafkaSource's output: " + dupes(values));
        Set<String> forbidden = unique.stream().filter(mustNotSee::contains).collect(Collectors.toCollection(java.util.TreeSet::new));
        assertTrue(forbidden.isEmpty(), forbidden.size() + " aborted records were read: " + first(forbidden));
        Set<String> missing = new java.util.TreeSet<>(want);
        missing.removeAll(unique);
        Set<String> extra = new java.util.TreeSet<>(unique);
        extra.removeAll(want);
        assertTrue(missing.isEmpty(), missing.size() + " records missing: " + first(missing));
        assertTrue(extra.isEmpty(), extra.size() + " unexpected records: " + first(extra));
        // offset order per partition, headers and keys intact
        Map<Integer, Long> last = new HashMap<>();
        for (Rec r : got) {
            // records of one partition come from one split reader, in order
            Long prev = last.put(r.partition, r.offset);
            assertTrue(prev == null || prev < r.offset, "partition " + r.partition + ": offset " + r.offset + " after " + prev);
            String prefix = r.value.substring(0, r.value.lastIndexOf('-'));
            assertEquals(prefix, r.tag, "tag header of " + r);
            int i = Integer.parseInt(r.value.substring(r.value.lastIndexOf('-') + 1));
            assertEquals("key-" + (i % 9), r.key, "key of " + r);
            assertEquals(BASE_TS + i, r.ts, "timestamp of " + r);
        }
    }

    private static String first(Set<String> s) {
        return s.stream().limit(10).collect(Collectors.joining(", "));
    }

    private static String dupes(List<String> values) {
        Map<String, Integer> c = new TreeMap<>();
        values.forEach(v -> c.merge(v, 1, Integer::sum));
        return c.entrySet().stream().filter(e -> e.getValue() > 1).limit(10).map(Object::toString).collect(Collectors.joining(", "));
    }

    private static Map<TopicPartition, Long> endOffsets(Admin admin, String topic, int partitions, OffsetSpec spec) throws Exception {
        Map<TopicPartition, OffsetSpec> q = new HashMap<>();
        for (int p = 0; p < partitions; p++) {
            q.put(new TopicPartition(topic, p), spec);
        }
        Map<TopicPartition, Long> r = new HashMap<>();
        admin.listOffsets(q).all().get(30, TimeUnit.SECONDS).forEach((tp, info) -> r.put(tp, info.offset()));
        return r;
    }

    /** Every record of the topic up to the end offsets as the given isolation level sees them (LSO for read_committed). */
    static List<ConsumerRecord<byte[], byte[]>> readAll(String topic, String isolation) {
        return readAll(topic, isolation, broker);
    }

    static List<ConsumerRecord<byte[], byte[]>> readAll(String topic, String isolation, GregorBroker broker) {
        Properties p = broker.consumerProps("isolation.level", isolation,
                "key.deserializer", ByteArrayDeserializer.class.getName(),
                "value.deserializer", ByteArrayDeserializer.class.getName());
        List<ConsumerRecord<byte[], byte[]>> out = new ArrayList<>();
        try (KafkaConsumer<byte[], byte[]> c = new KafkaConsumer<>(p)) {
            List<TopicPartition> tps = c.partitionsFor(topic, Duration.ofSeconds(30)).stream()
                    .map(pi -> new TopicPartition(topic, pi.partition())).toList();
            c.assign(tps);
            c.seekToBeginning(tps);
            Map<TopicPartition, Long> end = c.endOffsets(tps, Duration.ofSeconds(30));
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
            while (tps.stream().anyMatch(tp -> c.position(tp) < end.get(tp))) {
                if (System.nanoTime() > deadline) {
                    throw new AssertionError(isolation + " consumer did not reach the end offsets " + end + " of " + topic
                            + " within 60 s (" + out.size() + " records)");
                }
                c.poll(Duration.ofMillis(500)).forEach(out::add);
            }
        }
        return out;
    }

    /**
     * The output topic, read_committed: every input record exactly once, per key in input order with the
     * count 1..n, value upper-cased, key, timestamp and headers carried over, count header; every
     * partition's last stable offset equals its high watermark (no transaction left open); transaction
     * markers present (end offsets beyond the record count). If {@code expectAborted}, a read_uncommitted
     * consumer must see more records than n (data of the aborted transaction(s) really reached the log).
     */
    private static void verifyExactlyOnce(Map<String, List<Rec>> input, String out, int n, boolean expectAborted) throws Exception {
        verifyExactlyOnce(input, out, n, expectAborted, 3);
    }

    private static void verifyExactlyOnce(Map<String, List<Rec>> input, String out, int n, boolean expectAborted, int outPartitions)
            throws Exception {
        List<ConsumerRecord<byte[], byte[]>> committed = readAll(out, "read_committed");
        verifyExactlyOnceRecords(input, committed, out);
        checkTransactional(out, n, expectAborted, outPartitions, committed);
    }

    /** Per key exactly the input's records, in order, counts 1..n, key/timestamp/headers carried over. */
    private static void verifyExactlyOnceRecords(Map<String, List<Rec>> input, List<ConsumerRecord<byte[], byte[]>> committed, String out) {
        Map<String, List<ConsumerRecord<byte[], byte[]>>> byKey = new TreeMap<>();
        for (var r : committed) {
            byKey.computeIfAbsent(Jobs.str(r.key()), k -> new ArrayList<>()).add(r);
        }
        Map<String, Integer> counts = new TreeMap<>();
        byKey.forEach((k, l) -> counts.put(k, l.size()));
        Map<String, Integer> wantCounts = new TreeMap<>();
        input.forEach((k, l) -> wantCounts.put(k, l.size()));
        assertEquals(wantCounts, counts, "records per key in " + out + " (" + committed.size() + " records)");
        for (var e : input.entrySet()) {
            List<Rec> want = e.getValue();
            List<ConsumerRecord<byte[], byte[]>> got = byKey.get(e.getKey());
            Integer part = null;
            for (int i = 0; i < want.size(); i++) {
                Rec w = want.get(i);
                ConsumerRecord<byte[], byte[]> g = got.get(i);
                String ctx = out + " key " + e.getKey() + " #" + i + " (p" + g.partition() + "@" + g.offset() + ")";
                assertEquals(w.value.toUpperCase(java.util.Locale.ROOT) + "|" + (i + 1), Jobs.str(g.value()), "value of " + ctx);
                assertEquals(w.ts, g.timestamp(), "timestamp of " + ctx);
                assertEquals(Long.toString(w.seq), header(g, "seq"), "seq header of " + ctx);
                assertEquals(w.tag, header(g, "tag"), "tag header of " + ctx);
                assertArrayEquals(w.bin, g.headers().lastHeader("bin").value(), "bin header of " + ctx);
                assertEquals(Integer.toString(i + 1), header(g, "count"), "count header of " + ctx);
                assertEquals(4, g.headers().toArray().length, "header count of " + ctx);
                if (part != null) {
                    assertEquals(part, g.partition(), "a key's records in one partition: " + ctx);
                }
                part = g.partition();
            }
        }
    }

    private static void checkTransactional(String out, int n, boolean expectAborted, int outPartitions,
                                           List<ConsumerRecord<byte[], byte[]>> committed) throws Exception {
        try (Admin admin = broker.admin()) {
            Map<TopicPartition, Long> hw = endOffsets(admin, out, outPartitions, OffsetSpec.latest());
            Map<TopicPartition, Long> lso = new HashMap<>();
            Properties p = broker.consumerProps("isolation.level", "read_committed");
            try (KafkaConsumer<String, String> c = new KafkaConsumer<>(p)) {
                lso.putAll(c.endOffsets(hw.keySet(), Duration.ofSeconds(30)));
            }
            assertEquals(new TreeMap<>(toStr(hw)), new TreeMap<>(toStr(lso)),
                    "high watermark vs last stable offset per partition of " + out + ": a transaction was left open");
            long total = hw.values().stream().mapToLong(Long::longValue).sum();
            assertTrue(total > n, out + " end offsets sum to " + total + ": no transaction markers for " + n + " records?");
            if (expectAborted) {
                List<ConsumerRecord<byte[], byte[]>> all = readAll(out, "read_uncommitted");
                assertTrue(all.size() > n, "read_uncommitted sees " + all.size() + " records in " + out
                        + ": the aborted attempt left no data, the restart case proved nothing");
                System.out.printf("compat-flink: %s: %d committed records, %d with read_uncommitted (aborted: %d), end offsets %d%n",
                        out, committed.size(), all.size(), all.size() - committed.size(), total);
            }
        }
    }

    private static Map<String, Long> toStr(Map<TopicPartition, Long> m) {
        Map<String, Long> r = new HashMap<>();
        m.forEach((k, v) -> r.put(k.toString(), v));
        return r;
    }

    private static String header(ConsumerRecord<byte[], byte[]> r, String name) {
        Header h = r.headers().lastHeader(name);
        return h == null ? null : Jobs.str(h.value());
    }
}
