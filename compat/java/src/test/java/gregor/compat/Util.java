package gregor.compat;

import gregor.support.GregorBroker;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.UUID;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.Consumer;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.header.Header;

/** Small helpers shared by the test classes. */
final class Util {
    private Util() {
    }

    static String unique(String prefix) {
        return prefix + "-" + UUID.randomUUID().toString().substring(0, 8);
    }

    static String createTopic(Admin admin, String prefix, int partitions) throws Exception {
        return createTopic(admin, prefix, partitions, Map.of());
    }

    static String createTopic(Admin admin, String prefix, int partitions, Map<String, String> configs)
            throws Exception {
        String name = unique(prefix);
        admin.createTopics(List.of(new NewTopic(name, partitions, (short) 1).configs(configs)))
                .all().get(30, TimeUnit.SECONDS);
        return name;
    }

    static List<TopicPartition> partitions(String topic, int n) {
        List<TopicPartition> out = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            out.add(new TopicPartition(topic, i));
        }
        return out;
    }

    /** Sends every record, flushes, and returns the metadata in send order. */
    static List<RecordMetadata> sendAll(KafkaProducer<String, String> producer, List<ProducerRecord<String, String>> records)
            throws Exception {
        List<java.util.concurrent.Future<RecordMetadata>> futures = new ArrayList<>();
        for (ProducerRecord<String, String> r : records) {
            futures.add(producer.send(r));
        }
        producer.flush();
        List<RecordMetadata> out = new ArrayList<>();
        for (var f : futures) {
            out.add(f.get(30, TimeUnit.SECONDS));
        }
        return out;
    }

    /**
     * Reads the topic's partitions from the beginning with assign() until {@code expected} records
     * came back, then polls a little longer so an extra (duplicate) record would be seen too.
     */
    static List<ConsumerRecord<String, String>> readAll(GregorBroker broker, String topic, int partitions, int expected,
            Object... extra) {
        try (KafkaConsumer<String, String> c = new KafkaConsumer<>(broker.consumerProps(extra))) {
            List<TopicPartition> tps = partitions(topic, partitions);
            c.assign(tps);
            c.seekToBeginning(tps);
            return drain(c, expected, Duration.ofSeconds(30));
        }
    }

    static List<ConsumerRecord<String, String>> drain(Consumer<String, String> c, int expected, Duration timeout) {
        List<ConsumerRecord<String, String>> out = new ArrayList<>();
        long deadline = System.nanoTime() + timeout.toNanos();
        while (out.size() < expected && System.nanoTime() < deadline) {
            for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(200))) {
                out.add(r);
            }
        }
        // a short extra look: anything beyond `expected` is a duplicate or a stray record
        long extraUntil = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(300);
        while (System.nanoTime() < extraUntil) {
            for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(100))) {
                out.add(r);
            }
        }
        return out;
    }

    static Map<Integer, List<ConsumerRecord<String, String>>> byPartition(Collection<ConsumerRecord<String, String>> recs) {
        Map<Integer, List<ConsumerRecord<String, String>>> m = new TreeMap<>();
        for (ConsumerRecord<String, String> r : recs) {
            m.computeIfAbsent(r.partition(), k -> new ArrayList<>()).add(r);
        }
        return m;
    }

    static List<String> values(Collection<ConsumerRecord<String, String>> recs) {
        List<String> out = new ArrayList<>();
        for (ConsumerRecord<String, String> r : recs) {
            out.add(r.value());
        }
        return out;
    }

    static String header(ConsumerRecord<String, String> r, String key) {
        Header h = r.headers().lastHeader(key);
        assertNotNull(h, "header " + key + " missing on " + r);
        return h.value() == null ? null : new String(h.value(), StandardCharsets.UTF_8);
    }

    static byte[] utf8(String s) {
        return s.getBytes(StandardCharsets.UTF_8);
    }

    /** Polls every consumer in turn (one thread; each consumer is only ever used here) until done. */
    static void pollUntil(List<? extends Consumer<String, String>> consumers,
            Map<Consumer<String, String>, List<ConsumerRecord<String, String>>> sink,
            BooleanSupplier done, Duration timeout, String what) {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (!done.getAsBoolean()) {
            if (System.nanoTime() > deadline) {
                throw new AssertionError("timed out after " + timeout + " waiting for " + what);
            }
            for (Consumer<String, String> c : consumers) {
                ConsumerRecords<String, String> recs = c.poll(Duration.ofMillis(50));
                RebalanceLog.noteConsumed(c, recs);
                if (sink != null) {
                    List<ConsumerRecord<String, String>> l = sink.computeIfAbsent(c, k -> new ArrayList<>());
                    recs.forEach(l::add);
                }
            }
        }
    }

    /** Each (partition, offset) at most once; returns the count. */
    static void assertNoDuplicates(Collection<ConsumerRecord<String, String>> recs) {
        Set<String> seen = new HashSet<>();
        Map<String, Integer> dups = new HashMap<>();
        for (ConsumerRecord<String, String> r : recs) {
            String k = r.partition() + "@" + r.offset();
            if (!seen.add(k)) {
                dups.merge(k, 1, Integer::sum);
            }
        }
        assertEquals(Map.of(), dups, "records delivered more than once (partition@offset)");
    }
}
