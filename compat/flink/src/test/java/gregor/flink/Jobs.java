package gregor.flink;

import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Locale;
import java.util.Optional;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;

import org.apache.flink.api.common.functions.OpenContext;
import org.apache.flink.api.common.functions.RichMapFunction;
import org.apache.flink.api.common.state.CheckpointListener;
import org.apache.flink.api.common.state.ValueState;
import org.apache.flink.api.common.state.ValueStateDescriptor;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.connector.kafka.lineage.DefaultKafkaDatasetFacet;
import org.apache.flink.connector.kafka.lineage.DefaultKafkaDatasetIdentifier;
import org.apache.flink.connector.kafka.lineage.KafkaDatasetFacet;
import org.apache.flink.connector.kafka.lineage.KafkaDatasetFacetProvider;
import org.apache.flink.connector.kafka.sink.KafkaRecordSerializationSchema;
import org.apache.flink.connector.kafka.source.reader.deserializer.KafkaRecordDeserializationSchema;
import org.apache.flink.streaming.api.functions.KeyedProcessFunction;
import org.apache.flink.util.Collector;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.header.internals.RecordHeaders;

/** The Flink job's pieces: Kafka (de)serialization with headers, the keyed count, the injected failure. */
final class Jobs {
    private Jobs() {
    }

    static String str(byte[] b) {
        return b == null ? null : new String(b, StandardCharsets.UTF_8);
    }

    static byte[] bytes(String s) {
        return s == null ? null : s.getBytes(StandardCharsets.UTF_8);
    }

    /** Kafka record -> Rec, keeping key, value, the seq/tag/bin headers, timestamp, partition and offset. */
    static final class RecDeserializer implements KafkaRecordDeserializationSchema<Rec> {
        @Override
        public void deserialize(ConsumerRecord<byte[], byte[]> r, Collector<Rec> out) {
            Rec x = new Rec();
            x.key = str(r.key());
            x.value = str(r.value());
            Header seq = r.headers().lastHeader("seq");
            x.seq = seq == null ? -1 : Long.parseLong(str(seq.value()));
            Header tag = r.headers().lastHeader("tag");
            x.tag = tag == null ? null : str(tag.value());
            Header bin = r.headers().lastHeader("bin");
            x.bin = bin == null ? null : bin.value();
            x.ts = r.timestamp();
            x.partition = r.partition();
            x.offset = r.offset();
            out.collect(x);
        }

        @Override
        public TypeInformation<Rec> getProducedType() {
            return TypeInformation.of(Rec.class);
        }
    }

    /** Rec -> Kafka record on {@code topic}: same key, the new value, the input's timestamp and headers plus "count". */
    static final class RecSerializer implements KafkaRecordSerializationSchema<Rec>, KafkaDatasetFacetProvider {
        private final String topic;

        RecSerializer(String topic) {
            this.topic = topic;
        }

        /** Names the target topic: the POOLING naming strategy lists open transactions on it (ListTransactions). */
        @Override
        public Optional<KafkaDatasetFacet> getKafkaDatasetFacet() {
            return Optional.of(new DefaultKafkaDatasetFacet(DefaultKafkaDatasetIdentifier.ofTopics(List.of(topic))));
        }

        @Override
        public ProducerRecord<byte[], byte[]> serialize(Rec r, KafkaSinkContext ctx, Long timestamp) {
            RecordHeaders h = new RecordHeaders();
            h.add("seq", bytes(Long.toString(r.seq)));
            if (r.tag != null) {
                h.add("tag", bytes(r.tag));
            }
            if (r.bin != null) {
                h.add("bin", r.bin);
            }
            h.add("count", bytes(Long.toString(r.count)));
            return new ProducerRecord<>(topic, null, r.ts, bytes(r.key), bytes(r.value), h);
        }
    }

    /** The transformation: value upper-cased, with the running count per key (keyed state) appended. */
    static final class UpperCount extends KeyedProcessFunction<String, Rec, Rec> {
        private transient ValueState<Long> count;

        @Override
        public void open(OpenContext ctx) {
            count = getRuntimeContext().getState(new ValueStateDescriptor<>("count", Long.class));
        }

        @Override
        public void processElement(Rec r, Context ctx, Collector<Rec> out) throws Exception {
            Long c = count.value();
            long n = c == null ? 1 : c + 1;
            count.update(n);
            Rec o = new Rec();
            o.key = r.key;
            o.value = r.value.toUpperCase(Locale.ROOT) + "|" + n;
            o.seq = r.seq;
            o.tag = r.tag;
            o.bin = r.bin;
            o.ts = r.ts;
            o.partition = r.partition;
            o.offset = r.offset;
            o.count = n;
            out.collect(o);
        }
    }

    /**
     * Passes records through, slowly, chained to the source (before the keyBy's network exchange), so that
     * checkpoint barriers are not queued behind thousands of buffered records and checkpoints complete mid-stream.
     */
    static final class Throttle extends RichMapFunction<Rec, Rec> {
        private final long sleepMicros;

        Throttle(long sleepMicros) {
            this.sleepMicros = sleepMicros;
        }

        @Override
        public Rec map(Rec r) throws Exception {
            long micros = sleepMicros;
            if (FailOnce.enabled) {
                if (FailOnce.FAILED.get()) {
                    micros = sleepMicros / 4; // failure done: the rest may go faster
                } else if (FailOnce.CHECKPOINTS_COMPLETED.get() == 0 && FailOnce.SEEN.get() > 200) {
                    // a slow machine: no checkpoint yet; slow down so that the input does not run out
                    // before one completes (the mailbox, and so checkpointing, runs between records)
                    micros = sleepMicros * 10;
                }
            }
            long until = System.nanoTime() + micros * 1000;
            while (System.nanoTime() < until) {
                Thread.sleep(0, 200_000);
            }
            return r;
        }
    }

    /**
     * Passes records through and throws exactly once in the whole JVM: on the first record after
     * {@code failAfter} records have gone through, once at least one checkpoint has completed and at least
     * 50 records have been written since the last completed one (so the open transaction holds data that
     * must be aborted). Before throwing it waits a little so that the sink's producer has sent those
     * records to the broker.
     */
    static final class FailOnce extends RichMapFunction<Rec, Rec> implements CheckpointListener {
        static final AtomicBoolean FAILED = new AtomicBoolean();
        static final AtomicLong CHECKPOINTS_COMPLETED = new AtomicLong();
        static final AtomicInteger MAX_ATTEMPT = new AtomicInteger();
        static final AtomicInteger SINCE_CHECKPOINT = new AtomicInteger();
        static final AtomicInteger SEEN = new AtomicInteger();
        static volatile boolean enabled;

        static void reset(boolean enable) {
            FAILED.set(false);
            CHECKPOINTS_COMPLETED.set(0);
            MAX_ATTEMPT.set(0);
            SINCE_CHECKPOINT.set(0);
            SEEN.set(0);
            enabled = enable;
        }

        private final int failAfter;

        FailOnce(int failAfter) {
            this.failAfter = failAfter;
        }

        @Override
        public void open(OpenContext ctx) {
            MAX_ATTEMPT.accumulateAndGet(getRuntimeContext().getTaskInfo().getAttemptNumber(), Math::max);
        }

        @Override
        public Rec map(Rec r) throws Exception {
            int seen = SEEN.incrementAndGet();
            int since = SINCE_CHECKPOINT.incrementAndGet();
            if (enabled && seen > failAfter && CHECKPOINTS_COMPLETED.get() >= 1 && since >= 50
                    && FAILED.compareAndSet(false, true)) {
                Thread.sleep(500);
                throw new RuntimeException("compat-flink: injected failure after " + seen + " records");
            }
            return r;
        }

        @Override
        public void notifyCheckpointComplete(long checkpointId) {
            CHECKPOINTS_COMPLETED.incrementAndGet();
            SINCE_CHECKPOINT.set(0);
        }
    }

    /** Adds every record to a list in this JVM, by run id (the MiniCluster runs in the test's JVM). */
    static final class Gather implements org.apache.flink.api.common.functions.MapFunction<Rec, Rec> {
        private static final java.util.Map<String, java.util.List<Rec>> RUNS = new java.util.concurrent.ConcurrentHashMap<>();
        private final String id;

        Gather(String id) {
            this.id = id;
        }

        static void start(String id) {
            RUNS.put(id, java.util.Collections.synchronizedList(new java.util.ArrayList<>()));
        }

        static java.util.List<Rec> take(String id) {
            java.util.List<Rec> l = RUNS.remove(id);
            synchronized (l) {
                return new java.util.ArrayList<>(l);
            }
        }

        @Override
        public Rec map(Rec r) {
            RUNS.get(id).add(r);
            return r;
        }
    }
}
