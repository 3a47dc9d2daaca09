package gregor.streams;

import java.io.InputStream;
import java.time.Duration;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;

import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.Serde;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.utils.Bytes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.KeyValue;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.Topology;
import org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Grouped;
import org.apache.kafka.streams.kstream.Joined;
import org.apache.kafka.streams.kstream.KGroupedStream;
import org.apache.kafka.streams.kstream.TimeWindows;
import org.apache.kafka.streams.state.WindowStore;
import org.apache.kafka.streams.kstream.KStream;
import org.apache.kafka.streams.kstream.KTable;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Named;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.processor.StateRestoreListener;
import org.apache.kafka.streams.state.KeyValueStore;

/**
 * The Kafka Streams application under test, run as its own JVM so the driver can SIGKILL it.
 *
 * <pre>
 *   orders (key order id, value "customerId|amount")
 *     -> map: re-key by customer id           (repartition topic APP-orders-by-customer-repartition)
 *     -> groupByKey().aggregate(count, sum, last order id)
 *                                             (RocksDB store customer-totals, changelog APP-customer-totals-changelog)
 *     -> toStream().leftJoin(customers KTable) (RocksDB store customers-store, changelog APP-customers-store-changelog)
 *     -> customer-totals (key customer id, value "count|sum|lastOrderId|customerName")
 *   the same re-keyed stream, windowed by event time (5 s tumbling windows, 1 h grace)
 *     -> count                                (RocksDB window store customer-window-counts, changelog
 *                                              APP-customer-window-counts-changelog, cleanup.policy=compact,delete)
 *     -> customer-window-counts (key "customerId@windowStart", value count)
 * </pre>
 *
 * Usage: OrdersApp bootstrap applicationId stateDir throttleMicrosPerRecord [transactionTimeoutMs (5000)
 *        [groupInstanceId (none: dynamic membership)]]
 * Prints machine-readable lines on stdout (STATE, RESTORE_START, RESTORE_END, UNCAUGHT) for the driver.
 * Exits when stdin closes (the driver died) and closes cleanly on SIGTERM.
 */
public final class OrdersApp {
    public static final String ORDERS = "orders";
    public static final String CUSTOMERS = "customers";
    public static final String OUTPUT = "customer-totals";
    public static final String REPARTITION_NAME = "orders-by-customer";
    public static final String TOTALS_STORE = "customer-totals";
    public static final String CUSTOMERS_STORE = "customers-store";
    public static final String WINDOW_OUTPUT = "customer-window-counts";
    public static final String WINDOW_STORE = "customer-window-counts";
    public static final long WINDOW_MS = 5000;

    private OrdersApp() {}

    static synchronized void say(String line) {
        System.out.println(line);
        System.out.flush();
    }

    public static Topology topology(long throttleMicros) {
        Serde<String> s = Serdes.String();
        StreamsBuilder b = new StreamsBuilder();
        KTable<String, String> customers = b.table(CUSTOMERS, Consumed.with(s, s),
                Materialized.<String, String, KeyValueStore<Bytes, byte[]>>as(CUSTOMERS_STORE)
                        .withKeySerde(s).withValueSerde(s));
        KStream<String, String> orders = b.stream(ORDERS, Consumed.with(s, s));
        KGroupedStream<String, String> byCustomer = orders
                .map((orderId, v) -> {
                    String[] f = v.split("\\|");
                    return KeyValue.pair(f[0], orderId + "|" + f[1]);
                }, Named.as("rekey-by-customer"))
                .groupByKey(Grouped.with(REPARTITION_NAME, s, s));
        // event-time tumbling windows: a window store whose changelog is cleanup.policy=compact,delete
        byCustomer.windowedBy(TimeWindows.ofSizeAndGrace(Duration.ofMillis(WINDOW_MS), Duration.ofHours(1)))
                .count(Named.as("window-counts"),
                        Materialized.<String, Long, WindowStore<Bytes, byte[]>>as(WINDOW_STORE)
                                .withKeySerde(s).withValueSerde(Serdes.Long()))
                .toStream(Named.as("window-counts-stream"))
                .map((wk, count) -> KeyValue.pair(wk.key() + "@" + wk.window().start(), Long.toString(count)),
                        Named.as("window-key"))
                .to(WINDOW_OUTPUT, Produced.with(s, s));
        KTable<String, String> totals = byCustomer
                .aggregate(() -> "0|0|",
                        (customer, orderValue, agg) -> {
                            if (throttleMicros > 0) {
                                long until = System.nanoTime() + throttleMicros * 1000;
                                while (System.nanoTime() < until) {
                                    try { Thread.sleep(0, 200_000); } catch (InterruptedException e) { break; }
                                }
                            }
                            String[] o = orderValue.split("\\|");
                            String[] a = agg.split("\\|", -1);
                            long count = Long.parseLong(a[0]) + 1;
                            long sum = Long.parseLong(a[1]) + Long.parseLong(o[1]);
                            return count + "|" + sum + "|" + o[0];
                        },
                        Named.as("totals"),
                        Materialized.<String, String, KeyValueStore<Bytes, byte[]>>as(TOTALS_STORE)
                                .withKeySerde(s).withValueSerde(s));
        totals.toStream(Named.as("totals-stream"))
                .leftJoin(customers, (agg, name) -> agg + "|" + (name == null ? "" : name),
                        Joined.with(s, s, s))
                .to(OUTPUT, Produced.with(s, s));
        return b.build();
    }

    public static void main(String[] args) throws Exception {
        String bootstrap = args[0];
        String appId = args[1];
        String stateDir = args[2];
        long throttleMicros = Long.parseLong(args[3]);

        Properties p = new Properties();
        p.put(StreamsConfig.APPLICATION_ID_CONFIG, appId);
        p.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        // STREAMS_GUARANTEE=at_least_once is only for checking that the driver does catch duplicates.
        p.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG,
                System.getenv().getOrDefault("STREAMS_GUARANTEE", StreamsConfig.EXACTLY_ONCE_V2));
        // Classic rebalance protocol (Streams 4.x default; KIP-1071's "streams" protocol is not advertised).
        p.put(StreamsConfig.GROUP_PROTOCOL_CONFIG, "classic");
        p.put(StreamsConfig.STATE_DIR_CONFIG, stateDir);
        p.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, 2);
        // with two instances running, each keeps a standby copy of the other's stores, fed by
        // read_committed fetches of the changelogs while they are written (and compacted)
        p.put(StreamsConfig.NUM_STANDBY_REPLICAS_CONFIG, 1);
        p.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, 200);
        // No record cache: every aggregate update is forwarded, so the output carries every count.
        p.put(StreamsConfig.STATESTORE_CACHE_MAX_BYTES_CONFIG, 0);
        p.put(StreamsConfig.REPARTITION_PURGE_INTERVAL_MS_CONFIG, 1000);
        p.put(StreamsConfig.REPLICATION_FACTOR_CONFIG, 1);
        // A killed instance's member must leave the group quickly (broker minimum is 6 s).
        p.put(StreamsConfig.consumerPrefix(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG), 6000);
        p.put(StreamsConfig.consumerPrefix(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG), 1500);
        // Transactions left open by a killed instance whose transactional.id is not reused
        // (wiped state dir = new process id) are aborted by the broker after this timeout.
        p.put(StreamsConfig.producerPrefix(ProducerConfig.TRANSACTION_TIMEOUT_CONFIG),
                args.length > 4 ? Integer.parseInt(args[4]) : 5000);
        // compressed transactional batches everywhere (repartition, changelogs, output): the broker's
        // cleaner must compact compressed transactional changelog batches correctly
        p.put(StreamsConfig.producerPrefix(ProducerConfig.COMPRESSION_TYPE_CONFIG),
                System.getenv().getOrDefault("STREAMS_APP_COMPRESSION", "lz4"));
        if (args.length > 5 && !args[5].isEmpty()) {
            // static membership: Streams gives each thread's consumer "<id>-<thread index>"
            p.put(StreamsConfig.consumerPrefix(ConsumerConfig.GROUP_INSTANCE_ID_CONFIG), args[5]);
        }

        KafkaStreams streams = new KafkaStreams(topology(throttleMicros), p);
        streams.setStateListener((now, before) -> say("STATE " + now));
        streams.setGlobalStateRestoreListener(new StateRestoreListener() {
            @Override
            public void onRestoreStart(TopicPartition tp, String store, long start, long end) {
                say("RESTORE_START " + store + " " + tp + " " + start + " " + end);
            }

            @Override
            public void onBatchRestored(TopicPartition tp, String store, long batchEnd, long n) {}

            @Override
            public void onRestoreEnd(TopicPartition tp, String store, long total) {
                say("RESTORE_END " + store + " " + tp + " " + total);
            }
        });
        streams.setUncaughtExceptionHandler(e -> {
            say("UNCAUGHT " + e.toString().replace('\n', ' '));
            e.printStackTrace();
            return StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse.REPLACE_THREAD;
        });

        CountDownLatch done = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            say("CLOSING");
            boolean ok = streams.close(Duration.ofSeconds(20));
            say("CLOSED " + ok);
            done.countDown();
        }));
        // The driver holds our stdin open; if it dies, stop at once (no orphans).
        Thread stdinWatch = new Thread(() -> {
            try {
                InputStream in = System.in;
                while (in.read() >= 0) { /* ignore */ }
            } catch (Exception ignored) {
            }
            say("STDIN_CLOSED");
            Runtime.getRuntime().halt(3);
        }, "stdin-watch");
        stdinWatch.setDaemon(true);
        stdinWatch.start();

        say("TOPOLOGY " + topology(throttleMicros).describe().toString().replace('\n', ' '));
        streams.start();
        done.await();
    }
}
