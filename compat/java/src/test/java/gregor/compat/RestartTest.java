package gregor.compat;

import gregor.support.GregorBroker;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.TopicPartition;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/** The Java clients across a broker restart (same port, same data dir). */
class RestartTest {
    @RegisterExtension
    static final GregorBroker broker = GregorBroker.defaults();

    /**
     * An idempotent producer keeps sending while the broker is SIGKILLed and restarted: every
     * send succeeds and each record is in the log exactly once, in order per partition (batches
     * that were written but not acknowledged are retried with the same sequence numbers and
     * deduplicated by the restarted broker).
     */
    @Test
    @Feature("idempotent_produce")
    void idempotentProducerAcrossKill() throws Exception {
        String topic;
        try (Admin admin = broker.admin()) {
            topic = Util.createTopic(admin, "idem-restart", 2);
        }
        List<Future<RecordMetadata>> futures = new ArrayList<>();
        try (KafkaProducer<String, String> p = new KafkaProducer<>(broker.producerProps("enable.idempotence", true,
                "acks", "all", "linger.ms", 2, "batch.size", 2048, "delivery.timeout.ms", 90000,
                "request.timeout.ms", 5000, "retry.backoff.ms", 100, "reconnect.backoff.max.ms", 500))) {
            for (int i = 0; i < 1000; i++) {
                futures.add(p.send(new ProducerRecord<>(topic, i % 2, "k" + i, "r-" + i)));
            }
            broker.restart(true); // SIGKILL with requests in flight
            for (int i = 1000; i < 2000; i++) {
                futures.add(p.send(new ProducerRecord<>(topic, i % 2, "k" + i, "r-" + i)));
            }
            p.flush();
            for (int i = 0; i < futures.size(); i++) {
                RecordMetadata m = futures.get(i).get(90, TimeUnit.SECONDS);
                assertEquals(i % 2, m.partition());
                assertEquals(i / 2, m.offset(), "offset of record " + i);
            }
        }
        List<ConsumerRecord<String, String>> got = Util.readAll(broker, topic, 2, 2000);
        Util.assertNoDuplicates(got);
        assertEquals(2000, got.size());
        Map<Integer, List<ConsumerRecord<String, String>>> byP = Util.byPartition(got);
        for (int part = 0; part < 2; part++) {
            List<ConsumerRecord<String, String>> l = byP.get(part);
            for (int j = 0; j < 1000; j++) {
                assertEquals("r-" + (j * 2 + part), l.get(j).value(), "partition " + part + " offset " + j);
            }
        }
    }

    /**
     * Committed group offsets and committed/aborted transactions survive a clean restart; the
     * same transactional.id carries on afterwards.
     */
    @Test
    @Feature({"commit_fetch_offsets", "transactions"})
    void offsetsAndTransactionsSurviveRestart() throws Exception {
        String topic;
        try (Admin admin = broker.admin()) {
            topic = Util.createTopic(admin, "restart-state", 1);
        }
        TopicPartition tp = new TopicPartition(topic, 0);
        String group = Util.unique("restart-g");
        String txId = Util.unique("restart-tx");
        try (KafkaProducer<String, String> p = new KafkaProducer<>(broker.producerProps("transactional.id", txId))) {
            p.initTransactions();
            p.beginTransaction();
            p.send(new ProducerRecord<>(topic, 0, "k", "committed-0"));
            p.send(new ProducerRecord<>(topic, 0, "k", "committed-1"));
            p.commitTransaction();
            p.beginTransaction();
            p.send(new ProducerRecord<>(topic, 0, "k", "aborted-0"));
            p.flush();
            p.abortTransaction();
        }
        try (KafkaConsumer<String, String> c = new KafkaConsumer<>(broker.consumerProps("group.id", group))) {
            c.assign(List.of(tp));
            c.commitSync(Map.of(tp, new OffsetAndMetadata(1, "before-restart")));
        }

        broker.restart(false);

        try (KafkaConsumer<String, String> c = new KafkaConsumer<>(broker.consumerProps("group.id", group,
                "isolation.level", "read_committed"))) {
            OffsetAndMetadata om = c.committed(Set.of(tp)).get(tp);
            assertEquals(1L, om.offset());
            assertEquals("before-restart", om.metadata());
            c.assign(List.of(tp));
            c.seekToBeginning(List.of(tp));
            assertEquals(List.of("committed-0", "committed-1"), Util.values(Util.drain(c, 2, Duration.ofSeconds(30))));
        }
        try (KafkaProducer<String, String> p = new KafkaProducer<>(broker.producerProps("transactional.id", txId))) {
            p.initTransactions();
            p.beginTransaction();
            p.send(new ProducerRecord<>(topic, 0, "k", "after-restart"));
            p.commitTransaction();
        }
        List<ConsumerRecord<String, String>> all = Util.readAll(broker, topic, 1, 3, "isolation.level", "read_committed");
        assertEquals(List.of("committed-0", "committed-1", "after-restart"), Util.values(all));
    }
}
