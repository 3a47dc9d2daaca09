package gregor.compat;

import gregor.support.GregorBroker;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.reflect.Method;
import java.time.Duration;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.ConsumerGroupDescription;
import org.apache.kafka.clients.admin.ConsumerGroupListing;
import org.apache.kafka.clients.admin.MemberDescription;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.KafkaFuture;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.GroupIdNotFoundException;
import org.apache.kafka.common.errors.GroupNotEmptyException;
import org.apache.kafka.common.errors.GroupSubscribedToTopicException;
import org.apache.kafka.common.errors.UnknownMemberIdException;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/** Admin over consumer groups: list, describe, offsets (list/alter/delete), delete groups. */
class AdminGroupsTest {
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

    static <T> T get(KafkaFuture<T> f) throws Exception {
        return f.get(30, TimeUnit.SECONDS);
    }

    static <E extends Throwable> E failure(Class<E> type, KafkaFuture<?> f) {
        ExecutionException e = assertThrows(ExecutionException.class, () -> f.get(30, TimeUnit.SECONDS));
        return assertInstanceOf(type, e.getCause(), "cause: " + e.getCause());
    }

    /**
     * The group state's name through whichever accessor this client version has: groupState()
     * (4.x, GroupState) or state() (3.x, ConsumerGroupState; deprecated in 4.x).
     */
    static String stateOf(Object listingOrDescription) throws Exception {
        for (String name : List.of("groupState", "state")) {
            try {
                Method m = listingOrDescription.getClass().getMethod(name);
                Object v = m.invoke(listingOrDescription);
                if (v instanceof Optional<?> o) {
                    v = o.orElse(null);
                }
                return String.valueOf(v).toUpperCase();
            } catch (NoSuchMethodException next) {
                // try the older name
            }
        }
        throw new AssertionError("no state accessor on " + listingOrDescription.getClass());
    }

    /** The group type ("CLASSIC" / "CONSUMER") where the client has type() (3.7+ listings, 4.x descriptions), else null. */
    static String typeOf(Object listingOrDescription) throws Exception {
        try {
            Object v = listingOrDescription.getClass().getMethod("type").invoke(listingOrDescription);
            if (v instanceof Optional<?> o) {
                v = o.orElse(null);
            }
            return v == null ? null : String.valueOf(v).toUpperCase();
        } catch (NoSuchMethodException e) {
            return null;
        }
    }

    @SuppressWarnings("deprecation")
    static Map<String, ConsumerGroupListing> listGroups() throws Exception {
        Map<String, ConsumerGroupListing> m = new HashMap<>();
        for (ConsumerGroupListing l : get(admin.listConsumerGroups().all())) {
            m.put(l.groupId(), l);
        }
        return m;
    }

    @Test
    @Feature({"admin_groups", "commit_fetch_offsets"})
    void listDescribeAlterDeleteGroups() throws Exception {
        String topic = Util.createTopic(admin, "groups", 2);
        TopicPartition p0 = new TopicPartition(topic, 0);
        TopicPartition p1 = new TopicPartition(topic, 1);
        try (KafkaProducer<String, String> p = new KafkaProducer<>(broker.producerProps())) {
            for (int i = 0; i < 20; i++) {
                p.send(new ProducerRecord<>(topic, i % 2, "k" + i, "v" + i));
            }
            p.flush();
        }
        String active = Util.unique("active");
        String simple = Util.unique("simple");

        // "simple": offsets committed without membership (assign + commitSync): an Empty group
        try (KafkaConsumer<String, String> c = new KafkaConsumer<>(broker.consumerProps("group.id", simple))) {
            c.assign(List.of(p0, p1));
            c.commitSync(Map.of(p0, new OffsetAndMetadata(3, "m0"), p1, new OffsetAndMetadata(4)));
        }

        // "active": a subscribed member that consumed everything and committed
        try (KafkaConsumer<String, String> member = new KafkaConsumer<>(broker.consumerProps("group.id", active,
                "client.id", "active-member", "group.protocol", "classic"))) {
            member.subscribe(List.of(topic));
            List<ConsumerRecord<String, String>> got = Util.drain(member, 20, Duration.ofSeconds(30));
            assertEquals(20, got.size());
            member.commitSync();

            Map<String, ConsumerGroupListing> groups = listGroups();
            assertTrue(groups.keySet().containsAll(Set.of(active, simple)), groups.keySet().toString());
            assertFalse(groups.get(active).isSimpleConsumerGroup());
            assertEquals("STABLE", stateOf(groups.get(active)));
            String type = typeOf(groups.get(active));
            assertTrue(type == null || type.equals("CLASSIC"), "type " + type);
            assertEquals("EMPTY", stateOf(groups.get(simple)));

            Map<String, ConsumerGroupDescription> d = get(admin.describeConsumerGroups(List.of(active, simple)).all());
            ConsumerGroupDescription da = d.get(active);
            assertEquals("STABLE", stateOf(da));
            assertEquals(1, da.coordinator().id());
            assertEquals("range", da.partitionAssignor());
            assertEquals(1, da.members().size());
            MemberDescription m = da.members().iterator().next();
            assertEquals("active-member", m.clientId());
            assertFalse(m.consumerId().isEmpty());
            assertTrue(m.host().contains("127.0.0.1"), m.host());
            assertEquals(Set.of(p0, p1), m.assignment().topicPartitions());
            assertEquals("EMPTY", stateOf(d.get(simple)));
            assertEquals(0, d.get(simple).members().size());

            Map<TopicPartition, OffsetAndMetadata> offs = get(admin.listConsumerGroupOffsets(active).partitionsToOffsetAndMetadata());
            assertEquals(10L, offs.get(p0).offset());
            assertEquals(10L, offs.get(p1).offset());
            Map<TopicPartition, OffsetAndMetadata> so = get(admin.listConsumerGroupOffsets(simple).partitionsToOffsetAndMetadata());
            assertEquals(new OffsetAndMetadata(3, "m0").offset(), so.get(p0).offset());
            assertEquals("m0", so.get(p0).metadata());
            assertEquals(4L, so.get(p1).offset());

            // what Kafka refuses while the group has members
            failure(UnknownMemberIdException.class,
                    admin.alterConsumerGroupOffsets(active, Map.of(p0, new OffsetAndMetadata(1))).all());
            failure(GroupSubscribedToTopicException.class,
                    admin.deleteConsumerGroupOffsets(active, Set.of(p0)).all());
            failure(GroupNotEmptyException.class, admin.deleteConsumerGroups(List.of(active)).all());
        }

        // alter the Empty group's offsets: a member of it then starts there
        get(admin.alterConsumerGroupOffsets(simple, Map.of(p0, new OffsetAndMetadata(7), p1, new OffsetAndMetadata(9))).all());
        Map<TopicPartition, OffsetAndMetadata> so = get(admin.listConsumerGroupOffsets(simple).partitionsToOffsetAndMetadata());
        assertEquals(7L, so.get(p0).offset());
        assertEquals(9L, so.get(p1).offset());
        try (KafkaConsumer<String, String> c = new KafkaConsumer<>(broker.consumerProps("group.id", simple))) {
            c.subscribe(List.of(topic));
            List<ConsumerRecord<String, String>> got = Util.drain(c, 4, Duration.ofSeconds(30));
            Map<Integer, List<ConsumerRecord<String, String>>> byP = Util.byPartition(got);
            assertEquals(List.of("v14", "v16", "v18"), Util.values(byP.get(0)));
            assertEquals(List.of("v19"), Util.values(byP.get(1)));
        }

        // delete one partition's offset of the (now again Empty) group
        get(admin.deleteConsumerGroupOffsets(simple, Set.of(p1)).all());
        so = get(admin.listConsumerGroupOffsets(simple).partitionsToOffsetAndMetadata());
        assertEquals(Set.of(p0), so.keySet(), "p1's offset is gone: " + so);

        // delete groups: the emptied active group and the simple one
        get(admin.deleteConsumerGroups(List.of(active, simple)).all());
        Map<String, ConsumerGroupListing> after = listGroups();
        assertFalse(after.containsKey(active), after.keySet().toString());
        assertFalse(after.containsKey(simple), after.keySet().toString());
        assertEquals(Map.of(), get(admin.listConsumerGroupOffsets(simple).partitionsToOffsetAndMetadata()));
        failure(GroupIdNotFoundException.class, admin.deleteConsumerGroups(List.of(simple)).all());
    }

    /** A KIP-848 group as the admin sees it: its members and their assignments. */
    @Test
    @Feature("admin_groups")
    void describeConsumerProtocolGroup() throws Exception {
        String topic = Util.createTopic(admin, "groups848", 3);
        String group = Util.unique("g848");
        try (KafkaConsumer<String, String> c = new KafkaConsumer<>(broker.consumerProps("group.id", group,
                "client.id", "m848", "group.protocol", "consumer"))) {
            c.subscribe(List.of(topic));
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
            while (c.assignment().size() < 3) {
                assertTrue(System.nanoTime() < deadline, "assignment " + c.assignment());
                c.poll(Duration.ofMillis(100));
            }
            ConsumerGroupDescription d = get(admin.describeConsumerGroups(List.of(group)).all()).get(group);
            assertEquals("STABLE", stateOf(d));
            assertEquals(1, d.members().size());
            MemberDescription m = d.members().iterator().next();
            assertEquals("m848", m.clientId());
            assertEquals(new HashSet<>(Util.partitions(topic, 3)), m.assignment().topicPartitions());
            assertTrue(listGroups().containsKey(group));
            // it really is a KIP-848 group, as the broker reports it
            for (Object o : List.of(d, listGroups().get(group))) {
                String type = typeOf(o);
                assertTrue(type == null || type.equals("CONSUMER"), o.getClass().getSimpleName() + " type " + type);
            }
            assertTrue(typeOf(listGroups().get(group)) != null || typeOf(d) != null, "some accessor tells the type");
        }
    }
}
