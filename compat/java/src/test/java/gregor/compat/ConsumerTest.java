package gregor.compat;

import gregor.support.GregorBroker;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.ConsumerGroupDescription;
import org.apache.kafka.clients.admin.MemberDescription;
import org.apache.kafka.clients.consumer.Consumer;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.CooperativeStickyAssignor;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.consumer.OffsetAndTimestamp;
import org.apache.kafka.clients.consumer.RangeAssignor;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/** The consumer: assign/seek, offsets by time, and the group flavours (classic, KIP-848, static, cooperative). */
class ConsumerTest {
    // KIP-848 members heartbeat every second instead of five, so assignments settle quickly.
    @RegisterExtension
    static final GregorBroker broker = GregorBroker.withSettings("group.consumer.heartbeat.interval.ms=1000");
    static Admin admin;

    @BeforeAll
    static void setUp() {
        admin = broker.admin();
    }

    @AfterAll
    static void tearDown() {
        admin.close();
    }

    /** n records per partition, value "<tag>-p<partition>-<i>", timestamps base + i seconds. */
    private static void produce(String topic, int partitions, int perPartition, String tag, long base) throws Exception {
        List<ProducerRecord<String, String>> recs = new ArrayList<>();
        for (int i = 0; i < perPartition; i++) {
            for (int p = 0; p < partitions; p++) {
                recs.add(new ProducerRecord<>(topic, p, base + i * 1000L, "k" + i, tag + "-p" + p + "-" + i));
            }
        }
        try (KafkaProducer<String, String> prod = new KafkaProducer<>(broker.producerProps("acks", "all"))) {
            Util.sendAll(prod, recs);
        }
    }

    private static Map<TopicPartition, Long> positions(Consumer<String, String> c, Set<TopicPartition> tps) {
        Map<TopicPartition, Long> m = new HashMap<>();
        for (TopicPartition tp : tps) {
            m.put(tp, c.position(tp));
        }
        return m;
    }

    @Test
    @Feature("consume_assign")
    void assignAndSeek() throws Exception {
        String topic = Util.createTopic(admin, "seek", 2);
        produce(topic, 2, 100, "s", System.currentTimeMillis());
        TopicPartition p0 = new TopicPartition(topic, 0);
        TopicPartition p1 = new TopicPartition(topic, 1);
        try (KafkaConsumer<String, String> c = new KafkaConsumer<>(broker.consumerProps())) {
            c.assign(List.of(p0, p1));
            assertEquals(Set.of(p0, p1), c.assignment());
            c.seek(p0, 40);
            c.seek(p1, 90);
            List<ConsumerRecord<String, String>> got = Util.drain(c, 70, Duration.ofSeconds(20));
            Map<Integer, List<ConsumerRecord<String, String>>> byP = Util.byPartition(got);
            assertEquals(60, byP.get(0).size());
            assertEquals(10, byP.get(1).size());
            for (int j = 0; j < 60; j++) {
                assertEquals(40 + j, byP.get(0).get(j).offset());
                assertEquals("s-p0-" + (40 + j), byP.get(0).get(j).value());
                assertEquals("k" + (40 + j), byP.get(0).get(j).key());
            }
            assertEquals("s-p1-90", byP.get(1).get(0).value());
            assertEquals(Map.of(p0, 100L, p1, 100L), positions(c, Set.of(p0, p1)));

            // seek back, to the beginning, to the end
            c.seek(p1, 3);
            c.pause(List.of(p0));
            List<ConsumerRecord<String, String>> again = Util.drain(c, 97, Duration.ofSeconds(20));
            assertEquals(97, again.size());
            assertEquals(3, again.get(0).offset());
            assertEquals("s-p1-3", again.get(0).value());
            assertTrue(again.stream().allMatch(r -> r.partition() == 1), "p0 is paused");
            c.resume(List.of(p0));
            c.seekToBeginning(List.of(p0));
            assertEquals(0L, c.position(p0));
            c.seekToEnd(List.of(p1));
            assertEquals(100L, c.position(p1));
            List<ConsumerRecord<String, String>> fromStart = Util.drain(c, 100, Duration.ofSeconds(20));
            assertEquals(100, fromStart.size());
            assertTrue(fromStart.stream().allMatch(r -> r.partition() == 0));
            assertEquals("s-p0-0", fromStart.get(0).value());
        }
    }

    @Test
    @Feature("list_offsets_by_time")
    void offsetsForTimesAndSeekByTime() throws Exception {
        String topic = Util.createTopic(admin, "bytime", 2);
        long base = 1_650_000_000_000L;
        produce(topic, 2, 50, "t", base);
        TopicPartition p0 = new TopicPartition(topic, 0);
        TopicPartition p1 = new TopicPartition(topic, 1);
        try (KafkaConsumer<String, String> c = new KafkaConsumer<>(broker.consumerProps())) {
            Map<TopicPartition, OffsetAndTimestamp> found = c.offsetsForTimes(Map.of(p0, base + 20_500, p1, base + 49_000));
            assertEquals(21L, found.get(p0).offset());
            assertEquals(base + 21_000, found.get(p0).timestamp());
            assertEquals(49L, found.get(p1).offset());
            assertEquals(base + 49_000, found.get(p1).timestamp());
            // nothing at or after this time: null
            assertNull(c.offsetsForTimes(Map.of(p0, base + 50_000)).get(p0));
            // before every record: the first one
            assertEquals(0L, c.offsetsForTimes(Map.of(p0, base - 1)).get(p0).offset());

            c.assign(List.of(p0));
            c.seek(p0, found.get(p0).offset());
            List<ConsumerRecord<String, String>> got = Util.drain(c, 29, Duration.ofSeconds(20));
            assertEquals(29, got.size());
            assertEquals("t-p0-21", got.get(0).value());
            assertEquals(base + 21_000, got.get(0).timestamp());
        }
    }

    @Test
    @Feature({"list_offsets_earliest", "list_offsets_latest"})
    void beginningAndEndOffsets() throws Exception {
        String topic = Util.createTopic(admin, "begin-end", 3);
        List<TopicPartition> tps = Util.partitions(topic, 3);
        try (KafkaConsumer<String, String> c = new KafkaConsumer<>(broker.consumerProps())) {
            assertEquals(Map.of(tps.get(0), 0L, tps.get(1), 0L, tps.get(2), 0L), c.endOffsets(tps));
            produce(topic, 3, 17, "e", System.currentTimeMillis());
            produce(topic, 1, 3, "e2", System.currentTimeMillis()); // partition 0 gets 3 more
            assertEquals(Map.of(tps.get(0), 20L, tps.get(1), 17L, tps.get(2), 17L), c.endOffsets(tps));
            assertEquals(Map.of(tps.get(0), 0L, tps.get(1), 0L, tps.get(2), 0L), c.beginningOffsets(tps));
            // after DeleteRecords the beginning moves
            admin.deleteRecords(Map.of(tps.get(1), org.apache.kafka.clients.admin.RecordsToDelete.beforeOffset(10)))
                    .all().get();
            assertEquals(10L, c.beginningOffsets(List.of(tps.get(1))).get(tps.get(1)));
            c.assign(List.of(tps.get(1)));
            c.seekToBeginning(List.of(tps.get(1)));
            assertEquals(10L, c.position(tps.get(1)));
            List<ConsumerRecord<String, String>> got = Util.drain(c, 7, Duration.ofSeconds(20));
            assertEquals(List.of("e-p1-10", "e-p1-11", "e-p1-12", "e-p1-13", "e-p1-14", "e-p1-15", "e-p1-16"),
                    Util.values(got));
        }
    }

    /**
     * Three classic-protocol members (range assignor) share 6 partitions; 600 records are consumed
     * exactly once; commitSync() offsets come back through committed() and a later member of the
     * same group resumes after them.
     */
    @Test
    @Feature({"consume_group", "commit_fetch_offsets"})
    void classicGroup() throws Exception {
        String topic = Util.createTopic(admin, "classic", 6);
        String group = Util.unique("classic-g");
        List<KafkaConsumer<String, String>> members = new ArrayList<>();
        List<RebalanceLog> logs = new ArrayList<>();
        Map<Consumer<String, String>, List<ConsumerRecord<String, String>>> got = new LinkedHashMap<>();
        try {
            for (int i = 0; i < 3; i++) {
                KafkaConsumer<String, String> c = new KafkaConsumer<>(broker.consumerProps("group.id", group,
                        "client.id", "classic-" + i, "group.protocol", "classic",
                        "partition.assignment.strategy", RangeAssignor.class.getName(),
                        "session.timeout.ms", 10000, "heartbeat.interval.ms", 500));
                RebalanceLog log = new RebalanceLog("m" + i).commitOnRevoke(c);
                c.subscribe(List.of(topic), log);
                members.add(c);
                logs.add(log);
            }
            Util.pollUntil(members, got, () -> logs.stream().allMatch(l -> l.owned.size() == 2),
                    Duration.ofSeconds(40), "3 members with 2 partitions each: " + logs);
            Set<TopicPartition> union = new HashSet<>();
            logs.forEach(l -> union.addAll(l.owned));
            assertEquals(new HashSet<>(Util.partitions(topic, 6)), union, "assignment covers every partition: " + logs);

            produce(topic, 6, 100, "g", System.currentTimeMillis());
            Util.pollUntil(members, got, () -> got.values().stream().mapToInt(List::size).sum() >= 600,
                    Duration.ofSeconds(40), "600 records");
            Util.pollUntil(members, got, () -> true, Duration.ofSeconds(5), "one more round");
            List<ConsumerRecord<String, String>> all = new ArrayList<>();
            got.values().forEach(all::addAll);
            assertEquals(600, all.size(), "every record exactly once");
            Util.assertNoDuplicates(all);
            for (int i = 0; i < 3; i++) {
                for (ConsumerRecord<String, String> r : got.get(members.get(i))) {
                    assertTrue(logs.get(i).owned.contains(new TopicPartition(topic, r.partition())),
                            "member " + i + " got a record of a partition it does not own: " + r);
                    assertEquals("g-p" + r.partition() + "-" + r.offset(), r.value());
                }
            }
            for (int i = 0; i < 3; i++) {
                KafkaConsumer<String, String> c = members.get(i);
                c.commitSync();
                Map<TopicPartition, OffsetAndMetadata> committed = c.committed(logs.get(i).owned);
                for (TopicPartition tp : logs.get(i).owned) {
                    assertNotNull(committed.get(tp), tp.toString());
                    assertEquals(100L, committed.get(tp).offset(), tp.toString());
                }
            }
            // with metadata, through the explicit-offsets form
            TopicPartition p0 = new TopicPartition(topic, 0);
            KafkaConsumer<String, String> owner0 = members.get(logs.indexOf(
                    logs.stream().filter(l -> l.owned.contains(p0)).findFirst().orElseThrow()));
            owner0.commitSync(Map.of(p0, new OffsetAndMetadata(100L, "meta-p0")));
            assertEquals("meta-p0", owner0.committed(Set.of(p0)).get(p0).metadata());
        } finally {
            members.forEach(KafkaConsumer::close);
        }

        // a new member of the same group resumes after the committed offsets
        produce(topic, 6, 5, "late", System.currentTimeMillis());
        try (KafkaConsumer<String, String> c = new KafkaConsumer<>(broker.consumerProps("group.id", group))) {
            Map<TopicPartition, OffsetAndMetadata> committed = c.committed(new HashSet<>(Util.partitions(topic, 6)));
            for (TopicPartition tp : Util.partitions(topic, 6)) {
                assertEquals(100L, committed.get(tp).offset(), tp.toString());
            }
            c.subscribe(List.of(topic));
            List<ConsumerRecord<String, String>> late = Util.drain(c, 30, Duration.ofSeconds(30));
            assertEquals(30, late.size(), "only the records after the committed offsets");
            assertTrue(late.stream().allMatch(r -> r.value().startsWith("late-") && r.offset() >= 100), late.toString());
        }
    }

    /**
     * A record bigger than fetch.max.bytes and max.partition.fetch.bytes still comes back (Kafka
     * returns the first batch whole so the consumer can make progress, KIP-74).
     */
    @Test
    @Feature("consume_assign")
    void recordLargerThanFetchLimits() throws Exception {
        String topic = Util.createTopic(admin, "bigfetch", 1);
        String big = "B".repeat(900_000);
        try (KafkaProducer<String, String> p = new KafkaProducer<>(broker.producerProps("compression.type", "none",
                "max.request.size", 2_000_000))) {
            p.send(new ProducerRecord<>(topic, 0, "k0", "small-0")).get();
            p.send(new ProducerRecord<>(topic, 0, "k1", big)).get();
            p.send(new ProducerRecord<>(topic, 0, "k2", "small-2")).get();
        }
        List<ConsumerRecord<String, String>> got = Util.readAll(broker, topic, 1, 3,
                "fetch.max.bytes", 1024, "max.partition.fetch.bytes", 1024);
        assertEquals(3, got.size());
        assertEquals("small-0", got.get(0).value());
        assertEquals(big, got.get(1).value());
        assertEquals("k1", got.get(1).key());
        assertEquals("small-2", got.get(2).value());
    }

    /** subscribe(Pattern): a topic created later that matches is picked up (classic and KIP-848). */
    private void patternSubscription(String protocol) throws Exception {
        String prefix = Util.unique("pat-" + protocol);
        String first = prefix + "-a";
        admin.createTopics(List.of(new org.apache.kafka.clients.admin.NewTopic(first, 1, (short) 1))).all().get();
        Util.createTopic(admin, "other-" + protocol, 1); // must not match
        try (KafkaConsumer<String, String> c = new KafkaConsumer<>(broker.consumerProps("group.id", Util.unique("pat-g"),
                "group.protocol", protocol, "metadata.max.age.ms", 1000))) {
            RebalanceLog log = new RebalanceLog("pat");
            c.subscribe(java.util.regex.Pattern.compile(java.util.regex.Pattern.quote(prefix) + "-.*"), log);
            Map<Consumer<String, String>, List<ConsumerRecord<String, String>>> got = new HashMap<>();
            Util.pollUntil(List.of(c), got, () -> log.owned.size() == 1, Duration.ofSeconds(30), "first topic assigned: " + log);
            String second = prefix + "-b";
            admin.createTopics(List.of(new org.apache.kafka.clients.admin.NewTopic(second, 2, (short) 1))).all().get();
            Util.pollUntil(List.of(c), got, () -> log.owned.size() == 3, Duration.ofSeconds(40), "new matching topic assigned: " + log);
            assertEquals(Set.of(new TopicPartition(first, 0), new TopicPartition(second, 0), new TopicPartition(second, 1)),
                    log.owned);
            try (KafkaProducer<String, String> p = new KafkaProducer<>(broker.producerProps())) {
                p.send(new ProducerRecord<>(first, 0, "k", "to-a")).get();
                p.send(new ProducerRecord<>(second, 1, "k", "to-b")).get();
            }
            Util.pollUntil(List.of(c), got, () -> got.get(c).size() >= 2, Duration.ofSeconds(30), "2 records");
            assertEquals(Set.of("to-a", "to-b"), new HashSet<>(Util.values(got.get(c))));
        }
    }

    @Test
    @Feature("consume_group")
    void patternSubscriptionClassic() throws Exception {
        patternSubscription("classic");
    }

    @Test
    @Feature("consume_group_consumer_protocol")
    void patternSubscriptionConsumerProtocol() throws Exception {
        patternSubscription("consumer");
    }

    /**
     * Static membership in a KIP-848 group: a member with group.instance.id that leaves and comes
     * back within the session timeout gets the same partitions, and the other member keeps its own
     * throughout.
     */
    @Test
    @Feature({"static_membership", "consume_group_consumer_protocol"})
    void staticMembershipConsumerProtocol() throws Exception {
        String topic = Util.createTopic(admin, "static848", 4);
        String group = Util.unique("static848-g");
        Object[] common = {"group.id", group, "group.protocol", "consumer"};
        KafkaConsumer<String, String> a = new KafkaConsumer<>(broker.consumerProps(concat(common, "group.instance.id", "s-a")));
        KafkaConsumer<String, String> b = new KafkaConsumer<>(broker.consumerProps(concat(common, "group.instance.id", "s-b")));
        KafkaConsumer<String, String> b2 = null;
        boolean bOpen = true;
        RebalanceLog la = new RebalanceLog("a");
        RebalanceLog lb = new RebalanceLog("b");
        Map<Consumer<String, String>, List<ConsumerRecord<String, String>>> got = new HashMap<>();
        try {
            a.subscribe(List.of(topic), la);
            b.subscribe(List.of(topic), lb);
            Util.pollUntil(List.of(a, b), got, () -> la.owned.size() == 2 && lb.owned.size() == 2,
                    Duration.ofSeconds(40), "2 and 2: " + la + " " + lb);
            Set<TopicPartition> aOwned = Set.copyOf(la.owned);
            Set<TopicPartition> bOwned = Set.copyOf(lb.owned);
            int aRevoked = la.revokedCalls;
            try (Admin ad = broker.admin()) {
                ConsumerGroupDescription d = ad.describeConsumerGroups(List.of(group)).describedGroups().get(group).get();
                Set<String> instances = new HashSet<>();
                d.members().forEach(m -> instances.add(m.groupInstanceId().orElse("?")));
                assertEquals(Set.of("s-a", "s-b"), instances);
            }
            b.close(Duration.ofSeconds(5)); // a static member's leave keeps its partitions for it
            bOpen = false;
            long until = System.nanoTime() + 2_000_000_000L;
            while (System.nanoTime() < until) {
                a.poll(Duration.ofMillis(100));
            }
            b2 = new KafkaConsumer<>(broker.consumerProps(concat(common, "group.instance.id", "s-b")));
            RebalanceLog lb2 = new RebalanceLog("b2");
            b2.subscribe(List.of(topic), lb2);
            Util.pollUntil(List.of(a, b2), got, () -> lb2.owned.size() == 2, Duration.ofSeconds(40), "b2 assigned: " + lb2);
            assertEquals(bOwned, lb2.owned, "the returning static member gets its partitions back");
            assertEquals(aOwned, la.owned, "a keeps its partitions");
            assertEquals(aRevoked, la.revokedCalls, "nothing revoked from a: " + la);
        } finally {
            a.close(Duration.ofSeconds(5));
            if (bOpen) {
                b.close(Duration.ofSeconds(5));
            }
            if (b2 != null) {
                b2.close(Duration.ofSeconds(5));
            }
        }
    }

    /**
     * Fetching from an offset outside the log: with auto.offset.reset=none the consumer gets
     * OffsetOutOfRangeException naming the partition; with earliest/latest it resets.
     */
    @Test
    @Feature("consume_assign")
    void outOfRangeOffsets() throws Exception {
        String topic = Util.createTopic(admin, "oor", 1);
        produce(topic, 1, 10, "o", System.currentTimeMillis());
        TopicPartition tp = new TopicPartition(topic, 0);
        admin.deleteRecords(Map.of(tp, org.apache.kafka.clients.admin.RecordsToDelete.beforeOffset(4))).all().get();
        try (KafkaConsumer<String, String> c = new KafkaConsumer<>(broker.consumerProps("auto.offset.reset", "none"))) {
            c.assign(List.of(tp));
            c.seek(tp, 50);
            org.apache.kafka.clients.consumer.OffsetOutOfRangeException e = org.junit.jupiter.api.Assertions.assertThrows(
                    org.apache.kafka.clients.consumer.OffsetOutOfRangeException.class, () -> {
                        long end = System.nanoTime() + 20_000_000_000L;
                        while (System.nanoTime() < end) {
                            c.poll(Duration.ofMillis(200));
                        }
                    });
            assertEquals(Map.of(tp, 50L), e.offsetOutOfRangePartitions());
            c.seek(tp, 1); // below the log start offset (4)
            e = org.junit.jupiter.api.Assertions.assertThrows(org.apache.kafka.clients.consumer.OffsetOutOfRangeException.class, () -> {
                long end = System.nanoTime() + 20_000_000_000L;
                while (System.nanoTime() < end) {
                    c.poll(Duration.ofMillis(200));
                }
            });
            assertEquals(Map.of(tp, 1L), e.offsetOutOfRangePartitions());
        }
        try (KafkaConsumer<String, String> c = new KafkaConsumer<>(broker.consumerProps("auto.offset.reset", "earliest"))) {
            c.assign(List.of(tp));
            c.seek(tp, 1);
            List<ConsumerRecord<String, String>> got = Util.drain(c, 6, Duration.ofSeconds(20));
            assertEquals(6, got.size());
            assertEquals(4L, got.get(0).offset(), "reset to the log start offset");
            assertEquals("o-p0-4", got.get(0).value());
        }
        try (KafkaConsumer<String, String> c = new KafkaConsumer<>(broker.consumerProps("auto.offset.reset", "latest"))) {
            c.assign(List.of(tp));
            c.seek(tp, 99);
            assertEquals(List.of(), Util.drain(c, 0, Duration.ofSeconds(1)));
            assertEquals(10L, c.position(tp), "reset to the end");
        }
    }

    /**
     * A static member that does not come back within session.timeout.ms is removed by the
     * coordinator: the remaining member gets its partitions, and not before the timeout.
     */
    @Test
    @Feature("static_membership")
    void staticMemberExpires() throws Exception {
        String topic = Util.createTopic(admin, "static-exp", 4);
        String group = Util.unique("static-exp-g");
        Object[] common = {"group.id", group, "group.protocol", "classic", "session.timeout.ms", 6000,
                "heartbeat.interval.ms", 500, "partition.assignment.strategy", RangeAssignor.class.getName()};
        KafkaConsumer<String, String> a = new KafkaConsumer<>(broker.consumerProps(concat(common, "group.instance.id", "exp-a")));
        KafkaConsumer<String, String> b = new KafkaConsumer<>(broker.consumerProps(concat(common, "group.instance.id", "exp-b")));
        RebalanceLog la = new RebalanceLog("a");
        RebalanceLog lb = new RebalanceLog("b");
        boolean bOpen = true;
        try {
            a.subscribe(List.of(topic), la);
            Util.pollUntil(List.of(a), null, () -> la.owned.size() == 4, Duration.ofSeconds(30), "a owns all: " + la);
            b.subscribe(List.of(topic), lb);
            Util.pollUntil(List.of(a, b), null, () -> la.owned.size() == 2 && lb.owned.size() == 2,
                    Duration.ofSeconds(30), "2 and 2: " + la + " " + lb);
            b.close(); // static: no LeaveGroup, the coordinator waits for the session to expire
            bOpen = false;
            long closedAt = System.nanoTime();
            Util.pollUntil(List.of(a), null, () -> la.owned.size() == 4, Duration.ofSeconds(30), "a gets b's partitions: " + la);
            long tookMs = (System.nanoTime() - closedAt) / 1_000_000;
            assertTrue(tookMs >= 4000, "reassigned after " + tookMs + " ms: before the 6 s session timeout ran out");
            assertEquals(new HashSet<>(Util.partitions(topic, 4)), la.owned);
        } finally {
            a.close(Duration.ofSeconds(5));
            if (bOpen) {
                b.close(Duration.ofSeconds(5));
            }
        }
    }

    /** enable.auto.commit: the consumer commits what it consumed on its own, and on close. */
    @Test
    @Feature("commit_fetch_offsets")
    void autoCommit() throws Exception {
        String topic = Util.createTopic(admin, "autocommit", 2);
        String group = Util.unique("auto-g");
        produce(topic, 2, 25, "a", System.currentTimeMillis());
        try (KafkaConsumer<String, String> c = new KafkaConsumer<>(broker.consumerProps("group.id", group,
                "enable.auto.commit", true, "auto.commit.interval.ms", 200))) {
            c.subscribe(List.of(topic));
            assertEquals(50, Util.drain(c, 50, Duration.ofSeconds(30)).size());
            long deadline = System.nanoTime() + 15_000_000_000L;
            Map<TopicPartition, OffsetAndMetadata> committed;
            do {
                c.poll(Duration.ofMillis(100));
                committed = c.committed(new HashSet<>(Util.partitions(topic, 2)));
            } while ((committed.get(new TopicPartition(topic, 0)) == null || committed.get(new TopicPartition(topic, 1)) == null
                    || committed.values().stream().anyMatch(o -> o.offset() < 25)) && System.nanoTime() < deadline);
            assertEquals(25L, committed.get(new TopicPartition(topic, 0)).offset());
            assertEquals(25L, committed.get(new TopicPartition(topic, 1)).offset());
        }
        Map<TopicPartition, OffsetAndMetadata> viaAdmin =
                admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata().get();
        assertEquals(25L, viaAdmin.get(new TopicPartition(topic, 0)).offset());
        assertEquals(25L, viaAdmin.get(new TopicPartition(topic, 1)).offset());
    }

    /** KIP-848: group.protocol=consumer members get partitions from the broker's assignor. */
    @Test
    @Feature({"consume_group_consumer_protocol", "commit_fetch_offsets"})
    void consumerProtocolGroup() throws Exception {
        String topic = Util.createTopic(admin, "kip848", 4);
        String group = Util.unique("kip848-g");
        List<KafkaConsumer<String, String>> members = new ArrayList<>();
        List<RebalanceLog> logs = new ArrayList<>();
        Map<Consumer<String, String>, List<ConsumerRecord<String, String>>> got = new LinkedHashMap<>();
        try {
            for (int i = 0; i < 2; i++) {
                KafkaConsumer<String, String> c = new KafkaConsumer<>(broker.consumerProps("group.id", group,
                        "client.id", "kip848-" + i, "group.protocol", "consumer"));
                RebalanceLog log = new RebalanceLog("m" + i).commitOnRevoke(c);
                c.subscribe(List.of(topic), log);
                members.add(c);
                logs.add(log);
            }
            Util.pollUntil(members, got, () -> logs.stream().allMatch(l -> l.owned.size() == 2),
                    Duration.ofSeconds(40), "2 members with 2 partitions each: " + logs);

            try (Admin a = broker.admin()) {
                ConsumerGroupDescription d = a.describeConsumerGroups(List.of(group)).describedGroups().get(group).get();
                assertEquals(2, d.members().size());
                Set<TopicPartition> described = new HashSet<>();
                for (MemberDescription m : d.members()) {
                    described.addAll(m.assignment().topicPartitions());
                }
                assertEquals(new HashSet<>(Util.partitions(topic, 4)), described);
                String type = AdminGroupsTest.typeOf(d);
                assertTrue(type == null || type.equals("CONSUMER"), "group type " + type);
                assertEquals(d.members().size(), new HashSet<>(d.members().stream().map(MemberDescription::consumerId).toList()).size());
            }

            produce(topic, 4, 100, "c", System.currentTimeMillis());
            Util.pollUntil(members, got, () -> got.values().stream().mapToInt(List::size).sum() >= 400,
                    Duration.ofSeconds(40), "400 records");
            Util.pollUntil(members, got, () -> true, Duration.ofSeconds(5), "one more round");
            List<ConsumerRecord<String, String>> all = new ArrayList<>();
            got.values().forEach(all::addAll);
            assertEquals(400, all.size(), "every record exactly once");
            Util.assertNoDuplicates(all);
            for (ConsumerRecord<String, String> r : all) {
                assertEquals("c-p" + r.partition() + "-" + r.offset(), r.value());
            }
            for (int i = 0; i < 2; i++) {
                members.get(i).commitSync();
                Map<TopicPartition, OffsetAndMetadata> committed = members.get(i).committed(logs.get(i).owned);
                for (TopicPartition tp : logs.get(i).owned) {
                    assertEquals(100L, committed.get(tp).offset(), tp.toString());
                }
            }
            // one member leaves: the other takes over its partitions, from the committed offsets
            members.get(1).close();
            List<KafkaConsumer<String, String>> rest = List.of(members.get(0));
            Util.pollUntil(rest, got, () -> logs.get(0).owned.size() == 4, Duration.ofSeconds(40),
                    "the remaining member owns all 4: " + logs.get(0));
            produce(topic, 4, 5, "after", System.currentTimeMillis());
            got.get(members.get(0)).clear();
            Util.pollUntil(rest, got, () -> got.get(members.get(0)).size() >= 20, Duration.ofSeconds(30), "20 more");
            Util.pollUntil(rest, got, () -> true, Duration.ofSeconds(5), "one more round");
            assertEquals(20, got.get(members.get(0)).size(), "nothing consumed twice after the takeover");
            assertTrue(got.get(members.get(0)).stream().allMatch(r -> r.value().startsWith("after-")));
        } finally {
            for (KafkaConsumer<String, String> c : members) {
                try {
                    c.close(Duration.ofSeconds(5));
                } catch (IllegalStateException alreadyClosed) {
                    // closed above
                }
            }
        }
    }

    /**
     * Static membership (group.instance.id): a member that restarts within its session timeout
     * gets its partitions back without a rebalance (the other member sees no callback and the
     * generation does not change) and resumes from its committed offsets.
     */
    @Test
    @Feature("static_membership")
    void staticMembership() throws Exception {
        String topic = Util.createTopic(admin, "static", 4);
        String group = Util.unique("static-g");
        Object[] common = {"group.id", group, "group.protocol", "classic", "session.timeout.ms", 15000,
                "heartbeat.interval.ms", 500, "partition.assignment.strategy", RangeAssignor.class.getName()};
        KafkaConsumer<String, String> a = new KafkaConsumer<>(broker.consumerProps(concat(common, "group.instance.id", "inst-a", "client.id", "static-a")));
        KafkaConsumer<String, String> b = new KafkaConsumer<>(broker.consumerProps(concat(common, "group.instance.id", "inst-b", "client.id", "static-b")));
        KafkaConsumer<String, String> b2 = null;
        boolean bOpen = true;
        RebalanceLog la = new RebalanceLog("a");
        RebalanceLog lb = new RebalanceLog("b");
        Map<Consumer<String, String>, List<ConsumerRecord<String, String>>> got = new HashMap<>();
        try {
            a.subscribe(List.of(topic), la);
            Util.pollUntil(List.of(a), got, () -> la.owned.size() == 4, Duration.ofSeconds(30), "a owns all: " + la);
            b.subscribe(List.of(topic), lb);
            Util.pollUntil(List.of(a, b), got, () -> la.owned.size() == 2 && lb.owned.size() == 2,
                    Duration.ofSeconds(30), "a and b own 2 each: " + la + " " + lb);
            produce(topic, 4, 10, "s1", System.currentTimeMillis());
            Util.pollUntil(List.of(a, b), got, () -> got.getOrDefault(a, List.of()).size() == 20
                    && got.getOrDefault(b, List.of()).size() == 20, Duration.ofSeconds(30), "20 records each");
            a.commitSync();
            b.commitSync();
            Set<TopicPartition> bOwned = Set.copyOf(lb.owned);
            int generation = a.groupMetadata().generationId();
            assertEquals(generation, b.groupMetadata().generationId());
            int aAssigned = la.assignedCalls;
            int aRevoked = la.revokedCalls;

            try (Admin ad = broker.admin()) {
                ConsumerGroupDescription d = ad.describeConsumerGroups(List.of(group)).describedGroups().get(group).get();
                Set<String> instances = new HashSet<>();
                d.members().forEach(m -> instances.add(m.groupInstanceId().orElse("?")));
                assertEquals(Set.of("inst-a", "inst-b"), instances);
            }

            b.close(); // a static member leaves no LeaveGroup behind
            bOpen = false;
            // keep a heartbeating for a moment, then restart b with the same instance id
            long pauseUntil = System.nanoTime() + 1_000_000_000L;
            while (System.nanoTime() < pauseUntil) {
                a.poll(Duration.ofMillis(100));
            }
            produce(topic, 4, 5, "s2", System.currentTimeMillis());
            b2 = new KafkaConsumer<>(broker.consumerProps(concat(common, "group.instance.id", "inst-b", "client.id", "static-b2")));
            RebalanceLog lb2 = new RebalanceLog("b2");
            b2.subscribe(List.of(topic), lb2);
            KafkaConsumer<String, String> nb = b2;
            Util.pollUntil(List.of(a, b2), got, () -> got.getOrDefault(nb, List.of()).size() >= 10
                    && got.getOrDefault(a, List.of()).size() >= 30, Duration.ofSeconds(30), "b2 and a get the new records");
            Util.pollUntil(List.of(a, b2), got, () -> true, Duration.ofSeconds(5), "one more round");

            assertEquals(bOwned, lb2.owned, "the restarted static member gets the same partitions");
            assertEquals(aAssigned, la.assignedCalls, "no rebalance for a: " + la);
            assertEquals(aRevoked, la.revokedCalls, "no rebalance for a: " + la);
            assertEquals(generation, a.groupMetadata().generationId(), "generation unchanged");
            assertEquals(generation, b2.groupMetadata().generationId(), "b2 joins the same generation");
            // b2 resumes after b's committed offsets: only the new records of its partitions
            List<ConsumerRecord<String, String>> b2got = got.get(b2);
            assertEquals(10, b2got.size(), b2got.toString());
            assertTrue(b2got.stream().allMatch(r -> r.value().startsWith("s2-")
                    && bOwned.contains(new TopicPartition(topic, r.partition()))), b2got.toString());
            assertEquals(30, got.get(a).size());
        } finally {
            a.close(Duration.ofSeconds(5));
            if (bOpen) {
                b.close(Duration.ofSeconds(5));
            }
            if (b2 != null) {
                b2.close(Duration.ofSeconds(5));
            }
        }
    }

    private static Object[] concat(Object[] a, Object... b) {
        Object[] out = new Object[a.length + b.length];
        System.arraycopy(a, 0, out, 0, a.length);
        System.arraycopy(b, 0, out, a.length, b.length);
        return out;
    }

    /**
     * Cooperative-sticky: when a second member joins, the first gives up only the partitions that
     * move (it keeps the rest throughout); when it leaves, the first gets them back without losing
     * any. Records are consumed exactly once across both rebalances.
     */
    @Test
    @Feature("cooperative_rebalance")
    void cooperativeSticky() throws Exception {
        String topic = Util.createTopic(admin, "coop", 6);
        String group = Util.unique("coop-g");
        Object[] common = {"group.id", group, "group.protocol", "classic",
                "partition.assignment.strategy", CooperativeStickyAssignor.class.getName(),
                "session.timeout.ms", 10000, "heartbeat.interval.ms", 500};
        KafkaConsumer<String, String> c1 = new KafkaConsumer<>(broker.consumerProps(concat(common, "client.id", "coop-1")));
        KafkaConsumer<String, String> c2 = new KafkaConsumer<>(broker.consumerProps(concat(common, "client.id", "coop-2")));
        RebalanceLog l1 = new RebalanceLog("c1").commitOnRevoke(c1);
        RebalanceLog l2 = new RebalanceLog("c2").commitOnRevoke(c2);
        Map<Consumer<String, String>, List<ConsumerRecord<String, String>>> got = new HashMap<>();
        boolean c2open = true;
        try {
            produce(topic, 6, 20, "r1", System.currentTimeMillis());
            c1.subscribe(List.of(topic), l1);
            Util.pollUntil(List.of(c1), got, () -> l1.owned.size() == 6 && got.getOrDefault(c1, List.of()).size() >= 120,
                    Duration.ofSeconds(30), "c1 owns all and read 120: " + l1);
            c1.commitSync();
            produce(topic, 6, 20, "r2", System.currentTimeMillis());

            c2.subscribe(List.of(topic), l2);
            Util.pollUntil(List.of(c1, c2), got, () -> l1.owned.size() == 3 && l2.owned.size() == 3,
                    Duration.ofSeconds(40), "3 and 3: " + l1 + " " + l2);
            assertEquals(1, l1.revokedCalls, "c1 revokes once, only what moves: " + l1);
            assertEquals(3, l1.everRevoked.size(), "c1 revokes only what moves: " + l1);
            assertEquals(0, l1.lostCalls);
            Set<TopicPartition> kept = new HashSet<>(l1.owned);
            assertTrue(kept.stream().noneMatch(l1.everRevoked::contains), "kept partitions were never revoked: " + l1);
            assertEquals(l1.everRevoked, l2.owned, "c2 gets exactly what c1 gave up");

            Util.pollUntil(List.of(c1, c2), got,
                    () -> got.values().stream().mapToInt(List::size).sum() >= 240, Duration.ofSeconds(30), "240 records");
            c1.commitSync();
            c2.commitSync();

            // c2 leaves: c1 gets its 3 back, loses nothing
            c2.close();
            c2open = false;
            int revokedBefore = l1.revokedCalls;
            produce(topic, 6, 10, "r3", System.currentTimeMillis());
            Util.pollUntil(List.of(c1), got, () -> l1.owned.size() == 6
                    && got.values().stream().mapToInt(List::size).sum() >= 300, Duration.ofSeconds(40), "c1 owns all 6 again: " + l1);
            Util.pollUntil(List.of(c1), got, () -> true, Duration.ofSeconds(5), "one more round");
            assertEquals(revokedBefore, l1.revokedCalls, "nothing revoked from c1 when c2 leaves: " + l1);
            assertEquals(0, l1.lostCalls);

            List<ConsumerRecord<String, String>> all = new ArrayList<>();
            got.values().forEach(all::addAll);
            Util.assertNoDuplicates(all);
            assertEquals(300, all.size(), "every record exactly once across both rebalances");
            Map<String, Integer> perTag = new HashMap<>();
            all.forEach(r -> perTag.merge(r.value().substring(0, 2), 1, Integer::sum));
            assertEquals(Map.of("r1", 120, "r2", 120, "r3", 60), perTag);
        } finally {
            c1.close(Duration.ofSeconds(5));
            if (c2open) {
                c2.close(Duration.ofSeconds(5));
            }
        }
    }
}
