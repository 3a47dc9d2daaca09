package gregor.compat;

import gregor.support.GregorBroker;

import static gregor.compat.Util.header;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.errors.RecordTooLargeException;
import org.apache.kafka.common.header.internals.RecordHeader;
import org.apache.kafka.common.record.TimestampType;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/** The producer: every codec, every acks level, idempotence, and the size limit. */
class ProducerTest {
    @RegisterExtension
    static final GregorBroker broker = GregorBroker.defaults();
    static Admin admin;

    @BeforeAll
    static void setUp() {
        admin = broker.admin();
    }

    @AfterAll
    static void tearDown() {
        admin.close();
    }

    /**
     * 300 records over 3 partitions with keys (some null), values (some null, one of 200 KB),
     * four headers (one with a null value, one key twice) and explicit timestamps; every one must come back in
     * order per partition, byte for byte, at the offset the producer was told.
     */
    private void roundTrip(String codec) throws Exception {
        String topic = Util.createTopic(admin, "codec-" + codec, 3);
        long base = System.currentTimeMillis() - 3_600_000L;
        List<ProducerRecord<String, String>> sent = new ArrayList<>();
        for (int i = 0; i < 300; i++) {
            String key = i % 10 == 9 ? null : "key-" + i;
            String value = i % 25 == 24 ? null : "value-" + i + "-" + codec + "-" + "abc".repeat(i % 40);
            if (i == 150) {
                value = "big-" + "0123456789".repeat(20_000);
            }
            ProducerRecord<String, String> r = new ProducerRecord<>(topic, i % 3, base + i, key, value,
                    List.of(new RecordHeader("seq", Util.utf8(Integer.toString(i))), new RecordHeader("nullh", (byte[]) null),
                            new RecordHeader("dup", Util.utf8("first")), new RecordHeader("dup", Util.utf8("second-" + i))));
            sent.add(r);
        }
        List<RecordMetadata> metas;
        try (KafkaProducer<String, String> p = new KafkaProducer<>(broker.producerProps(
                "compression.type", codec, "linger.ms", 20, "acks", "all"))) {
            metas = Util.sendAll(p, sent);
        }
        long[] next = new long[3];
        for (int i = 0; i < sent.size(); i++) {
            RecordMetadata m = metas.get(i);
            assertEquals(i % 3, m.partition());
            assertEquals(next[m.partition()]++, m.offset(), "offset of record " + i);
            assertEquals(base + i, m.timestamp(), "timestamp in metadata of record " + i);
        }
        List<ConsumerRecord<String, String>> got = Util.readAll(broker, topic, 3, 300);
        assertEquals(300, got.size(), "records read back");
        Map<Integer, List<ConsumerRecord<String, String>>> byP = Util.byPartition(got);
        Map<Integer, Integer> idx = new HashMap<>();
        for (int i = 0; i < sent.size(); i++) {
            ProducerRecord<String, String> s = sent.get(i);
            int n = idx.merge(s.partition(), 1, Integer::sum) - 1;
            ConsumerRecord<String, String> r = byP.get(s.partition()).get(n);
            assertEquals(metas.get(i).offset(), r.offset(), "offset of record " + i);
            assertEquals(s.key(), r.key(), "key of record " + i);
            assertEquals(s.value(), r.value(), "value of record " + i);
            assertEquals(s.timestamp().longValue(), r.timestamp(), "timestamp of record " + i);
            assertEquals(TimestampType.CREATE_TIME, r.timestampType());
            assertEquals(Integer.toString(i), header(r, "seq"));
            assertNull(header(r, "nullh"));
            assertEquals(4, r.headers().toArray().length, "headers of record " + i);
            List<String> dups = new ArrayList<>();
            r.headers().headers("dup").forEach(h -> dups.add(new String(h.value(), java.nio.charset.StandardCharsets.UTF_8)));
            assertEquals(List.of("first", "second-" + i), dups, "repeated header keys keep their order");
            assertEquals(List.of("seq", "nullh", "dup", "dup"),
                    java.util.Arrays.stream(r.headers().toArray()).map(h -> h.key()).toList());
        }
    }

    @Test
    @Feature("produce_none")
    void codecNone() throws Exception {
        roundTrip("none");
    }

    @Test
    @Feature("produce_gzip")
    void codecGzip() throws Exception {
        roundTrip("gzip");
    }

    @Test
    @Feature("produce_snappy")
    void codecSnappy() throws Exception {
        roundTrip("snappy");
    }

    @Test
    @Feature("produce_lz4")
    void codecLz4() throws Exception {
        roundTrip("lz4");
    }

    @Test
    @Feature("produce_zstd")
    void codecZstd() throws Exception {
        roundTrip("zstd");
    }

    /**
     * A topic with message.timestamp.type=LogAppendTime: the broker stamps each batch with its own
     * clock, the producer learns that time, and the consumer reads it with LOG_APPEND_TIME.
     */
    @Test
    @Feature("produce_none")
    void logAppendTime() throws Exception {
        String topic = Util.createTopic(admin, "lat", 1, Map.of("message.timestamp.type", "LogAppendTime"));
        long before = System.currentTimeMillis();
        List<ProducerRecord<String, String>> sent = new ArrayList<>();
        for (int i = 0; i < 20; i++) {
            sent.add(new ProducerRecord<>(topic, 0, 1_000_000L + i, "k" + i, "lat-" + i)); // ancient CreateTime
        }
        List<RecordMetadata> metas;
        try (KafkaProducer<String, String> p = new KafkaProducer<>(broker.producerProps("compression.type", "none"))) {
            metas = Util.sendAll(p, sent);
        }
        long after = System.currentTimeMillis();
        for (RecordMetadata m : metas) {
            assertTrue(m.timestamp() >= before - 1000 && m.timestamp() <= after + 1000, "broker time in metadata: " + m.timestamp());
        }
        List<ConsumerRecord<String, String>> got = Util.readAll(broker, topic, 1, 20);
        assertEquals(20, got.size());
        for (int i = 0; i < 20; i++) {
            ConsumerRecord<String, String> r = got.get(i);
            assertEquals("lat-" + i, r.value());
            assertEquals(TimestampType.LOG_APPEND_TIME, r.timestampType());
            assertTrue(r.timestamp() >= before - 1000 && r.timestamp() <= after + 1000, "timestamp " + r.timestamp());
            assertEquals(metas.get(i).timestamp(), r.timestamp());
        }
    }

    /**
     * A compacted topic refuses a record without a key (INVALID_RECORD, as Kafka does:
     * "Compacted topic cannot accept message without key"); keyed records and tombstones are fine.
     */
    @Test
    void keylessRecordOnCompactedTopic() throws Exception {
        String topic = Util.createTopic(admin, "compacted", 1, Map.of("cleanup.policy", "compact"));
        try (KafkaProducer<String, String> p = new KafkaProducer<>(broker.producerProps("linger.ms", 0))) {
            assertEquals(0L, p.send(new ProducerRecord<>(topic, 0, "k1", "v1")).get(30, TimeUnit.SECONDS).offset());
            ExecutionException e = assertThrows(ExecutionException.class,
                    () -> p.send(new ProducerRecord<>(topic, 0, null, "no-key")).get(30, TimeUnit.SECONDS));
            assertInstanceOf(org.apache.kafka.common.InvalidRecordException.class, e.getCause(), "cause: " + e.getCause());
            assertEquals(1L, p.send(new ProducerRecord<>(topic, 0, "k1", null)).get(30, TimeUnit.SECONDS).offset());
        }
        List<ConsumerRecord<String, String>> got = Util.readAll(broker, topic, 1, 2);
        assertEquals(2, got.size());
        assertEquals("v1", got.get(0).value());
        assertEquals("k1", got.get(1).key());
        assertNull(got.get(1).value());
    }

    /** Produces 200 keyed records with the given acks (idempotence off) and reads them back. */
    private void acks(String acks) throws Exception {
        String topic = Util.createTopic(admin, "acks-" + acks, 2);
        List<ProducerRecord<String, String>> sent = new ArrayList<>();
        for (int i = 0; i < 200; i++) {
            sent.add(new ProducerRecord<>(topic, i % 2, "k" + i, "acks-" + acks + "-" + i));
        }
        List<RecordMetadata> metas;
        try (KafkaProducer<String, String> p = new KafkaProducer<>(broker.producerProps(
                "acks", acks, "enable.idempotence", false, "max.in.flight.requests.per.connection", 1))) {
            metas = Util.sendAll(p, sent);
        }
        for (int i = 0; i < metas.size(); i++) {
            if (acks.equals("0")) {
                assertFalse(metas.get(i).hasOffset(), "acks=0 gets no offset back");
            } else {
                assertEquals(i / 2, metas.get(i).offset(), "offset of record " + i);
            }
        }
        List<ConsumerRecord<String, String>> got = Util.readAll(broker, topic, 2, 200);
        assertEquals(200, got.size());
        Map<Integer, List<ConsumerRecord<String, String>>> byP = Util.byPartition(got);
        for (int p = 0; p < 2; p++) {
            List<ConsumerRecord<String, String>> l = byP.get(p);
            for (int j = 0; j < 100; j++) {
                int i = j * 2 + p;
                assertEquals(j, l.get(j).offset());
                assertEquals("k" + i, l.get(j).key());
                assertEquals("acks-" + acks + "-" + i, l.get(j).value());
            }
        }
    }

    @Test
    @Feature("acks_0")
    void acks0() throws Exception {
        acks("0");
    }

    @Test
    @Feature("acks_1")
    void acks1() throws Exception {
        acks("1");
    }

    @Test
    @Feature("acks_all")
    void acksAll() throws Exception {
        acks("all");
    }

    /**
     * Idempotent producer, 5 requests in flight, tiny batches: 3000 records over 4 partitions come
     * back exactly once, in send order per partition, at consecutive offsets.
     */
    @Test
    @Feature("idempotent_produce")
    void idempotent() throws Exception {
        String topic = Util.createTopic(admin, "idem", 4);
        List<ProducerRecord<String, String>> sent = new ArrayList<>();
        for (int i = 0; i < 3000; i++) {
            sent.add(new ProducerRecord<>(topic, i % 4, "k" + i, "idem-" + i));
        }
        List<RecordMetadata> metas;
        try (KafkaProducer<String, String> p = new KafkaProducer<>(broker.producerProps(
                "enable.idempotence", true, "acks", "all", "max.in.flight.requests.per.connection", 5,
                "linger.ms", 0, "batch.size", 512, "compression.type", "lz4"))) {
            metas = Util.sendAll(p, sent);
        }
        for (int i = 0; i < metas.size(); i++) {
            assertEquals(i / 4, metas.get(i).offset(), "offset of record " + i);
        }
        List<ConsumerRecord<String, String>> got = Util.readAll(broker, topic, 4, 3000);
        assertEquals(3000, got.size());
        Util.assertNoDuplicates(got);
        Map<Integer, List<ConsumerRecord<String, String>>> byP = Util.byPartition(got);
        for (int p = 0; p < 4; p++) {
            List<ConsumerRecord<String, String>> l = byP.get(p);
            for (int j = 0; j < l.size(); j++) {
                assertEquals(j, l.get(j).offset());
                assertEquals("idem-" + (j * 4 + p), l.get(j).value());
            }
        }
    }

    /**
     * A 1.2 MB record (above the broker's message.max.bytes of 1048588; the producer's own
     * max.request.size raised so the broker is the one to refuse) fails with
     * RecordTooLargeException; the topic keeps working; a topic-level max.message.bytes is
     * enforced as well.
     */
    @Test
    @Feature("message_too_large")
    void recordTooLarge() throws Exception {
        String topic = Util.createTopic(admin, "too-large", 1);
        String small = Util.createTopic(admin, "too-large-topic-cfg", 1, Map.of("max.message.bytes", "2000"));
        try (KafkaProducer<String, String> p = new KafkaProducer<>(broker.producerProps(
                "max.request.size", 8 * 1024 * 1024, "compression.type", "none", "acks", "all"))) {
            assertEquals(0, p.send(new ProducerRecord<>(topic, "before", "ok-1")).get(30, TimeUnit.SECONDS).offset());
            String huge = "x".repeat(1_200_000);
            ExecutionException e = assertThrows(ExecutionException.class,
                    () -> p.send(new ProducerRecord<>(topic, "huge", huge)).get(30, TimeUnit.SECONDS));
            assertInstanceOf(RecordTooLargeException.class, e.getCause(), "cause: " + e.getCause());
            assertEquals(1, p.send(new ProducerRecord<>(topic, "after", "ok-2")).get(30, TimeUnit.SECONDS).offset(),
                    "the topic keeps working after the refused record");

            ExecutionException e2 = assertThrows(ExecutionException.class,
                    () -> p.send(new ProducerRecord<>(small, "k", "y".repeat(5000))).get(30, TimeUnit.SECONDS));
            assertInstanceOf(RecordTooLargeException.class, e2.getCause(), "cause: " + e2.getCause());
            assertEquals(0, p.send(new ProducerRecord<>(small, "k", "fits")).get(30, TimeUnit.SECONDS).offset());
        }
        List<ConsumerRecord<String, String>> got = Util.readAll(broker, topic, 1, 2);
        assertEquals(List.of("ok-1", "ok-2"), Util.values(got));
        assertEquals(List.of(0L, 1L), got.stream().map(ConsumerRecord::offset).toList());
        List<ConsumerRecord<String, String>> got2 = Util.readAll(broker, small, 1, 1);
        assertEquals(List.of("fits"), Util.values(got2));
        assertArrayEquals(new Object[] {"k"}, got2.stream().map(ConsumerRecord::key).toArray());
        assertTrue(got2.get(0).timestamp() > 0);
    }
}
