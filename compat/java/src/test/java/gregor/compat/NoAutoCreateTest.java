package gregor.compat;

import gregor.support.GregorBroker;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.List;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.TimeoutException;
import org.apache.kafka.common.errors.UnknownTopicOrPartitionException;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/** A broker with auto.create.topics.enable=false: unknown topics stay unknown, as with Kafka. */
class NoAutoCreateTest {
    @RegisterExtension
    static final GregorBroker broker = GregorBroker.withSettings("auto.create.topics.enable=false");

    @Test
    @Feature("unknown_topic_no_autocreate")
    void unknownTopicIsNotCreated() throws Exception {
        String missing = Util.unique("missing");
        try (Admin admin = broker.admin()) {
            // producer: the record waits for metadata that never names the topic, then fails
            // with "Topic ... not present in metadata after 3000 ms" (Kafka's behaviour)
            try (KafkaProducer<String, String> p = new KafkaProducer<>(broker.producerProps("max.block.ms", 3000))) {
                long start = System.nanoTime();
                Throwable failure;
                try {
                    Future<RecordMetadata> f = p.send(new ProducerRecord<>(missing, "k", "v"));
                    ExecutionException e = assertThrows(ExecutionException.class, () -> f.get(30, TimeUnit.SECONDS));
                    failure = e.getCause();
                } catch (TimeoutException thrownBySend) {
                    failure = thrownBySend;
                }
                assertInstanceOf(TimeoutException.class, failure, "cause: " + failure);
                assertTrue(failure.getMessage().contains("not present in metadata"), failure.getMessage());
                assertTrue(System.nanoTime() - start >= TimeUnit.MILLISECONDS.toNanos(2500), "waited max.block.ms");
            }
            // consumer: an assigned partition of it yields nothing and creates nothing
            try (KafkaConsumer<String, String> c = new KafkaConsumer<>(broker.consumerProps())) {
                assertTrue(c.partitionsFor(missing).isEmpty(), "partitionsFor of an unknown topic");
                c.assign(List.of(new TopicPartition(missing, 0)));
                long until = System.nanoTime() + TimeUnit.SECONDS.toNanos(2);
                while (System.nanoTime() < until) {
                    assertTrue(c.poll(Duration.ofMillis(200)).isEmpty());
                }
            }
            assertFalse(admin.listTopics().names().get().contains(missing), "the topic was not created");
            ExecutionException e = assertThrows(ExecutionException.class,
                    () -> admin.describeTopics(List.of(missing)).allTopicNames().get(30, TimeUnit.SECONDS));
            assertInstanceOf(UnknownTopicOrPartitionException.class, e.getCause());

            // an explicitly created topic works as usual on this broker
            String made = Util.createTopic(admin, "made", 1);
            try (KafkaProducer<String, String> p = new KafkaProducer<>(broker.producerProps())) {
                assertEquals(0L, p.send(new ProducerRecord<>(made, "k", "v")).get(30, TimeUnit.SECONDS).offset());
            }
            List<ConsumerRecord<String, String>> got = Util.readAll(broker, made, 1, 1);
            assertEquals(List.of("v"), Util.values(got));
        }
    }
}
