package gregor.flink;

import gregor.support.GregorBroker;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.List;
import java.util.Properties;
import java.util.concurrent.TimeUnit;

import org.apache.flink.connector.kafka.sink.internal.FlinkKafkaInternalProducer;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.TransactionDescription;
import org.apache.kafka.clients.admin.TransactionState;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.errors.InvalidTxnStateException;
import org.apache.kafka.common.errors.ProducerFencedException;
import org.apache.kafka.common.serialization.StringSerializer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * The KafkaSink committer's recovery path without a Flink job: a pre-committed transaction (producer id
 * and epoch taken from a checkpoint) is resumed by a NEW producer instance with
 * {@code FlinkKafkaInternalProducer.resumeTransaction} — no InitProducerId, just EndTxn with the old id
 * and epoch — and committed. Also what Flink relies on when that commit is retried or comes too late:
 * a second commit of a committed transaction succeeds (Kafka answers NONE), a commit after a newer
 * InitProducerId for the same transactional.id is fenced (PRODUCER_FENCED), a commit of a transaction
 * that was aborted under the same epoch is INVALID_TXN_STATE.
 */
class ResumeTransactionTest {
    @RegisterExtension
    static final GregorBroker broker = GregorBroker.defaults();

    private static Properties props() {
        Properties p = broker.producerProps();
        p.put("key.serializer", StringSerializer.class.getName());
        p.put("value.serializer", StringSerializer.class.getName());
        p.put("transaction.timeout.ms", "60000");
        return p;
    }

    private static void createTopic(String name) throws Exception {
        try (Admin admin = broker.admin()) {
            admin.createTopics(List.of(new NewTopic(name, 2, (short) 1))).all().get(30, TimeUnit.SECONDS);
        }
    }

    /** Opens a transaction under {@code txnId}, writes {@code n} records and "crashes" (closes without ending it). */
    private static long[] openAndAbandon(String topic, String txnId, String prefix, int n) throws Exception {
        FlinkKafkaInternalProducer<String, String> p = new FlinkKafkaInternalProducer<>(props(), txnId);
        p.initTransactions();
        p.beginTransaction();
        for (int i = 0; i < n; i++) {
            p.send(new ProducerRecord<>(topic, i % 2, "k" + i, prefix + "-" + i)).get(30, TimeUnit.SECONDS);
        }
        p.flush();
        long[] idEpoch = {p.getProducerId(), p.getEpoch()};
        p.close(Duration.ZERO);
        return idEpoch;
    }

    private static FlinkKafkaInternalProducer<String, String> resume(String txnId, long[] idEpoch) {
        FlinkKafkaInternalProducer<String, String> p = new FlinkKafkaInternalProducer<>(props(), txnId);
        p.resumeTransaction(idEpoch[0], (short) idEpoch[1]);
        return p;
    }

    private static List<String> committedValues(String topic) {
        return FlinkKafkaTest.readAll(topic, "read_committed", broker).stream().map(ConsumerRecord::value).map(Jobs::str).sorted().toList();
    }

    private static TransactionDescription describe(String txnId) throws Exception {
        try (Admin admin = broker.admin()) {
            return admin.describeTransactions(List.of(txnId)).description(txnId).get(30, TimeUnit.SECONDS);
        }
    }

    @Test
    @Check(name = "resume_commit", label = "committer recovery: a new producer resumes a pre-committed transaction by producer id/epoch "
            + "(no InitProducerId) and commits it; a repeated commit succeeds; the records become visible to read_committed")
    void resumedTransactionCommits() throws Exception {
        String topic = "resume";
        createTopic(topic);
        long[] idEpoch = openAndAbandon(topic, "resume-tx", "r", 10);
        assertEquals(TransactionState.ONGOING, describe("resume-tx").state(), "the abandoned transaction is still open");
        try (FlinkKafkaInternalProducer<String, String> p = resume("resume-tx", idEpoch)) {
            p.commitTransaction();
        }
        assertEquals(10, committedValues(topic).size(), "records of the resumed and committed transaction: " + committedValues(topic));
        // the committer may be asked to commit the same transaction again (e.g. recovery from the same checkpoint twice)
        try (FlinkKafkaInternalProducer<String, String> p = resume("resume-tx", idEpoch)) {
            p.commitTransaction();
        }
        assertEquals(TransactionState.COMPLETE_COMMIT, describe("resume-tx").state());
        assertEquals(10, committedValues(topic).size());
    }

    @Test
    @Check(name = "resume_commit_fenced", label = "committer recovery: resuming a transaction whose transactional.id was re-initialized "
            + "since (InitProducerId bumped the epoch and aborted it) is fenced (PRODUCER_FENCED), its records stay invisible")
    void resumedTransactionFencedAfterInit() throws Exception {
        String topic = "resume-fenced";
        createTopic(topic);
        long[] idEpoch = openAndAbandon(topic, "fenced-tx", "f", 6);
        try (FlinkKafkaInternalProducer<String, String> newer = new FlinkKafkaInternalProducer<>(props(), "fenced-tx")) {
            newer.initTransactions(); // what the writer's abort of lingering transactions does
            assertTrue(newer.getEpoch() > idEpoch[1], "InitProducerId bumps the epoch: " + newer.getEpoch());
        }
        try (FlinkKafkaInternalProducer<String, String> p = resume("fenced-tx", idEpoch)) {
            assertThrows(ProducerFencedException.class, p::commitTransaction);
        }
        assertEquals(List.of(), committedValues(topic));
    }

    @Test
    @Check(name = "resume_commit_after_abort", label = "committer recovery: committing (same producer id and epoch) a transaction that was "
            + "aborted meanwhile is INVALID_TXN_STATE, as in Kafka; the aborted records stay invisible")
    void resumedCommitAfterAbort() throws Exception {
        String topic = "resume-aborted";
        createTopic(topic);
        long[] idEpoch = openAndAbandon(topic, "aborted-tx", "a", 6);
        try (FlinkKafkaInternalProducer<String, String> p = resume("aborted-tx", idEpoch)) {
            p.abortTransaction();
        }
        assertEquals(TransactionState.COMPLETE_ABORT, describe("aborted-tx").state());
        try (FlinkKafkaInternalProducer<String, String> p = resume("aborted-tx", idEpoch)) {
            assertThrows(InvalidTxnStateException.class, p::commitTransaction);
        }
        assertEquals(List.of(), committedValues(topic));
    }
}
