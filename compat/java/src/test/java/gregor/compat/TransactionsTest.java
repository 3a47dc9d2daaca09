package gregor.compat;

import gregor.support.GregorBroker;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.DescribeProducersResult.PartitionProducerState;
import org.apache.kafka.clients.admin.ListTransactionsOptions;
import org.apache.kafka.clients.admin.ProducerState;
import org.apache.kafka.clients.admin.TransactionDescription;
import org.apache.kafka.clients.admin.TransactionListing;
import org.apache.kafka.clients.admin.TransactionState;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.KafkaException;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.ProducerFencedException;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/** Transactions: commit/abort under read_committed, fencing, consume-transform-produce, and the admin view. */
class TransactionsTest {
    @RegisterExtension
    // the coordinator looks for timed-out transactions every 500 ms (Kafka: 10 s)
    static final GregorBroker broker = GregorBroker.withSettings(
            "transaction.abort.timed.out.transaction.cleanup.interval.ms=500");
    static Admin admin;

    @BeforeAll
    static void setUp() {
        admin = broker.admin();
    }

    @AfterAll
    static void tearDown() {
        admin.close();
    }

    private static KafkaProducer<String, String> txProducer(String txId) {
        KafkaProducer<String, String> p = new KafkaProducer<>(broker.producerProps("transactional.id", txId,
                "enable.idempotence", true, "acks", "all", "transaction.timeout.ms", 60000));
        p.initTransactions();
        return p;
    }

    private static void send(KafkaProducer<String, String> p, String topic, int partitions, String tag, int n) throws Exception {
        for (int i = 0; i < n; i++) {
            p.send(new ProducerRecord<>(topic, i % partitions, "k-" + tag + "-" + i, tag + "-" + i)).get(30, TimeUnit.SECONDS);
        }
    }

    private static List<String> valuesOf(List<ConsumerRecord<String, String>> recs) {
        // order per partition, partition 0 first
        List<String> out = new ArrayList<>();
        Util.byPartition(recs).values().forEach(l -> l.forEach(r -> out.add(r.value())));
        return out;
    }

    /**
     * Committed transactions are read, aborted ones are skipped under read_committed (and seen
     * under read_uncommitted); an open transaction holds read_committed readers back at the LSO.
     */
    @Test
    @Feature("transactions")
    void commitVisibleAbortInvisible() throws Exception {
        String topic = Util.createTopic(admin, "txn", 2);
        List<TopicPartition> tps = Util.partitions(topic, 2);
        try (KafkaProducer<String, String> p = txProducer(Util.unique("tx-basic"))) {
            p.beginTransaction();
            send(p, topic, 2, "c1", 10);
            p.commitTransaction();
            p.beginTransaction();
            send(p, topic, 2, "a", 10);
            p.abortTransaction();
            p.beginTransaction();
            send(p, topic, 2, "c2", 10);
            p.commitTransaction();

            List<ConsumerRecord<String, String>> committed = Util.readAll(broker, topic, 2, 20, "isolation.level", "read_committed");
            List<String> expected = new ArrayList<>();
            for (int part = 0; part < 2; part++) {
                for (String tag : List.of("c1", "c2")) {
                    for (int i = part; i < 10; i += 2) {
                        expected.add(tag + "-" + i);
                    }
                }
            }
            assertEquals(expected, valuesOf(committed), "read_committed: both committed transactions, no aborted record");
            for (ConsumerRecord<String, String> r : committed) {
                assertEquals("k-" + r.value(), r.key());
            }
            List<ConsumerRecord<String, String>> uncommitted = Util.readAll(broker, topic, 2, 30, "isolation.level", "read_uncommitted");
            assertEquals(30, uncommitted.size(), "read_uncommitted sees the aborted records too");
            assertEquals(10, uncommitted.stream().filter(r -> r.value().startsWith("a-")).count());
            // each transaction ends with a control record: 5 data + 1 marker per partition per transaction
            try (KafkaConsumer<String, String> c = new KafkaConsumer<>(broker.consumerProps())) {
                assertEquals(Map.of(tps.get(0), 18L, tps.get(1), 18L), c.endOffsets(tps));
            }

            // an open transaction: read_committed stops at the last stable offset
            p.beginTransaction();
            send(p, topic, 2, "open", 4);
            p.flush();
            try (KafkaConsumer<String, String> rc = new KafkaConsumer<>(broker.consumerProps("isolation.level", "read_committed"));
                 KafkaConsumer<String, String> ru = new KafkaConsumer<>(broker.consumerProps("isolation.level", "read_uncommitted"))) {
                assertEquals(Map.of(tps.get(0), 18L, tps.get(1), 18L), rc.endOffsets(tps), "LSO before the open transaction");
                assertEquals(Map.of(tps.get(0), 20L, tps.get(1), 20L), ru.endOffsets(tps), "high watermark");
                // the admin's ListOffsets with READ_COMMITTED gives the LSO too
                var lso = admin.listOffsets(Map.of(tps.get(0), org.apache.kafka.clients.admin.OffsetSpec.latest()),
                        new org.apache.kafka.clients.admin.ListOffsetsOptions(org.apache.kafka.common.IsolationLevel.READ_COMMITTED))
                        .all().get(30, TimeUnit.SECONDS);
                assertEquals(18L, lso.get(tps.get(0)).offset());
                rc.assign(tps);
                rc.seekToBeginning(tps);
                assertEquals(20, Util.drain(rc, 20, Duration.ofSeconds(20)).size(), "nothing of the open transaction");
                p.commitTransaction();
                List<ConsumerRecord<String, String>> now = Util.drain(rc, 4, Duration.ofSeconds(20));
                assertEquals(List.of("open-0", "open-2", "open-1", "open-3"), valuesOf(now));
            }
        }
    }

    /** A second producer with the same transactional.id fences the first; its open transaction is aborted. */
    @Test
    @Feature("transactions")
    void zombieFencing() throws Exception {
        String topic = Util.createTopic(admin, "fence", 1);
        String txId = Util.unique("tx-fence");
        KafkaProducer<String, String> old = txProducer(txId);
        try {
            old.beginTransaction();
            send(old, topic, 1, "zombie", 3);
            try (KafkaProducer<String, String> fresh = txProducer(txId)) {
                // old's open transaction was aborted by fresh's initTransactions
                // as with Kafka: the old epoch's produce is refused (INVALID_PRODUCER_EPOCH or
                // PRODUCER_FENCED), and the old producer can no longer commit
                java.util.concurrent.ExecutionException e = assertThrows(java.util.concurrent.ExecutionException.class,
                        () -> old.send(new ProducerRecord<>(topic, 0, "k", "late")).get(30, TimeUnit.SECONDS));
                assertTrue(e.getCause() instanceof ProducerFencedException
                        || e.getCause() instanceof org.apache.kafka.common.errors.InvalidProducerEpochException,
                        "fenced: " + e.getCause());
                assertThrows(KafkaException.class, old::commitTransaction);
                fresh.beginTransaction();
                send(fresh, topic, 1, "fresh", 2);
                fresh.commitTransaction();
            }
        } finally {
            old.close(Duration.ofSeconds(5));
        }
        List<ConsumerRecord<String, String>> got = Util.readAll(broker, topic, 1, 2, "isolation.level", "read_committed");
        assertEquals(List.of("fresh-0", "fresh-1"), Util.values(got));
    }

    /**
     * A transaction left open past transaction.timeout.ms is aborted by the coordinator: its
     * records never become visible, read_committed readers move past them, and the producer
     * can no longer commit.
     */
    @Test
    @Feature("transactions")
    void timedOutTransactionIsAborted() throws Exception {
        String topic = Util.createTopic(admin, "txtimeout", 1);
        TopicPartition tp = new TopicPartition(topic, 0);
        String txId = Util.unique("tx-timeout");
        KafkaProducer<String, String> p = new KafkaProducer<>(broker.producerProps("transactional.id", txId,
                "enable.idempotence", true, "acks", "all", "transaction.timeout.ms", 2000));
        try {
            p.initTransactions();
            p.beginTransaction();
            send(p, topic, 1, "stale", 3);
            try (KafkaConsumer<String, String> rc = new KafkaConsumer<>(broker.consumerProps("isolation.level", "read_committed"))) {
                assertEquals(0L, rc.endOffsets(List.of(tp)).get(tp), "LSO held at the open transaction");
                long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
                long lso;
                do {
                    Thread.sleep(200);
                    lso = rc.endOffsets(List.of(tp)).get(tp);
                } while (lso == 0 && System.nanoTime() < deadline);
                assertEquals(4L, lso, "3 records + the abort marker written by the coordinator");
                rc.assign(List.of(tp));
                rc.seekToBeginning(List.of(tp));
                assertEquals(List.of(), Util.drain(rc, 0, Duration.ofSeconds(1)), "aborted records stay invisible");
            }
            TransactionDescription d = admin.describeTransactions(List.of(txId)).description(txId).get(30, TimeUnit.SECONDS);
            assertTrue(d.state() == TransactionState.COMPLETE_ABORT || d.state() == TransactionState.PREPARE_ABORT,
                    "state " + d.state());
            assertThrows(KafkaException.class, p::commitTransaction, "the producer was fenced by the timeout");
        } finally {
            p.close(Duration.ofSeconds(5));
        }
        // a fresh transaction on the same topic works
        try (KafkaProducer<String, String> p2 = txProducer(Util.unique("tx-after-timeout"))) {
            p2.beginTransaction();
            send(p2, topic, 1, "fresh", 2);
            p2.commitTransaction();
        }
        List<ConsumerRecord<String, String>> got = Util.readAll(broker, topic, 1, 2, "isolation.level", "read_committed");
        assertEquals(List.of("fresh-0", "fresh-1"), Util.values(got));
    }

    /**
     * Consume-transform-produce: each batch of input is turned into output and the group's offsets
     * are committed in the same transaction (sendOffsetsToTransaction with the consumer's group
     * metadata). One round is aborted: neither its output nor its offsets survive, and the batch is
     * processed again. In the end the output has each input record transformed exactly once, and
     * the group's committed offsets are at the end of the input.
     */
    @Test
    @Feature("transactions_offsets")
    void consumeTransformProduce() throws Exception {
        String in = Util.createTopic(admin, "ctp-in", 2);
        String out = Util.createTopic(admin, "ctp-out", 2);
        String group = Util.unique("ctp-g");
        try (KafkaProducer<String, String> p = new KafkaProducer<>(broker.producerProps("acks", "all"))) {
            List<ProducerRecord<String, String>> recs = new ArrayList<>();
            for (int i = 0; i < 100; i++) {
                recs.add(new ProducerRecord<>(in, i % 2, "k" + i, "in-" + i));
            }
            Util.sendAll(p, recs);
        }
        List<TopicPartition> inTps = Util.partitions(in, 2);
        int aborted = 0;
        int rounds = 0;
        try (KafkaProducer<String, String> p = txProducer(Util.unique("tx-ctp"));
             KafkaConsumer<String, String> c = new KafkaConsumer<>(broker.consumerProps("group.id", group,
                     "isolation.level", "read_committed", "max.poll.records", 15))) {
            c.subscribe(List.of(in));
            int processed = 0;
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
            while (processed < 100) {
                assertTrue(System.nanoTime() < deadline, "timed out; processed " + processed);
                ConsumerRecords<String, String> batch = c.poll(Duration.ofMillis(200));
                if (batch.isEmpty()) {
                    continue;
                }
                rounds++;
                p.beginTransaction();
                Map<TopicPartition, OffsetAndMetadata> offsets = new HashMap<>();
                for (ConsumerRecord<String, String> r : batch) {
                    p.send(new ProducerRecord<>(out, r.partition(), r.key(), r.value().replace("in-", "out-")));
                    offsets.put(new TopicPartition(r.topic(), r.partition()), new OffsetAndMetadata(r.offset() + 1));
                }
                p.sendOffsetsToTransaction(offsets, c.groupMetadata());
                if (rounds == 3) {
                    p.flush(); // the round's output reaches the log before the abort
                    p.abortTransaction();
                    aborted++;
                    // rewind to the committed offsets, as an application does after an abort
                    Map<TopicPartition, OffsetAndMetadata> committed = c.committed(Set.copyOf(c.assignment()));
                    for (TopicPartition tp : c.assignment()) {
                        OffsetAndMetadata om = committed.get(tp);
                        if (om != null) {
                            c.seek(tp, om.offset());
                        } else {
                            c.seekToBeginning(List.of(tp));
                        }
                    }
                    continue;
                }
                p.commitTransaction();
                processed += batch.count();
            }
        }
        assertEquals(1, aborted);
        List<ConsumerRecord<String, String>> output = Util.readAll(broker, out, 2, 100, "isolation.level", "read_committed");
        assertEquals(100, output.size(), "each input record transformed exactly once");
        Map<Integer, List<ConsumerRecord<String, String>>> byP = Util.byPartition(output);
        for (int part = 0; part < 2; part++) {
            List<ConsumerRecord<String, String>> l = byP.get(part);
            for (int j = 0; j < 50; j++) {
                int i = j * 2 + part;
                assertEquals("out-" + i, l.get(j).value());
                assertEquals("k" + i, l.get(j).key());
            }
        }
        Map<TopicPartition, OffsetAndMetadata> committed =
                admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata().get(30, TimeUnit.SECONDS);
        assertEquals(50L, committed.get(inTps.get(0)).offset());
        assertEquals(50L, committed.get(inTps.get(1)).offset());
        // the aborted output is in the log, invisible to read_committed
        List<ConsumerRecord<String, String>> raw = Util.readAll(broker, out, 2, 101, "isolation.level", "read_uncommitted");
        assertTrue(raw.size() > 100, "the aborted round's records are in the log: " + raw.size());
    }

    /** listTransactions / describeTransactions / describeProducers, during and after a transaction. */
    @Test
    @Feature("admin_transactions")
    void adminTransactions() throws Exception {
        String topic = Util.createTopic(admin, "txadmin", 2);
        String txId = Util.unique("tx-admin");
        TopicPartition p0 = new TopicPartition(topic, 0);
        TopicPartition p1 = new TopicPartition(topic, 1);
        try (KafkaProducer<String, String> plain = new KafkaProducer<>(broker.producerProps("acks", "all"))) {
            plain.send(new ProducerRecord<>(topic, 0, "k", "before-0")).get();
            plain.send(new ProducerRecord<>(topic, 0, "k", "before-1")).get();
        }
        long lastTimestamp;
        try (KafkaProducer<String, String> p = txProducer(txId)) {
            p.beginTransaction();
            p.send(new ProducerRecord<>(topic, 0, "k", "tx-0")).get(30, TimeUnit.SECONDS);
            p.send(new ProducerRecord<>(topic, 1, "k", "tx-1")).get(30, TimeUnit.SECONDS);

            Collection<TransactionListing> listed = admin.listTransactions().all().get(30, TimeUnit.SECONDS);
            TransactionListing mine = listed.stream().filter(l -> l.transactionalId().equals(txId)).findFirst()
                    .orElseThrow(() -> new AssertionError("listTransactions lacks " + txId + ": " + listed));
            assertEquals(TransactionState.ONGOING, mine.state());
            long producerId = mine.producerId();
            // filtered by state and by producer id
            assertTrue(admin.listTransactions(new ListTransactionsOptions().filterStates(List.of(TransactionState.ONGOING)))
                    .all().get().stream().anyMatch(l -> l.transactionalId().equals(txId)));
            assertFalse(admin.listTransactions(new ListTransactionsOptions().filterStates(List.of(TransactionState.COMPLETE_ABORT)))
                    .all().get().stream().anyMatch(l -> l.transactionalId().equals(txId)));
            assertTrue(admin.listTransactions(new ListTransactionsOptions().filterProducerIds(Set.of(producerId)))
                    .all().get().stream().anyMatch(l -> l.transactionalId().equals(txId)));

            TransactionDescription d = admin.describeTransactions(List.of(txId)).description(txId).get(30, TimeUnit.SECONDS);
            assertEquals(TransactionState.ONGOING, d.state());
            assertEquals(producerId, d.producerId());
            assertTrue(d.producerEpoch() >= 0);
            assertEquals(60000, d.transactionTimeoutMs());
            assertEquals(1, d.coordinatorId());
            assertTrue(d.transactionStartTimeMs().isPresent());
            assertEquals(Set.of(p0, p1), d.topicPartitions());

            PartitionProducerState ps = admin.describeProducers(List.of(p0)).partitionResult(p0).get(30, TimeUnit.SECONDS);
            ProducerState st = ps.activeProducers().stream().filter(s -> s.producerId() == producerId).findFirst()
                    .orElseThrow(() -> new AssertionError("describeProducers lacks " + producerId + ": " + ps.activeProducers()));
            assertEquals(OptionalLongOf(2L), st.currentTransactionStartOffset(), "the transaction starts at offset 2 of p0");
            assertEquals(d.producerEpoch(), st.producerEpoch());
            assertEquals(0, st.lastSequence());
            lastTimestamp = st.lastTimestamp();

            p.commitTransaction();
            TransactionDescription after = admin.describeTransactions(List.of(txId)).description(txId).get(30, TimeUnit.SECONDS);
            assertEquals(TransactionState.COMPLETE_COMMIT, after.state());
            assertEquals(Set.of(), after.topicPartitions());
            PartitionProducerState ps2 = admin.describeProducers(List.of(p0)).partitionResult(p0).get(30, TimeUnit.SECONDS);
            ProducerState st2 = ps2.activeProducers().stream().filter(s -> s.producerId() == producerId).findFirst().orElseThrow();
            assertFalse(st2.currentTransactionStartOffset().isPresent(), "no open transaction after the commit");
        }
        Optional<TransactionListing> gone = admin.listTransactions().all().get().stream()
                .filter(l -> l.transactionalId().equals(txId)).findFirst();
        assertEquals(TransactionState.COMPLETE_COMMIT, gone.orElseThrow().state());
        assertTrue(lastTimestamp > 0, "describeProducers lastTimestamp: " + lastTimestamp);
    }

    private static java.util.OptionalLong OptionalLongOf(long v) {
        return java.util.OptionalLong.of(v);
    }
}
