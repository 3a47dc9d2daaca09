package gregor.compat;

import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

import org.apache.kafka.clients.consumer.Consumer;
import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.common.TopicPartition;

/**
 * Records every rebalance callback of one consumer, and (when given the consumer) commits the
 * positions of revoked partitions so their next owner starts exactly where this one stopped.
 */
final class RebalanceLog implements ConsumerRebalanceListener {
    final String name;
    final List<String> events = new ArrayList<>();
    final Set<TopicPartition> owned = new HashSet<>();
    int assignedCalls;
    int revokedCalls;
    int lostCalls;
    final Set<TopicPartition> everRevoked = new HashSet<>();
    private Consumer<String, String> consumer;
    /** Next offset to consume per partition, from the records this consumer returned. */
    final Map<TopicPartition, Long> next = new HashMap<>();
    private static final Map<Consumer<String, String>, RebalanceLog> BY_CONSUMER =
            java.util.Collections.synchronizedMap(new java.util.IdentityHashMap<>());

    /** Called by Util.pollUntil with what a poll returned. */
    static void noteConsumed(Consumer<String, String> c, Iterable<org.apache.kafka.clients.consumer.ConsumerRecord<String, String>> recs) {
        RebalanceLog log = BY_CONSUMER.get(c);
        if (log != null) {
            for (var r : recs) {
                log.next.put(new TopicPartition(r.topic(), r.partition()), r.offset() + 1);
            }
        }
    }

    RebalanceLog(String name) {
        this.name = name;
    }

    RebalanceLog commitOnRevoke(Consumer<String, String> c) {
        this.consumer = c;
        BY_CONSUMER.put(c, this);
        return this;
    }

    @Override
    public void onPartitionsRevoked(Collection<TopicPartition> partitions) {
        if (partitions.isEmpty()) {
            // the cooperative protocol calls with an empty set on every rebalance; not a revocation
            return;
        }
        revokedCalls++;
        events.add("revoked " + sorted(partitions));
        everRevoked.addAll(partitions);
        if (consumer != null) {
            // Commit what was consumed (not position(): the KIP-848 consumer cannot look up the
            // position of a partition that is being revoked and never had one).
            Map<TopicPartition, OffsetAndMetadata> pos = new HashMap<>();
            for (TopicPartition tp : partitions) {
                Long n = next.get(tp);
                if (n != null) {
                    pos.put(tp, new OffsetAndMetadata(n));
                }
            }
            if (!pos.isEmpty()) {
                consumer.commitSync(pos);
            }
        }
        owned.removeAll(partitions);
    }

    @Override
    public void onPartitionsAssigned(Collection<TopicPartition> partitions) {
        if (partitions.isEmpty()) {
            return;
        }
        assignedCalls++;
        events.add("assigned " + sorted(partitions));
        owned.addAll(partitions);
    }

    @Override
    public void onPartitionsLost(Collection<TopicPartition> partitions) {
        lostCalls++;
        events.add("lost " + sorted(partitions));
        owned.removeAll(partitions);
    }

    static List<Integer> sorted(Collection<TopicPartition> tps) {
        return tps.stream().map(TopicPartition::partition).sorted().toList();
    }

    @Override
    public String toString() {
        return name + events;
    }
}
