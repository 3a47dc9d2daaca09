package gregor.compat;

import gregor.support.GregorBroker;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AlterConfigOp;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.CreateTopicsOptions;
import org.apache.kafka.clients.admin.CreateTopicsResult;
import org.apache.kafka.clients.admin.DescribeClusterResult;
import org.apache.kafka.clients.admin.FeatureMetadata;
import org.apache.kafka.clients.admin.ListOffsetsResult.ListOffsetsResultInfo;
import org.apache.kafka.clients.admin.LogDirDescription;
import org.apache.kafka.clients.admin.NewPartitions;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.admin.RecordsToDelete;
import org.apache.kafka.clients.admin.ReplicaInfo;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.admin.TopicListing;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.KafkaFuture;
import org.apache.kafka.common.Node;
import org.apache.kafka.common.TopicCollection;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.TopicPartitionInfo;
import org.apache.kafka.common.Uuid;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.errors.InvalidConfigurationException;
import org.apache.kafka.common.errors.InvalidPartitionsException;
import org.apache.kafka.common.errors.InvalidReplicationFactorException;
import org.apache.kafka.common.errors.InvalidRequestException;
import org.apache.kafka.common.errors.OffsetOutOfRangeException;
import org.apache.kafka.common.errors.TopicExistsException;
import org.apache.kafka.common.errors.UnknownTopicIdException;
import org.apache.kafka.common.errors.UnknownTopicOrPartitionException;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/** The Admin client: topics, partitions, configs, records, log dirs, offsets, cluster and features. */
class AdminTest {
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

    /** The cause of a failed admin future, asserted to be of the given type. */
    static <E extends Throwable> E failure(Class<E> type, KafkaFuture<?> f) {
        ExecutionException e = assertThrows(ExecutionException.class, () -> f.get(30, TimeUnit.SECONDS));
        return assertInstanceOf(type, e.getCause(), "cause: " + e.getCause());
    }

    private static List<RecordMetadata> produce(String topic, int partition, int n, long baseTs) throws Exception {
        List<ProducerRecord<String, String>> recs = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            recs.add(new ProducerRecord<>(topic, partition, baseTs + i * 1000L, "k" + i, "v" + i));
        }
        try (KafkaProducer<String, String> p = new KafkaProducer<>(broker.producerProps("acks", "all"))) {
            return Util.sendAll(p, recs);
        }
    }

    @Test
    @Feature({"admin_create_topic", "metadata_all_topics"})
    void createTopicWithConfigsThenDescribe() throws Exception {
        String name = Util.unique("created");
        Map<String, String> configs = Map.of("cleanup.policy", "compact", "retention.ms", "123456789",
                "max.message.bytes", "65536");
        CreateTopicsResult res = admin.createTopics(List.of(new NewTopic(name, 3, (short) 1).configs(configs)));
        get(res.all());
        assertEquals(3, get(res.numPartitions(name)));
        assertEquals(1, get(res.replicationFactor(name)));
        Uuid id = get(res.topicId(name));
        assertNotEquals(Uuid.ZERO_UUID, id);
        Config returned = get(res.config(name));
        assertEquals("compact", returned.get("cleanup.policy").value());
        assertEquals("123456789", returned.get("retention.ms").value());

        TopicDescription d = get(admin.describeTopics(List.of(name)).allTopicNames()).get(name);
        assertEquals(name, d.name());
        assertEquals(id, d.topicId());
        assertFalse(d.isInternal());
        assertEquals(3, d.partitions().size());
        for (int p = 0; p < 3; p++) {
            TopicPartitionInfo info = d.partitions().get(p);
            assertEquals(p, info.partition());
            assertEquals(1, info.leader().id());
            assertEquals(List.of(1), info.replicas().stream().map(Node::id).toList());
            assertEquals(List.of(1), info.isr().stream().map(Node::id).toList());
        }

        Map<String, TopicListing> listings = get(admin.listTopics().namesToListings());
        assertTrue(listings.containsKey(name), "listTopics has the new topic: " + listings.keySet());
        assertEquals(id, listings.get(name).topicId());

        Config described = get(admin.describeConfigs(List.of(new ConfigResource(ConfigResource.Type.TOPIC, name))).all())
                .get(new ConfigResource(ConfigResource.Type.TOPIC, name));
        for (Map.Entry<String, String> e : configs.entrySet()) {
            ConfigEntry ce = described.get(e.getKey());
            assertNotNull(ce, e.getKey());
            assertEquals(e.getValue(), ce.value(), e.getKey());
            assertEquals(ConfigEntry.ConfigSource.DYNAMIC_TOPIC_CONFIG, ce.source(), e.getKey());
        }
        // an unset one comes with its default
        ConfigEntry segment = described.get("segment.bytes");
        assertNotNull(segment);
        assertNotEquals(ConfigEntry.ConfigSource.DYNAMIC_TOPIC_CONFIG, segment.source());
    }

    @Test
    @Feature("metadata_all_topics")
    void describeTopicsById() throws Exception {
        String a = Util.createTopic(admin, "by-id-a", 2);
        String b = Util.createTopic(admin, "by-id-b", 3);
        Map<String, TopicDescription> byName = get(admin.describeTopics(List.of(a, b)).allTopicNames());
        Uuid idA = byName.get(a).topicId();
        Uuid idB = byName.get(b).topicId();
        Map<Uuid, TopicDescription> byId = get(admin.describeTopics(TopicCollection.ofTopicIds(List.of(idA, idB))).allTopicIds());
        assertEquals(a, byId.get(idA).name());
        assertEquals(2, byId.get(idA).partitions().size());
        assertEquals(b, byId.get(idB).name());
        assertEquals(3, byId.get(idB).partitions().size());
        failure(UnknownTopicIdException.class,
                admin.describeTopics(TopicCollection.ofTopicIds(List.of(Uuid.randomUuid()))).allTopicIds());
    }

    @Test
    @Feature("admin_create_topic")
    void createTopicValidateOnlyAndErrors() throws Exception {
        String name = Util.unique("validate-only");
        get(admin.createTopics(List.of(new NewTopic(name, 2, (short) 1)),
                new CreateTopicsOptions().validateOnly(true)).all());
        assertFalse(get(admin.listTopics().names()).contains(name), "validateOnly must not create the topic");
        failure(UnknownTopicOrPartitionException.class, admin.describeTopics(List.of(name)).allTopicNames());

        String existing = Util.createTopic(admin, "exists", 1);
        failure(TopicExistsException.class, admin.createTopics(List.of(new NewTopic(existing, 1, (short) 1))).all());
        // validateOnly reports the same
        failure(TopicExistsException.class, admin.createTopics(List.of(new NewTopic(existing, 1, (short) 1)),
                new CreateTopicsOptions().validateOnly(true)).all());
        failure(InvalidReplicationFactorException.class,
                admin.createTopics(List.of(new NewTopic(Util.unique("rf3"), 1, (short) 3))).all());
        failure(InvalidPartitionsException.class,
                admin.createTopics(List.of(new NewTopic(Util.unique("zero"), 0, (short) 1))).all());
        failure(InvalidConfigurationException.class, admin.createTopics(List.of(new NewTopic(Util.unique("badcfg"), 1,
                (short) 1).configs(Map.of("retention.ms", "not-a-number")))).all());
        // one bad topic does not sink the good one in the same request
        String good = Util.unique("good");
        CreateTopicsResult mixed = admin.createTopics(List.of(new NewTopic(good, 1, (short) 1),
                new NewTopic(existing, 1, (short) 1)));
        get(mixed.values().get(good));
        failure(TopicExistsException.class, mixed.values().get(existing));
        assertTrue(get(admin.listTopics().names()).contains(good));
    }

    @Test
    @Feature("metadata_all_topics")
    void listTopicsAndInternal() throws Exception {
        Set<String> made = Set.of(Util.createTopic(admin, "list-a", 1), Util.createTopic(admin, "list-b", 2),
                Util.createTopic(admin, "list-c", 4));
        Map<String, TopicListing> listings = get(admin.listTopics().namesToListings());
        assertTrue(listings.keySet().containsAll(made), listings.keySet().toString());
        Map<String, TopicDescription> all = get(admin.describeTopics(listings.keySet()).allTopicNames());
        for (String t : made) {
            int expected = t.startsWith("list-a") ? 1 : t.startsWith("list-b") ? 2 : 4;
            assertEquals(expected, all.get(t).partitions().size(), t);
            assertEquals(listings.get(t).topicId(), all.get(t).topicId(), t);
        }
        // a group commit creates __consumer_offsets: listed only with listInternal
        try (KafkaConsumer<String, String> c = new KafkaConsumer<>(broker.consumerProps("group.id", Util.unique("g")))) {
            TopicPartition tp = new TopicPartition(made.iterator().next(), 0);
            c.assign(List.of(tp));
            c.commitSync(Map.of(tp, new org.apache.kafka.clients.consumer.OffsetAndMetadata(0)));
        }
        Set<String> withInternal = get(admin.listTopics(new org.apache.kafka.clients.admin.ListTopicsOptions()
                .listInternal(true)).names());
        assertTrue(withInternal.contains("__consumer_offsets"), withInternal.toString());
        assertFalse(get(admin.listTopics().names()).contains("__consumer_offsets"));
        assertTrue(get(admin.listTopics(new org.apache.kafka.clients.admin.ListTopicsOptions().listInternal(true))
                .namesToListings()).get("__consumer_offsets").isInternal());
    }

    @Test
    @Feature("admin_delete_topic")
    void deleteTopics() throws Exception {
        String byName = Util.createTopic(admin, "del-name", 2);
        String byId = Util.createTopic(admin, "del-id", 1);
        produce(byName, 0, 5, System.currentTimeMillis());
        Uuid id = get(admin.describeTopics(List.of(byId)).allTopicNames()).get(byId).topicId();

        get(admin.deleteTopics(List.of(byName)).all());
        get(admin.deleteTopics(TopicCollection.ofTopicIds(List.of(id))).all());
        Set<String> names = get(admin.listTopics().names());
        assertFalse(names.contains(byName), names.toString());
        assertFalse(names.contains(byId), names.toString());
        failure(UnknownTopicOrPartitionException.class, admin.describeTopics(List.of(byName)).allTopicNames());
        failure(UnknownTopicOrPartitionException.class, admin.deleteTopics(List.of(byName)).all());
        failure(UnknownTopicIdException.class, admin.deleteTopics(TopicCollection.ofTopicIds(List.of(id))).all());

        // the name can be used again: a new topic id and no old data
        get(admin.createTopics(List.of(new NewTopic(byName, 1, (short) 1))).all());
        TopicDescription again = get(admin.describeTopics(List.of(byName)).allTopicNames()).get(byName);
        assertEquals(1, again.partitions().size());
        TopicPartition tp = new TopicPartition(byName, 0);
        assertEquals(0L, get(admin.listOffsets(Map.of(tp, OffsetSpec.latest())).all()).get(tp).offset());
    }

    @Test
    @Feature("admin_partitions")
    void createPartitions() throws Exception {
        String topic = Util.createTopic(admin, "grow", 1);
        get(admin.createPartitions(Map.of(topic, NewPartitions.increaseTo(3))).all());
        TopicDescription d = get(admin.describeTopics(List.of(topic)).allTopicNames()).get(topic);
        assertEquals(3, d.partitions().size());
        assertEquals(2, d.partitions().get(2).partition());
        assertEquals(1, d.partitions().get(2).leader().id());

        // the new partitions take data
        List<RecordMetadata> m = produce(topic, 2, 3, System.currentTimeMillis());
        assertEquals(2, m.get(2).partition());
        assertEquals(2, m.get(2).offset());
        try (KafkaConsumer<String, String> c = new KafkaConsumer<>(broker.consumerProps())) {
            List<TopicPartition> parts = c.partitionsFor(topic).stream()
                    .map(pi -> new TopicPartition(topic, pi.partition())).sorted((a, b) -> a.partition() - b.partition()).toList();
            assertEquals(Util.partitions(topic, 3), parts);
            c.assign(List.of(new TopicPartition(topic, 2)));
            c.seekToBeginning(List.of(new TopicPartition(topic, 2)));
            List<ConsumerRecord<String, String>> got = Util.drain(c, 3, java.time.Duration.ofSeconds(20));
            assertEquals(List.of("v0", "v1", "v2"), Util.values(got));
        }
        // validateOnly changes nothing
        get(admin.createPartitions(Map.of(topic, NewPartitions.increaseTo(5)),
                new org.apache.kafka.clients.admin.CreatePartitionsOptions().validateOnly(true)).all());
        assertEquals(3, get(admin.describeTopics(List.of(topic)).allTopicNames()).get(topic).partitions().size());
        // shrinking or staying put is refused, an unknown topic too
        failure(InvalidPartitionsException.class, admin.createPartitions(Map.of(topic, NewPartitions.increaseTo(2))).all());
        failure(InvalidPartitionsException.class, admin.createPartitions(Map.of(topic, NewPartitions.increaseTo(3))).all());
        failure(UnknownTopicOrPartitionException.class,
                admin.createPartitions(Map.of(Util.unique("nope"), NewPartitions.increaseTo(3))).all());
    }

    @Test
    @Feature("admin_configs")
    void topicConfigsIncrementalAlter() throws Exception {
        String topic = Util.createTopic(admin, "cfg", 1, Map.of("retention.ms", "86400000"));
        ConfigResource res = new ConfigResource(ConfigResource.Type.TOPIC, topic);
        get(admin.incrementalAlterConfigs(Map.of(res, List.of(
                new AlterConfigOp(new ConfigEntry("retention.ms", "3600000"), AlterConfigOp.OpType.SET),
                new AlterConfigOp(new ConfigEntry("segment.bytes", "10485760"), AlterConfigOp.OpType.SET),
                new AlterConfigOp(new ConfigEntry("cleanup.policy", "compact"), AlterConfigOp.OpType.APPEND)))).all());
        Config c = get(admin.describeConfigs(List.of(res)).all()).get(res);
        assertEquals("3600000", c.get("retention.ms").value());
        assertEquals(ConfigEntry.ConfigSource.DYNAMIC_TOPIC_CONFIG, c.get("retention.ms").source());
        assertEquals("10485760", c.get("segment.bytes").value());
        assertEquals(Set.of("delete", "compact"), Set.of(c.get("cleanup.policy").value().split(",")));

        // DELETE goes back to the default
        get(admin.incrementalAlterConfigs(Map.of(res, List.of(
                new AlterConfigOp(new ConfigEntry("retention.ms", ""), AlterConfigOp.OpType.DELETE),
                new AlterConfigOp(new ConfigEntry("cleanup.policy", "compact"), AlterConfigOp.OpType.SUBTRACT)))).all());
        c = get(admin.describeConfigs(List.of(res)).all()).get(res);
        assertEquals("604800000", c.get("retention.ms").value());
        assertNotEquals(ConfigEntry.ConfigSource.DYNAMIC_TOPIC_CONFIG, c.get("retention.ms").source());
        assertEquals("delete", c.get("cleanup.policy").value());

        // validateOnly changes nothing; bad values and unknown topics are refused
        get(admin.incrementalAlterConfigs(Map.of(res, List.of(new AlterConfigOp(new ConfigEntry("retention.ms", "1000"),
                AlterConfigOp.OpType.SET))), new org.apache.kafka.clients.admin.AlterConfigsOptions().validateOnly(true)).all());
        assertEquals("604800000", get(admin.describeConfigs(List.of(res)).all()).get(res).get("retention.ms").value());
        failure(InvalidConfigurationException.class, admin.incrementalAlterConfigs(Map.of(res, List.of(new AlterConfigOp(
                new ConfigEntry("retention.ms", "soon"), AlterConfigOp.OpType.SET)))).all());
        ConfigResource missing = new ConfigResource(ConfigResource.Type.TOPIC, Util.unique("missing"));
        failure(UnknownTopicOrPartitionException.class, admin.describeConfigs(List.of(missing)).all());
        failure(UnknownTopicOrPartitionException.class, admin.incrementalAlterConfigs(Map.of(missing, List.of(
                new AlterConfigOp(new ConfigEntry("retention.ms", "1000"), AlterConfigOp.OpType.SET)))).all());
    }

    @Test
    @Feature("admin_configs")
    void brokerConfigs() throws Exception {
        ConfigResource res = new ConfigResource(ConfigResource.Type.BROKER, "1");
        Config c = get(admin.describeConfigs(List.of(res)).all()).get(res);
        Map<String, ConfigEntry> byName = c.entries().stream().collect(Collectors.toMap(ConfigEntry::name, e -> e));
        assertEquals("1048588", byName.get("message.max.bytes").value());
        assertEquals("1", byName.get("node.id").value());
        assertTrue(byName.get("log.dirs").value().endsWith("data"), byName.get("log.dirs").value());
        assertEquals("1", byName.get("num.partitions").value());
        assertEquals(ConfigEntry.ConfigSource.DEFAULT_CONFIG, byName.get("message.max.bytes").source());
        // a setting that is static in Kafka too: refused with INVALID_REQUEST, as Kafka does
        failure(InvalidRequestException.class, admin.incrementalAlterConfigs(Map.of(res, List.of(new AlterConfigOp(
                new ConfigEntry("log.dirs", "/elsewhere"), AlterConfigOp.OpType.SET)))).all());
    }

    /**
     * A per-broker dynamic setting (message.max.bytes is dynamic in Kafka, "cluster-wide"
     * updatable, also per broker): Kafka applies it at once and describeConfigs reports it with
     * source DYNAMIC_BROKER_CONFIG; DELETE goes back to the static value.
     */
    @Test
    @Feature("admin_configs")
    void brokerDynamicConfig() throws Exception {
        ConfigResource res = new ConfigResource(ConfigResource.Type.BROKER, "1");
        String topic = Util.createTopic(admin, "dyn", 1);
        get(admin.incrementalAlterConfigs(Map.of(res, List.of(new AlterConfigOp(
                new ConfigEntry("message.max.bytes", "3000000"), AlterConfigOp.OpType.SET)))).all());
        try {
            ConfigEntry e = get(admin.describeConfigs(List.of(res)).all()).get(res).get("message.max.bytes");
            assertEquals("3000000", e.value());
            assertEquals(ConfigEntry.ConfigSource.DYNAMIC_BROKER_CONFIG, e.source());
            // and it is in force: a 2 MB record is accepted now
            try (KafkaProducer<String, String> p = new KafkaProducer<>(broker.producerProps(
                    "max.request.size", 8 * 1024 * 1024, "compression.type", "none"))) {
                assertEquals(0L, p.send(new ProducerRecord<>(topic, "k", "z".repeat(2_000_000))).get(30, TimeUnit.SECONDS).offset());
            }
        } finally {
            get(admin.incrementalAlterConfigs(Map.of(res, List.of(new AlterConfigOp(
                    new ConfigEntry("message.max.bytes", ""), AlterConfigOp.OpType.DELETE)))).all());
        }
        ConfigEntry back = get(admin.describeConfigs(List.of(res)).all()).get(res).get("message.max.bytes");
        assertEquals("1048588", back.value());
    }

    @Test
    @Feature("admin_delete_records")
    void deleteRecords() throws Exception {
        String topic = Util.createTopic(admin, "delrec", 2);
        produce(topic, 0, 20, System.currentTimeMillis());
        produce(topic, 1, 5, System.currentTimeMillis());
        TopicPartition p0 = new TopicPartition(topic, 0);
        TopicPartition p1 = new TopicPartition(topic, 1);
        var res = admin.deleteRecords(Map.of(p0, RecordsToDelete.beforeOffset(7)));
        assertEquals(7, get(res.lowWatermarks().get(p0)).lowWatermark());
        assertEquals(7L, get(admin.listOffsets(Map.of(p0, OffsetSpec.earliest())).all()).get(p0).offset());
        assertEquals(20L, get(admin.listOffsets(Map.of(p0, OffsetSpec.latest())).all()).get(p0).offset());
        try (KafkaConsumer<String, String> c = new KafkaConsumer<>(broker.consumerProps())) {
            c.assign(List.of(p0));
            c.seekToBeginning(List.of(p0));
            List<ConsumerRecord<String, String>> got = Util.drain(c, 13, java.time.Duration.ofSeconds(20));
            assertEquals(13, got.size());
            assertEquals(7, got.get(0).offset());
            assertEquals("v7", got.get(0).value());
            assertEquals(Map.of(p0, 7L), c.beginningOffsets(List.of(p0)));
        }
        // beyond the high watermark: OFFSET_OUT_OF_RANGE; -1 (= high watermark) deletes everything
        failure(OffsetOutOfRangeException.class, admin.deleteRecords(Map.of(p1, RecordsToDelete.beforeOffset(99))).all());
        assertEquals(5, get(admin.deleteRecords(Map.of(p1, RecordsToDelete.beforeOffset(-1))).lowWatermarks().get(p1)).lowWatermark());
        assertEquals(5L, get(admin.listOffsets(Map.of(p1, OffsetSpec.earliest())).all()).get(p1).offset());
        // the partition keeps working
        assertEquals(5, produce(topic, 1, 1, System.currentTimeMillis()).get(0).offset());
    }

    @Test
    @Feature("admin_log_dirs")
    void describeLogDirs() throws Exception {
        String topic = Util.createTopic(admin, "logdirs", 2);
        produce(topic, 0, 50, System.currentTimeMillis());
        produce(topic, 1, 10, System.currentTimeMillis());
        Map<Integer, Map<String, LogDirDescription>> all = get(admin.describeLogDirs(List.of(1)).allDescriptions());
        assertEquals(Set.of(1), all.keySet());
        assertEquals(1, all.get(1).size(), "one log dir: " + all.get(1).keySet());
        Map.Entry<String, LogDirDescription> dir = all.get(1).entrySet().iterator().next();
        assertTrue(dir.getKey().endsWith("data"), dir.getKey());
        assertNull(dir.getValue().error());
        Map<TopicPartition, ReplicaInfo> replicas = dir.getValue().replicaInfos();
        ReplicaInfo r0 = replicas.get(new TopicPartition(topic, 0));
        ReplicaInfo r1 = replicas.get(new TopicPartition(topic, 1));
        assertNotNull(r0, replicas.keySet().toString());
        assertNotNull(r1, replicas.keySet().toString());
        assertTrue(r0.size() > r1.size() && r1.size() > 0, "sizes " + r0.size() + " / " + r1.size());
        assertTrue(r0.size() >= 50 * 8, "50 records take some bytes: " + r0.size());
        assertEquals(0, r0.offsetLag());
        assertFalse(r0.isFuture());
        assertTrue(dir.getValue().totalBytes().isPresent() && dir.getValue().usableBytes().isPresent());
        assertTrue(dir.getValue().totalBytes().getAsLong() >= dir.getValue().usableBytes().getAsLong());
    }

    @Test
    @Feature({"list_offsets_earliest", "list_offsets_latest", "list_offsets_by_time"})
    void listOffsets() throws Exception {
        String topic = Util.createTopic(admin, "listoff", 1);
        TopicPartition tp = new TopicPartition(topic, 0);
        Map<TopicPartition, ListOffsetsResultInfo> empty = get(admin.listOffsets(Map.of(tp, OffsetSpec.latest())).all());
        assertEquals(0L, empty.get(tp).offset());
        long base = 1_700_000_000_000L;
        produce(topic, 0, 30, base); // timestamps base, base+1s, ... base+29s
        assertEquals(0L, get(admin.listOffsets(Map.of(tp, OffsetSpec.earliest())).all()).get(tp).offset());
        assertEquals(30L, get(admin.listOffsets(Map.of(tp, OffsetSpec.latest())).all()).get(tp).offset());
        ListOffsetsResultInfo at = get(admin.listOffsets(Map.of(tp, OffsetSpec.forTimestamp(base + 10_500))).all()).get(tp);
        assertEquals(11L, at.offset());
        assertEquals(base + 11_000, at.timestamp());
        ListOffsetsResultInfo exact = get(admin.listOffsets(Map.of(tp, OffsetSpec.forTimestamp(base + 5_000))).all()).get(tp);
        assertEquals(5L, exact.offset());
        ListOffsetsResultInfo after = get(admin.listOffsets(Map.of(tp, OffsetSpec.forTimestamp(base + 99_000))).all()).get(tp);
        assertEquals(-1L, after.offset(), "no record that late");
        ListOffsetsResultInfo max = get(admin.listOffsets(Map.of(tp, OffsetSpec.maxTimestamp())).all()).get(tp);
        assertEquals(29L, max.offset());
        assertEquals(base + 29_000, max.timestamp());
    }

    @Test
    @Feature("admin_features")
    void describeCluster() throws Exception {
        DescribeClusterResult c = admin.describeCluster();
        String clusterId = get(c.clusterId());
        assertNotNull(clusterId);
        assertFalse(clusterId.isBlank());
        Collection<Node> nodes = get(c.nodes());
        assertEquals(1, nodes.size());
        Node n = nodes.iterator().next();
        assertEquals(1, n.id());
        assertEquals("127.0.0.1", n.host());
        assertEquals(broker.bootstrap(), n.host() + ":" + n.port());
        assertEquals(1, get(c.controller()).id());
        // the same cluster id the second time
        assertEquals(clusterId, get(admin.describeCluster().clusterId()));
    }

    @Test
    @Feature("admin_features")
    void describeFeatures() throws Exception {
        FeatureMetadata f = get(admin.describeFeatures().featureMetadata());
        Map<String, String> finalized = new HashMap<>();
        f.finalizedFeatures().forEach((k, v) -> finalized.put(k, v.minVersionLevel() + ".." + v.maxVersionLevel()));
        Map<String, String> supported = new HashMap<>();
        f.supportedFeatures().forEach((k, v) -> supported.put(k, v.minVersion() + ".." + v.maxVersion()));
        // A KRaft Kafka broker always reports metadata.version (finalized and supported).
        assertTrue(finalized.containsKey("metadata.version"), "finalized features: " + finalized);
        assertTrue(supported.containsKey("metadata.version"), "supported features: " + supported);
        assertTrue(f.finalizedFeaturesEpoch().isPresent(), "finalized features epoch");
        f.finalizedFeatures().forEach((k, v) -> {
            var s = f.supportedFeatures().get(k);
            assertNotNull(s, "finalized " + k + " is supported");
            assertTrue(v.maxVersionLevel() <= s.maxVersion(), k);
        });
    }
}
