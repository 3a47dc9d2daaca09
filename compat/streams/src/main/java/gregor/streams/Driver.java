package gregor.streams;

import java.io.BufferedReader;
import java.io.File;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.io.PrintWriter;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.time.Duration;
import java.time.Instant;
import java.time.temporal.ChronoUnit;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Collections;
import java.util.Comparator;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Random;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.BooleanSupplier;
import java.util.stream.Collectors;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.ListConsumerGroupOffsetsOptions;
import org.apache.kafka.clients.admin.ListConsumerGroupOffsetsSpec;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

/**
 * The Kafka Streams compat suite: starts gregor, runs {@link OrdersApp} as a separate JVM, feeds it
 * orders, SIGKILLs it twice mid-stream (once restarting on the same state dir, once on a wiped one),
 * then checks the committed output record by record against what the input says it must be.
 *
 * Usage: Driver resultsJsonPath   (GREGOR_BIN names the broker binary; STREAMS_WORK the work dir)
 */
public final class Driver {
    static final String APP_ID = "gregor-orders";
    static final int PARTITIONS = 3;
    static final int NUM_CUSTOMERS = Integer.parseInt(env("STREAMS_CUSTOMERS", "25"));
    static final int NUM_ORDERS = Integer.parseInt(env("STREAMS_ORDERS", "4000"));
    static final long THROTTLE_MICROS = Long.parseLong(env("STREAMS_THROTTLE_MICROS", "1500"));
    static final long PRODUCE_SECONDS = Long.parseLong(env("STREAMS_PRODUCE_S", "20"));
    static final long DEADLINE_NANOS = System.nanoTime() + TimeUnit.SECONDS.toNanos(
            Long.parseLong(env("STREAMS_DEADLINE_S", "270")));

    static final int ZOMBIE_TXN_TIMEOUT_MS = 30_000;
    static final String STATIC_ID = "orders-static-a";
    static final long ZOMBIE_FREEZE_MS = 10_000;
    static final String REPARTITION = APP_ID + "-" + OrdersApp.REPARTITION_NAME + "-repartition";
    static final String TOTALS_CHANGELOG = APP_ID + "-" + OrdersApp.TOTALS_STORE + "-changelog";
    static final String WINDOW_CHANGELOG = APP_ID + "-" + OrdersApp.WINDOW_STORE + "-changelog";
    static final String CUSTOMERS_CHANGELOG = APP_ID + "-" + OrdersApp.CUSTOMERS_STORE + "-changelog";

    // ------------------------------------------------------------------ checks / results
    static final class Check {
        final String name, label, test;
        String status = "fail";
        /** A broker bug report this check is known to fail on: a failure is then an expected one. */
        String knownBug;
        String note = "not reached (an earlier step failed)";
        Check(String name, String test, String label) { this.name = name; this.test = test; this.label = label; }
    }

    final Map<String, Check> checks = new LinkedHashMap<>();
    final Path work;
    final String gregorBin;
    Process broker;
    String bootstrap;
    Admin admin;
    final List<App> apps = new CopyOnWriteArrayList<>();
    final List<String> log = new ArrayList<>();

    // the input, as the test knows it
    final Map<String, String> customerNames = new TreeMap<>();
    final Map<String, String> orderCustomer = new HashMap<>();
    final Map<String, Long> orderAmount = new HashMap<>();
    final Map<String, Long> orderTs = new HashMap<>();
    final Map<String, List<String>> ordersByCustomer = new TreeMap<>();
    final List<String> orderIds = new ArrayList<>();
    long tsBase;

    Driver(Path work, String gregorBin) {
        this.work = work;
        this.gregorBin = gregorBin;
        add("topology_output_exact", "testTopologyOutputExact",
                "re-key (repartition), RocksDB count/sum, windowed count, stream-table join: committed output equals the input's totals");
        add("exactly_once_across_sigkill", "testExactlyOnceAcrossSigkill",
                "exactly_once_v2 across 2 SIGKILLs mid-stream: every count 1..n exactly once, each order counted once (read_committed)");
        add("restore_from_changelog", "testRestoreFromChangelog",
                "wiped state dir: RocksDB stores restored from the compacted changelog, later output exact");
        add("internal_topics", "testInternalTopics",
                "Streams creates its repartition topic (delete) and changelogs (compact; window store compact,delete) via CreateTopics");
        add("zombie_fencing", "testZombieFencing",
                "instance SIGSTOPped past its session timeout with a transaction open; after SIGCONT it is fenced (KIP-447), output stays exact");
        add("static_membership", "testStaticMembership",
                "SIGKILLed static member (group.instance.id) restarted: it rejoins as the same static member, no session-timeout wait");
        add("broker_sigkill", "testBrokerSigkill",
                "broker SIGKILLed and restarted mid-stream: Streams and the idempotent producer carry on, output exact");
        add("group_survives_broker_restart", "testGroupSurvivesBrokerRestart",
                "classic group members keep their member id and generation across a broker restart (no fencing, no rebalance)");
        // (was an expected failure until gregor a86a931: /tmp/gregor-bugs/streams-classic-group-members-lost-on-restart.md)
        add("no_hanging_transactions", "testNoHangingTransactions",
                "after all instances stopped: ListTransactions shows no open Streams transaction, LSO = high watermark everywhere");
        add("transactional_offsets", "testTransactionalOffsets",
                "consumed offsets committed inside the transactions (KIP-447): group offsets = input end offsets");
        add("repartition_purge", "testRepartitionPurge",
                "Streams purges consumed repartition records (DeleteRecords): log start offset advances");
    }

    void add(String name, String test, String label) { checks.put(name, new Check(name, test, label)); }

    void pass(String name, String note) { Check c = checks.get(name); c.status = "pass"; c.note = note; }

    void fail(String name, String note) { Check c = checks.get(name); c.status = "fail"; c.note = note; }

    static String env(String k, String d) { String v = System.getenv(k); return v == null || v.isEmpty() ? d : v; }

    void say(String s) {
        String line = String.format("[%6.1fs] %s", (System.nanoTime() - START) / 1e9, s);
        System.out.println(line);
        System.out.flush();
        synchronized (log) { log.add(line); }
    }

    static final long START = System.nanoTime();

    static long remainingMs() { return Math.max(0, (DEADLINE_NANOS - System.nanoTime()) / 1_000_000); }

    static boolean waitFor(BooleanSupplier cond, long timeoutMs) throws InterruptedException {
        long end = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(Math.min(timeoutMs, remainingMs()));
        while (System.nanoTime() < end) {
            if (cond.getAsBoolean()) return true;
            Thread.sleep(100);
        }
        return cond.getAsBoolean();
    }

    // ------------------------------------------------------------------ broker
    /** SIGKILL the child if this JVM dies (util-linux setpriv execs the command: same pid). */
    static List<String> withPdeathsig(List<String> cmd) {
        if (!new File("/usr/bin/setpriv").canExecute()) return cmd;
        List<String> l = new ArrayList<>(List.of("/usr/bin/setpriv", "--pdeathsig", "KILL", "--"));
        l.addAll(cmd);
        return l;
    }

    static int freePort() throws IOException {
        try (ServerSocket s = new ServerSocket(0, 1, java.net.InetAddress.getByName("127.0.0.1"))) {
            return s.getLocalPort();
        }
    }

    int brokerPort;
    int brokerStarts;

    void startBroker() throws Exception {
        if (brokerPort == 0) {
            brokerPort = freePort();
            bootstrap = "127.0.0.1:" + brokerPort;
        }
        int port = brokerPort;
        Path data = work.resolve("broker-data");
        Files.createDirectories(data);
        List<String> cmd = new ArrayList<>(List.of(gregorBin,
                "--listeners", "PLAINTEXT://" + bootstrap, "--log-dirs", data.toString(), "--node-id", "1",
                // abort transactions of killed instances soon after their (5 s) timeout
                "--set", "transaction.abort.timed.out.transaction.cleanup.interval.ms=1000",
                // small segments and a busy cleaner: the changelogs really get compacted during the run
                "--set", "log.segment.bytes=" + env("STREAMS_SEGMENT_BYTES", "16384"),
                "--set", "log.cleaner.backoff.ms=1000"));
        ProcessBuilder pb = new ProcessBuilder(withPdeathsig(cmd));
        pb.environment().remove("GREGOR_BIN");
        pb.environment().putIfAbsent("RUST_BACKTRACE", "1");
        File logFile = work.resolve("broker.log").toFile();
        pb.redirectErrorStream(true).redirectOutput(ProcessBuilder.Redirect.appendTo(logFile));
        brokerStarts++;
        Files.writeString(logFile.toPath(), "\n===== driver: broker start #" + brokerStarts + "\n",
                java.nio.file.StandardOpenOption.CREATE, java.nio.file.StandardOpenOption.APPEND);
        say("starting broker (#" + brokerStarts + "): " + String.join(" ", cmd));
        broker = pb.start();
        long end = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
        while (System.nanoTime() < end) {
            if (!broker.isAlive()) throw new IllegalStateException("gregor exited with " + broker.exitValue()
                    + "; see " + logFile);
            try (Socket s = new Socket()) {
                s.connect(new InetSocketAddress("127.0.0.1", port), 300);
                return;
            } catch (IOException e) {
                Thread.sleep(50);
            }
        }
        throw new IllegalStateException("gregor did not listen on " + bootstrap + " within 20 s");
    }

    // ------------------------------------------------------------------ the Streams app process
    final class App {
        final int n;
        final Process proc;
        final OutputStream stdin;
        final List<String> lines = new CopyOnWriteArrayList<>();
        final Path stateDir;

        App(int n, Path stateDir, int txnTimeoutMs, String instanceId) throws IOException {
            this.n = n;
            this.stateDir = stateDir;
            String java = ProcessHandle.current().info().command().orElse("java");
            List<String> cmd = List.of(java, "-Xmx384m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
                    "-Dorg.slf4j.simpleLogger.defaultLogLevel=" + env("STREAMS_APP_LOG_LEVEL", "info"),
                    "-Dorg.slf4j.simpleLogger.showDateTime=true",
                    "-cp", System.getProperty("java.class.path"), OrdersApp.class.getName(),
                    bootstrap, APP_ID, stateDir.toString(), Long.toString(THROTTLE_MICROS),
                    Integer.toString(txnTimeoutMs), instanceId == null ? "" : instanceId);
            ProcessBuilder pb = new ProcessBuilder(withPdeathsig(cmd));
            pb.redirectError(ProcessBuilder.Redirect.appendTo(work.resolve("app-" + n + ".log").toFile()));
            proc = pb.start();
            stdin = proc.getOutputStream();   // held open: the app halts when it closes
            Thread t = new Thread(() -> {
                try (BufferedReader r = new BufferedReader(new InputStreamReader(proc.getInputStream(),
                        StandardCharsets.UTF_8));
                     PrintWriter w = new PrintWriter(Files.newBufferedWriter(work.resolve("app-" + n + ".out")))) {
                    String line;
                    while ((line = r.readLine()) != null) {
                        lines.add(line);
                        w.println(line);
                        w.flush();
                        if (line.startsWith("STATE") || line.startsWith("UNCAUGHT") || line.startsWith("CLOS")
                                || line.startsWith("RESTORE_END")) {
                            say("app#" + n + ": " + line);
                        }
                    }
                } catch (IOException ignored) {
                }
            }, "app-" + n + "-stdout");
            t.setDaemon(true);
            t.start();
            say("app#" + n + " started (pid " + proc.pid() + ", state dir " + stateDir + ")");
        }

        boolean saw(String prefix) { return lines.stream().anyMatch(l -> l.startsWith(prefix)); }

        void signal(String sig) throws IOException, InterruptedException {
            Process k = new ProcessBuilder("kill", "-" + sig, Long.toString(proc.pid())).inheritIO().start();
            k.waitFor(10, TimeUnit.SECONDS);
            say("app#" + n + " SIG" + sig);
        }

        /** Log lines of the app (its stderr) that show it was fenced or its transaction aborted. */
        long fencingLogLines() {
            try {
                return Files.readAllLines(work.resolve("app-" + n + ".log")).stream()
                        .filter(l -> l.contains("ProducerFenced") || l.contains("TaskMigrated")
                                || l.contains("INVALID_PRODUCER_EPOCH") || l.contains("ILLEGAL_GENERATION")
                                || l.contains("fenced") || l.contains("UNKNOWN_MEMBER_ID")
                                || l.contains("InvalidProducerEpoch"))
                        .count();
            } catch (IOException e) {
                return -1;
            }
        }

        void sigkill() throws InterruptedException {
            proc.destroyForcibly();   // SIGKILL on Linux
            proc.waitFor(10, TimeUnit.SECONDS);
            say("app#" + n + " SIGKILLed (exit " + (proc.isAlive() ? "?" : proc.exitValue()) + ")");
        }

        boolean sigterm() throws InterruptedException {
            // SIGTERM (the app's shutdown hook closes KafkaStreams). Not Process.destroy(): that also
            // closes the app's stdin, which makes it halt at once.
            proc.toHandle().destroy();
            boolean exited = proc.waitFor(40, TimeUnit.SECONDS);
            if (!exited) {
                say("app#" + n + " did not exit within 40 s of SIGTERM; SIGKILL");
                proc.destroyForcibly();
                proc.waitFor(10, TimeUnit.SECONDS);
            }
            say("app#" + n + " stopped (exit " + (proc.isAlive() ? "?" : proc.exitValue()) + ")");
            return exited;
        }

        /** store -> records restored, summed over partitions (from the app's RESTORE_END lines). */
        Map<String, Long> restored() {
            Map<String, Long> m = new TreeMap<>();
            for (String l : lines) {
                if (l.startsWith("RESTORE_END ")) {
                    String[] f = l.split(" ");
                    m.merge(f[1], Long.parseLong(f[3]), Long::sum);
                }
            }
            return m;
        }

        List<String> uncaught() {
            return lines.stream().filter(l -> l.startsWith("UNCAUGHT")).collect(Collectors.toList());
        }
    }

    App startApp(Path stateDir) throws IOException {
        return startApp(stateDir, 5000, null);
    }

    App startApp(Path stateDir, int txnTimeoutMs, String instanceId) throws IOException {
        App a = new App(apps.size() + 1, stateDir, txnTimeoutMs, instanceId);
        apps.add(a);
        return a;
    }

    // ------------------------------------------------------------------ output collector
    record Out(int partition, long offset, long timestamp, String key, String value) {}

    final List<Out> output = new CopyOnWriteArrayList<>();
    final List<Out> windows = new CopyOnWriteArrayList<>();
    final AtomicBoolean stopCollector = new AtomicBoolean();
    final AtomicReference<Throwable> collectorError = new AtomicReference<>();
    Thread collector;

    void startCollector() {
        collector = new Thread(() -> {
            try (KafkaConsumer<String, String> c = new KafkaConsumer<>(consumerProps("read_committed"))) {
                List<TopicPartition> tps = new ArrayList<>();
                for (int p = 0; p < PARTITIONS; p++) {
                    tps.add(new TopicPartition(OrdersApp.OUTPUT, p));
                    tps.add(new TopicPartition(OrdersApp.WINDOW_OUTPUT, p));
                }
                c.assign(tps);
                c.seekToBeginning(tps);
                while (!stopCollector.get()) {
                    for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(200))) {
                        (r.topic().equals(OrdersApp.OUTPUT) ? output : windows)
                                .add(new Out(r.partition(), r.offset(), r.timestamp(), r.key(), r.value()));
                    }
                }
            } catch (Throwable t) {
                collectorError.set(t);
                say("output collector failed: " + t);
            }
        }, "output-collector");
        collector.setDaemon(true);
        collector.start();
    }

    Properties consumerProps(String isolation) {
        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, isolation);
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false);
        p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        return p;
    }

    /** Both outputs reached the final counts the given orders imply. */
    boolean complete(Map<String, List<String>> expectedOrders) {
        Map<String, Integer> counts = new HashMap<>();
        expectedOrders.forEach((k, v) -> counts.put(k, v.size()));
        if (!outputComplete(counts)) return false;
        Map<String, Long> wexp = windowCounts(expectedOrders);
        Map<String, Long> max = new HashMap<>();
        for (Out o : windows) max.merge(o.key(), Long.parseLong(o.value()), Math::max);
        for (Map.Entry<String, Long> e : wexp.entrySet()) {
            if (max.getOrDefault(e.getKey(), 0L) < e.getValue()) return false;
        }
        return true;
    }

    /** "customer@windowStart" -> number of orders, computed from the input. */
    Map<String, Long> windowCounts(Map<String, List<String>> expectedOrders) {
        Map<String, Long> m = new TreeMap<>();
        for (List<String> ids : expectedOrders.values()) {
            for (String oid : ids) {
                long ts = orderTs.get(oid);
                m.merge(orderCustomer.get(oid) + "@" + (ts - ts % OrdersApp.WINDOW_MS), 1L, Long::sum);
            }
        }
        return m;
    }

    /** Per window key, in log order the counts must be exactly 1..n, n = the input's count. */
    List<String> verifyWindows(List<Out> out, Map<String, List<String>> expectedOrders, Set<String> kinds) {
        List<String> problems = new ArrayList<>();
        Map<String, Long> exp = windowCounts(expectedOrders);
        Map<String, Long> wmaxTs = new HashMap<>();
        for (List<String> ids : expectedOrders.values()) {
            for (String oid : ids) {
                long ts = orderTs.get(oid);
                wmaxTs.merge(orderCustomer.get(oid) + "@" + (ts - ts % OrdersApp.WINDOW_MS), ts, Math::max);
            }
        }
        Map<String, List<Out>> byKey = new TreeMap<>();
        for (Out o : out) byKey.computeIfAbsent(o.key(), k -> new ArrayList<>()).add(o);
        for (String k : byKey.keySet()) {
            if (!exp.containsKey(k)) problems.add("window output for unexpected key " + k);
        }
        for (Map.Entry<String, Long> e : exp.entrySet()) {
            List<Out> got = new ArrayList<>(byKey.getOrDefault(e.getKey(), List.of()));
            got.sort(Comparator.comparingLong(Out::offset));
            for (int i = 0; i < got.size(); i++) {
                long c = Long.parseLong(got.get(i).value());
                if (c != i + 1) {
                    kinds.add(c <= i ? "duplicate" : "gap");
                    problems.add("window " + e.getKey() + ": record #" + (i + 1) + " (offset " + got.get(i).offset()
                            + ") has count " + c);
                    break;
                }
            }
            if (got.size() != e.getValue()) {
                problems.add("window " + e.getKey() + ": " + got.size() + " updates, expected " + e.getValue());
            } else if (!got.isEmpty() && got.get(got.size() - 1).timestamp() != wmaxTs.get(e.getKey())) {
                problems.add("window " + e.getKey() + ": last update has timestamp " + got.get(got.size() - 1).timestamp()
                        + ", expected " + wmaxTs.get(e.getKey()) + " (newest order in the window)");
            }
        }
        return problems;
    }

    /** Both outputs against the input (empty = exact). */
    List<String> verifyAll(Map<String, List<String>> expectedOrders, Set<String> kinds) {
        List<String> problems = verify(new ArrayList<>(output), expectedOrders, kinds);
        problems.addAll(verifyWindows(new ArrayList<>(windows), expectedOrders, kinds));
        return problems;
    }

    /** Output records whose count reached each customer's expected final count. */
    boolean outputComplete(Map<String, Integer> expectedCounts) {
        Map<String, Long> max = new HashMap<>();
        for (Out o : output) {
            long c = Long.parseLong(o.value().split("\\|", -1)[0]);
            max.merge(o.key(), c, Math::max);
        }
        for (Map.Entry<String, Integer> e : expectedCounts.entrySet()) {
            if (max.getOrDefault(e.getKey(), 0L) < e.getValue()) return false;
        }
        return true;
    }

    // ------------------------------------------------------------------ input
    KafkaProducer<String, String> producer() {
        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, true);
        p.put(ProducerConfig.ACKS_CONFIG, "all");
        p.put(ProducerConfig.LINGER_MS_CONFIG, 5);
        p.put(ProducerConfig.COMPRESSION_TYPE_CONFIG, env("STREAMS_INPUT_COMPRESSION", "zstd"));
        p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        return new KafkaProducer<>(p);
    }

    void makeInput() {
        Random rnd = new Random(20261202L);
        for (int c = 0; c < NUM_CUSTOMERS; c++) {
            String id = String.format("cust-%03d", c);
            customerNames.put(id, "Customer \u2116" + c + " " + (1000 + rnd.nextInt(9000)) + " \u00e4\u00df\u00e9");
            ordersByCustomer.put(id, new ArrayList<>());
        }
        List<String> ids = new ArrayList<>(customerNames.keySet());
        for (int i = 0; i < NUM_ORDERS; i++) {
            String oid = String.format("order-%05d", i);
            // skewed: a few customers get many orders
            int ci = rnd.nextInt(3) == 0 ? rnd.nextInt(4) : rnd.nextInt(NUM_CUSTOMERS);
            String cust = ids.get(ci);
            long amount = 1 + rnd.nextInt(500);
            orderIds.add(oid);
            orderCustomer.put(oid, cust);
            orderAmount.put(oid, amount);
            ordersByCustomer.get(cust).add(oid);
        }
    }

    final AtomicReference<Throwable> produceError = new AtomicReference<>();
    final AtomicBoolean producing = new AtomicBoolean();

    Thread produceOrders(List<String> ids, long overMs) {
        producing.set(true);
        Thread t = new Thread(() -> {
            try (KafkaProducer<String, String> p = producer()) {
                int chunks = 50;
                int per = Math.max(1, (ids.size() + chunks - 1) / chunks);
                for (int i = 0; i < ids.size(); i++) {
                    String oid = ids.get(i);
                    p.send(new ProducerRecord<>(OrdersApp.ORDERS, null, orderTs.get(oid), oid,
                                    orderCustomer.get(oid) + "|" + orderAmount.get(oid)),
                            (md, e) -> { if (e != null) produceError.compareAndSet(null, e); });
                    if ((i + 1) % per == 0) {
                        p.flush();
                        Thread.sleep(overMs / chunks);
                    }
                }
                p.flush();
            } catch (Throwable e) {
                produceError.compareAndSet(null, e);
            } finally {
                producing.set(false);
            }
        }, "orders-producer");
        t.start();
        return t;
    }

    // ------------------------------------------------------------------ verification
    record Parsed(int partition, long offset, long timestamp, long count, long sum, String orderId, String name) {}

    static Parsed parse(Out o) {
        String[] f = o.value().split("\\|", -1);
        return new Parsed(o.partition(), o.offset(), o.timestamp(), Long.parseLong(f[0]), Long.parseLong(f[1]), f[2],
                f.length > 3 ? f[3] : "");
    }

    /** Verifies the committed output against the input; returns problems (empty = exact). */
    List<String> verify(List<Out> out, Map<String, List<String>> expectedOrders, Set<String> problemsKinds) {
        List<String> problems = new ArrayList<>();
        Map<String, List<Parsed>> byKey = new TreeMap<>();
        for (Out o : out) byKey.computeIfAbsent(o.key(), k -> new ArrayList<>()).add(parse(o));
        for (String k : byKey.keySet()) {
            if (!expectedOrders.containsKey(k)) problems.add("output for unknown key " + k);
        }
        for (Map.Entry<String, List<String>> e : expectedOrders.entrySet()) {
            String cust = e.getKey();
            List<String> exp = e.getValue();
            List<Parsed> got = new ArrayList<>(byKey.getOrDefault(cust, List.of()));
            got.sort(Comparator.comparingLong(Parsed::offset));
            Set<Integer> parts = got.stream().map(Parsed::partition).collect(Collectors.toSet());
            if (parts.size() > 1) problems.add(cust + ": output in several partitions " + parts);
            // in log order the counts must be exactly 1, 2, ..., n
            Set<String> seenOrders = new HashSet<>();
            long prevSum = 0;
            long maxTs = Long.MIN_VALUE;
            for (int i = 0; i < got.size(); i++) {
                Parsed p = got.get(i);
                if (p.count() != i + 1) {
                    problemsKinds.add(p.count() <= i ? "duplicate" : "gap");
                    problems.add(cust + ": record #" + (i + 1) + " (offset " + p.offset() + ") has count " + p.count()
                            + " (" + (p.count() <= i ? "duplicate/reset" : "gap") + ")");
                    break;
                }
                if (!cust.equals(orderCustomer.get(p.orderId()))) {
                    problems.add(cust + ": count " + p.count() + " names order " + p.orderId() + " of another customer");
                    break;
                }
                if (!seenOrders.add(p.orderId())) {
                    problemsKinds.add("duplicate");
                    problems.add(cust + ": order " + p.orderId() + " counted twice");
                    break;
                }
                if (p.sum() - prevSum != orderAmount.get(p.orderId())) {
                    problems.add(cust + ": count " + p.count() + " adds " + (p.sum() - prevSum) + " but order "
                            + p.orderId() + " has amount " + orderAmount.get(p.orderId()));
                    break;
                }
                if (!p.name().isEmpty() && !p.name().equals(customerNames.get(cust))) {
                    problems.add(cust + ": joined name '" + p.name() + "' != '" + customerNames.get(cust) + "'");
                    break;
                }
                // Streams stamps an aggregate with the newest input timestamp so far (and the
                // stream-table join keeps the stream side's): the broker must keep CreateTime intact
                maxTs = Math.max(maxTs, orderTs.get(p.orderId()));
                if (p.timestamp() != maxTs) {
                    problems.add(cust + ": count " + p.count() + " has timestamp " + p.timestamp() + ", expected " + maxTs
                            + " (newest order so far)");
                    break;
                }
                prevSum = p.sum();
            }
            if (got.size() != exp.size()) {
                problems.add(cust + ": " + got.size() + " output records, expected " + exp.size());
            }
            if (!seenOrders.equals(new HashSet<>(exp)) && problems.isEmpty()) {
                problems.add(cust + ": the counted orders differ from the customer's orders");
            }
            long expSum = exp.stream().mapToLong(orderAmount::get).sum();
            if (!got.isEmpty()) {
                Parsed last = got.get(got.size() - 1);
                if (last.count() != exp.size() || last.sum() != expSum) {
                    problems.add(cust + ": final count/sum " + last.count() + "/" + last.sum() + ", expected "
                            + exp.size() + "/" + expSum);
                }
                if (!customerNames.get(cust).equals(last.name())) {
                    problems.add(cust + ": final joined name '" + last.name() + "', expected '"
                            + customerNames.get(cust) + "'");
                }
            } else if (!exp.isEmpty()) {
                problems.add(cust + ": no output, expected count/sum " + exp.size() + "/" + expSum);
            }
        }
        return problems;
    }

    static String firstFew(List<String> l) {
        return l.size() <= 4 ? String.join("; ", l) : String.join("; ", l.subList(0, 4)) + "; ... (" + l.size() + " problems)";
    }

    // ------------------------------------------------------------------ the scenario
    void run() throws Exception {
        makeInput();
        startBroker();
        Properties ap = new Properties();
        ap.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        admin = Admin.create(ap);
        admin.createTopics(List.of(
                new NewTopic(OrdersApp.ORDERS, PARTITIONS, (short) 1),
                new NewTopic(OrdersApp.CUSTOMERS, PARTITIONS, (short) 1),
                new NewTopic(OrdersApp.OUTPUT, PARTITIONS, (short) 1),
                new NewTopic(OrdersApp.WINDOW_OUTPUT, PARTITIONS, (short) 1))).all().get(30, TimeUnit.SECONDS);
        try (KafkaProducer<String, String> p = producer()) {
            for (Map.Entry<String, String> e : customerNames.entrySet()) {
                p.send(new ProducerRecord<>(OrdersApp.CUSTOMERS, e.getKey(), e.getValue())).get(30, TimeUnit.SECONDS);
            }
        }
        say("input: " + NUM_CUSTOMERS + " customers, " + NUM_ORDERS + " orders; orders per customer "
                + ordersByCustomer.values().stream().map(List::size).collect(Collectors.toList()));
        // event time: after the customers (the join sees them), 10 ms apart, within the broker's
        // message.timestamp.after.max.ms
        tsBase = System.currentTimeMillis() + 1000;
        for (int i = 0; i < orderIds.size(); i++) orderTs.put(orderIds.get(i), tsBase + i * 10L);
        startCollector();

        Path stateA = work.resolve("state-a");
        // the first incarnation and its restart are static members (group.instance.id): the restart
        // takes over the killed incarnation's membership at once (no session timeout to wait for)
        App app1 = startApp(stateA, 5000, STATIC_ID);
        if (!waitFor(() -> app1.saw("STATE RUNNING"), 90_000)) throw new IllegalStateException("app#1 never RUNNING");
        Thread prod = produceOrders(orderIds, PRODUCE_SECONDS * 1000);

        List<String> killNotes = new ArrayList<>();
        int killsMidStream = 0;
        // kill #1, then restart on the same state dir (same process id, so the same transactional.ids)
        waitFor(() -> output.size() >= NUM_ORDERS / 5, 90_000);
        int at1 = output.size();
        app1.sigkill();
        killNotes.add("kill 1 at " + at1 + "/" + NUM_ORDERS + " committed outputs");
        if (at1 > 0 && at1 < NUM_ORDERS) killsMidStream++;
        App app2 = startApp(stateA, 5000, STATIC_ID);
        staticMembership(app2);
        // kill #2, then restart on a wiped (new, empty) state dir: new process id, new transactional.ids,
        // every store restored from its changelog; plus a second instance (tasks split between two JVMs)
        waitFor(() -> output.size() >= NUM_ORDERS * 2 / 5, 90_000);
        int at2 = output.size();
        app2.sigkill();
        killNotes.add("kill 2 at " + at2 + "/" + NUM_ORDERS);
        if (at2 > at1 && at2 < NUM_ORDERS) killsMidStream++;
        // app#3's transactions outlive its freeze below: it comes back as a zombie with an open transaction
        // and a stale group generation, which the broker must fence (KIP-447: TxnOffsetCommit carries the
        // generation and member id).
        App app3 = startApp(work.resolve("state-b"), ZOMBIE_TXN_TIMEOUT_MS, null);
        App app3b = startApp(work.resolve("state-d"));
        // zombie: freeze app#3 past its session timeout (6 s) but within its transaction timeout, then thaw it
        boolean bothRunning = waitFor(() -> app3.saw("STATE RUNNING") && app3b.saw("STATE RUNNING"), 90_000);
        waitFor(() -> output.size() >= NUM_ORDERS * 3 / 5, 90_000);
        int at3 = output.size();
        boolean producingAtStop = producing.get();
        long fenceBefore = app3.fencingLogLines();
        app3.signal("STOP");
        Thread.sleep(Math.min(ZOMBIE_FREEZE_MS, remainingMs()));
        int duringStop = output.size();
        app3.signal("CONT");
        String zombieNote = "app#3 (transaction.timeout.ms=" + ZOMBIE_TXN_TIMEOUT_MS + ") SIGSTOPped for "
                + ZOMBIE_FREEZE_MS / 1000 + " s at " + at3 + "/" + NUM_ORDERS + " outputs (producer running: "
                + producingAtStop + ", both instances were RUNNING: " + bothRunning + "), "
                + (duringStop - at3) + " outputs committed by app#4 meanwhile";
        killNotes.add("SIGSTOP/SIGCONT at " + at3);
        prod.join(Math.max(1, remainingMs()));
        if (produceError.get() != null) throw new IllegalStateException("producing orders failed: " + produceError.get());
        boolean complete = waitFor(() -> complete(ordersByCustomer), 150_000);
        Thread.sleep(1500);   // anything extra (a duplicate) would arrive now
        long fenceAfter = app3.fencingLogLines();
        zombieNote += "; app#3 logged " + (fenceAfter - fenceBefore) + " fencing/migration lines after SIGCONT";
        say("committed output: " + output.size() + " records (complete: " + complete + "); " + String.join("; ", killNotes));
        say(zombieNote);
        Map<String, Long> restored3 = new TreeMap<>(app3.restored());
        app3b.restored().forEach((k, v) -> restored3.merge(k, v, Long::sum));
        say("app#3 + app#3b restored " + restored3);
        app3.sigterm();
        app3b.sigterm();

        // ---- checks on the main run
        List<Out> mainOut = new ArrayList<>(output);
        List<Out> mainWin = new ArrayList<>(windows);
        Set<String> kinds = new HashSet<>();
        List<String> problems = verifyAll(ordersByCustomer, kinds);
        List<String> uncaught = new ArrayList<>();
        for (App a : apps) uncaught.addAll(a.uncaught());
        long ruCount = countReadUncommitted();
        // a fresh read_committed consumer must see exactly what the live one saw
        List<Out> reread = readAll(OrdersApp.OUTPUT, "read_committed");
        List<Out> rereadWin = readAll(OrdersApp.WINDOW_OUTPUT, "read_committed");
        boolean rereadSame = reread.size() == mainOut.size() && new HashSet<>(mainOut).equals(new HashSet<>(reread))
                && rereadWin.size() == mainWin.size() && new HashSet<>(mainWin).equals(new HashSet<>(rereadWin));
        String info = mainOut.size() + " totals and " + mainWin.size() + " window-count records (" + windowCounts(ordersByCustomer).size()
                + " windows) for " + NUM_ORDERS + " orders; "
                + String.join("; ", killNotes) + "; read_uncommitted sees " + ruCount + " records (aborted included)";
        say("verification: " + (problems.isEmpty() ? "exact" : firstFew(problems)));
        if (problems.isEmpty() && complete && uncaught.isEmpty()) {
            pass("topology_output_exact", NUM_CUSTOMERS + " customers, " + NUM_ORDERS + " orders: final count, sum, joined name, "
                    + "window counts and record timestamps exact");
        } else {
            fail("topology_output_exact", (complete ? "" : "output incomplete after the wait; ")
                    + (uncaught.isEmpty() ? "" : "uncaught Streams exceptions: " + uncaught.get(0) + "; ")
                    + firstFew(problems));
        }
        if (killsMidStream < 2) {
            fail("exactly_once_across_sigkill", "the app was not killed twice mid-stream: " + String.join("; ", killNotes));
        } else if (!problems.isEmpty()) {
            fail("exactly_once_across_sigkill", (kinds.isEmpty() ? "" : "kinds: " + kinds + "; ") + firstFew(problems)
                    + "; " + info);
        } else if (!complete) {
            fail("exactly_once_across_sigkill", "output incomplete: " + info);
        } else if (!rereadSame) {
            fail("exactly_once_across_sigkill", "a fresh read_committed consumer read " + reread.size() + "+" + rereadWin.size()
                    + " records, the live one " + mainOut.size() + "+" + mainWin.size() + " (different records)");
        } else {
            pass("exactly_once_across_sigkill", info);
        }
        if (!bothRunning) {
            fail("zombie_fencing", "the two instances never both reached RUNNING; " + zombieNote);
        } else if (!problems.isEmpty() || !complete) {
            fail("zombie_fencing", "output not exact (see exactly_once_across_sigkill); " + zombieNote);
        } else if (fenceAfter - fenceBefore <= 0) {
            fail("zombie_fencing", "the thawed instance was never fenced (no ProducerFenced/TaskMigrated/UNKNOWN_MEMBER_ID "
                    + "in its log); " + zombieNote);
        } else if (duringStop <= at3 && producingAtStop) {
            fail("zombie_fencing", "no progress while app#3 was frozen (its tasks did not move to app#4); " + zombieNote);
        } else {
            pass("zombie_fencing", zombieNote);
        }

        // ---- internal topics, offsets, purge (the app is stopped; the group is empty)
        checkInternalTopics();
        checkOffsets();
        checkPurge();

        // ---- restore: one more wiped state dir, then one probe order per customer
        Path stateC = work.resolve("state-c");
        App app4 = startApp(stateC);
        boolean running4 = waitFor(() -> app4.saw("STATE RUNNING"), 90_000);
        Map<String, List<String>> withProbes = new TreeMap<>();
        ordersByCustomer.forEach((k, v) -> withProbes.put(k, new ArrayList<>(v)));
        List<String> probes = new ArrayList<>();
        int i = 0;
        for (String cust : customerNames.keySet()) {
            String oid = String.format("probe-%03d", i++);
            orderCustomer.put(oid, cust);
            orderAmount.put(oid, 10_000L + i);
            orderTs.put(oid, tsBase + NUM_ORDERS * 10L + 5_000 + i);
            withProbes.get(cust).add(oid);
            probes.add(oid);
        }
        Thread prod2 = produceOrders(probes, 0);
        prod2.join(Math.max(1, remainingMs()));
        boolean probeDone = waitFor(() -> complete(withProbes), 90_000);
        Thread.sleep(1500);
        Map<String, Long> restored4 = app4.restored();
        List<String> probeProblems = verifyAll(withProbes, new HashSet<>());
        long totals3 = restored3.getOrDefault(OrdersApp.TOTALS_STORE, 0L);
        long totals4 = restored4.getOrDefault(OrdersApp.TOTALS_STORE, 0L);
        long cust4 = restored4.getOrDefault(OrdersApp.CUSTOMERS_STORE, 0L);
        String rnote = "after kill 2 on a wiped state dir: restored " + restored3 + "; after a clean stop, a new instance on a wiped state dir restored "
                + restored4 + " (compacted: " + NUM_ORDERS + " updates written); probe order per customer counted on top of the restored totals";
        if (!running4) {
            fail("restore_from_changelog", "the probe instance (wiped state dir) never reached RUNNING");
        } else if (totals3 <= 0 || totals4 < NUM_CUSTOMERS || cust4 < NUM_CUSTOMERS
                || restored4.getOrDefault(OrdersApp.WINDOW_STORE, 0L) <= 0) {
            fail("restore_from_changelog", "restore listener did not report the expected restores: " + rnote);
        } else if (totals4 >= NUM_ORDERS) {
            // 4000+ updates of 25 keys went into the changelog: with 16 KiB segments the cleaner must
            // have compacted them by now, or this was not a restore from a compacted changelog
            fail("restore_from_changelog", "the changelog was never compacted (restored " + totals4
                    + " of >= " + NUM_ORDERS + " updates); " + rnote);
        } else if (!probeDone || !probeProblems.isEmpty()) {
            fail("restore_from_changelog", (probeDone ? "" : "probe outputs missing; ") + firstFew(probeProblems) + "; " + rnote);
        } else {
            pass("restore_from_changelog", rnote);
        }

        // ---- the broker itself is SIGKILLed and restarted while the app processes more orders
        brokerCrash(app4, withProbes);
        app4.sigterm();
        checkNoHangingTransactions();
    }

    /** After every instance stopped: no transaction left open anywhere (LSO = high watermark). */
    void checkNoHangingTransactions() {
        try {
            List<String> topics = List.of(OrdersApp.OUTPUT, OrdersApp.WINDOW_OUTPUT, REPARTITION, TOTALS_CHANGELOG,
                    WINDOW_CHANGELOG, CUSTOMERS_CHANGELOG);
            Map<TopicPartition, OffsetSpec> q = new HashMap<>();
            for (String t : topics) for (int i = 0; i < PARTITIONS; i++) q.put(new TopicPartition(t, i), OffsetSpec.latest());
            List<String> problems = new ArrayList<>();
            // the transaction coordinator times out and aborts what the killed instances left open
            // (5 s); give it a few seconds
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(15);
            while (true) {
                problems.clear();
                var ru = admin.listOffsets(q, new org.apache.kafka.clients.admin.ListOffsetsOptions(
                        org.apache.kafka.common.IsolationLevel.READ_UNCOMMITTED)).all().get(30, TimeUnit.SECONDS);
                var rc = admin.listOffsets(q, new org.apache.kafka.clients.admin.ListOffsetsOptions(
                        org.apache.kafka.common.IsolationLevel.READ_COMMITTED)).all().get(30, TimeUnit.SECONDS);
                for (TopicPartition tp : q.keySet()) {
                    long hw = ru.get(tp).offset(), lso = rc.get(tp).offset();
                    if (hw != lso) problems.add(tp + " LSO " + lso + " < high watermark " + hw);
                }
                var listed = admin.listTransactions().all().get(30, TimeUnit.SECONDS);
                List<String> ids = listed.stream().map(l -> l.transactionalId()).filter(id -> id.startsWith(APP_ID))
                        .collect(Collectors.toList());
                if (ids.isEmpty()) problems.add("ListTransactions shows no transactional id of " + APP_ID);
                for (var l : listed) {
                    var st = l.state();
                    if (l.transactionalId().startsWith(APP_ID)
                            && st != org.apache.kafka.clients.admin.TransactionState.COMPLETE_COMMIT
                            && st != org.apache.kafka.clients.admin.TransactionState.COMPLETE_ABORT
                            && st != org.apache.kafka.clients.admin.TransactionState.EMPTY) {
                        problems.add(l.transactionalId() + " is " + st);
                    }
                }
                if (problems.isEmpty() || System.nanoTime() > deadline) {
                    String note = ids.size() + " transactional ids of " + APP_ID + " listed, none open; LSO = high watermark on "
                            + q.size() + " partitions of the output, repartition and changelog topics";
                    if (problems.isEmpty()) pass("no_hanging_transactions", note);
                    else fail("no_hanging_transactions", firstFew(problems));
                    return;
                }
                Thread.sleep(1000);
            }
        } catch (Exception e) {
            fail("no_hanging_transactions", "AdminClient: " + e);
        }
    }

    void brokerCrash(App app, Map<String, List<String>> before) throws Exception {
        Map<String, List<String>> expected = new TreeMap<>();
        before.forEach((k, v) -> expected.put(k, new ArrayList<>(v)));
        List<String> late = new ArrayList<>();
        Random rnd = new Random(7);
        List<String> custs = new ArrayList<>(customerNames.keySet());
        int lateN = NUM_ORDERS / 4;
        for (int i = 0; i < lateN; i++) {
            String oid = String.format("late-%05d", i);
            String cust = custs.get(rnd.nextInt(custs.size()));
            orderCustomer.put(oid, cust);
            orderAmount.put(oid, 1L + rnd.nextInt(500));
            orderTs.put(oid, tsBase + NUM_ORDERS * 10L + 10_000 + i * 10L);
            expected.get(cust).add(oid);
            late.add(oid);
        }
        int base = output.size();
        long fencedBefore = app.fencingLogLines();
        int restoresBefore = (int) app.lines.stream().filter(l -> l.startsWith("RESTORE_START")).count();
        produceError.set(null);
        Thread prod = produceOrders(late, 8_000);
        waitFor(() -> output.size() >= base + lateN * 2 / 5, 60_000);
        int at = output.size() - base;
        broker.destroyForcibly();
        broker.waitFor(10, TimeUnit.SECONDS);
        say("broker SIGKILLed at " + at + "/" + lateN + " late outputs; restarting it on the same data dir");
        startBroker();
        prod.join(Math.max(1, remainingMs()));
        boolean complete = waitFor(() -> complete(expected), 120_000);
        Thread.sleep(1500);
        List<String> problems = verifyAll(expected, new HashSet<>());
        List<String> uncaught = app.uncaught();
        String note = "broker SIGKILLed at " + at + "/" + lateN + " outputs of a second batch, restarted on the same data dir; "
                + (output.size() - base) + " outputs after it";
        say("after the broker crash: " + (problems.isEmpty() ? "exact" : firstFew(problems)));
        if (produceError.get() != null) {
            fail("broker_sigkill", "the idempotent producer failed across the broker restart: " + produceError.get() + "; " + note);
        } else if (!complete || !problems.isEmpty() || !uncaught.isEmpty()) {
            fail("broker_sigkill", (complete ? "" : "output incomplete; ")
                    + (uncaught.isEmpty() ? "" : "uncaught: " + uncaught.get(0) + "; ") + firstFew(problems) + "; " + note);
        } else if (at <= 0 || at >= lateN) {
            fail("broker_sigkill", "the broker was not killed mid-stream; " + note);
        } else {
            pass("broker_sigkill", note);
        }
        long fenced = app.fencingLogLines() - fencedBefore;
        long restores = app.lines.stream().filter(l -> l.startsWith("RESTORE_START")).count() - restoresBefore;
        if (fenced == 0 && restores == 0) {
            pass("group_survives_broker_restart", "no fencing, no restore in the app after the broker restart");
        } else {
            fail("group_survives_broker_restart", "after the broker restart the app logged " + fenced
                    + " fencing lines (UNKNOWN_MEMBER_ID: 'The coordinator is not aware of this member') and restored "
                    + restores + " store partitions: gregor reloads classic groups without their members");
        }
    }

    List<Out> readAll(String topic, String isolation) {
        List<Out> out = new ArrayList<>();
        try (KafkaConsumer<String, String> c = new KafkaConsumer<>(consumerProps(isolation))) {
            List<TopicPartition> tps = new ArrayList<>();
            for (int i = 0; i < PARTITIONS; i++) tps.add(new TopicPartition(topic, i));
            c.assign(tps);
            c.seekToBeginning(tps);
            Map<TopicPartition, Long> end = c.endOffsets(tps);
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
            while (System.nanoTime() < deadline) {
                for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(200))) {
                    out.add(new Out(r.partition(), r.offset(), r.timestamp(), r.key(), r.value()));
                }
                boolean done = true;
                for (TopicPartition tp : tps) if (c.position(tp) < end.get(tp)) done = false;
                if (done) break;
            }
        } catch (Exception e) {
            say("read " + isolation + " failed: " + e);
        }
        return out;
    }

    /** The restarted static incarnation is in the group under its instance ids, and got there fast. */
    void staticMembership(App app) {
        try {
            long t0 = System.nanoTime();
            boolean running = waitFor(() -> app.saw("STATE RUNNING"), 60_000);
            double secs = (System.nanoTime() - t0) / 1e9;
            // JVM start, restore and rebalance, but no 6 s session timeout of the killed incarnation
            var members = admin.describeConsumerGroups(List.of(APP_ID)).all().get(30, TimeUnit.SECONDS)
                    .get(APP_ID).members();
            List<String> ids = members.stream().map(m -> m.groupInstanceId().orElse("-")).sorted()
                    .collect(Collectors.toList());
            List<String> want = List.of(STATIC_ID + "-1", STATIC_ID + "-2");
            String note = "restart RUNNING after " + String.format("%.1f", secs) + " s; group members' instance ids " + ids;
            say("static membership: " + note);
            if (!running) {
                fail("static_membership", "the restarted static member never reached RUNNING; " + note);
            } else if (!ids.equals(want)) {
                fail("static_membership", "expected members " + want + "; " + note);
            } else {
                pass("static_membership", note);
            }
        } catch (Exception e) {
            fail("static_membership", "AdminClient: " + e);
        }
    }

    long countReadUncommitted() {
        Properties p = consumerProps("read_uncommitted");
        try (KafkaConsumer<String, String> c = new KafkaConsumer<>(p)) {
            List<TopicPartition> tps = new ArrayList<>();
            for (int i = 0; i < PARTITIONS; i++) tps.add(new TopicPartition(OrdersApp.OUTPUT, i));
            c.assign(tps);
            c.seekToBeginning(tps);
            Map<TopicPartition, Long> end = c.endOffsets(tps);
            long n = 0;
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
            while (System.nanoTime() < deadline) {
                n += c.poll(Duration.ofMillis(200)).count();
                boolean done = true;
                for (TopicPartition tp : tps) if (c.position(tp) < end.get(tp)) done = false;
                if (done) break;
            }
            return n;
        } catch (Exception e) {
            say("read_uncommitted count failed: " + e);
            return -1;
        }
    }

    void checkInternalTopics() {
        try {
            Set<String> names = admin.listTopics().names().get(30, TimeUnit.SECONDS);
            List<String> internal = names.stream().filter(n -> n.startsWith(APP_ID)).sorted().collect(Collectors.toList());
            say("internal topics: " + internal);
            List<String> problems = new ArrayList<>();
            Map<String, String> expectPolicy = new LinkedHashMap<>();
            expectPolicy.put(REPARTITION, "delete");
            expectPolicy.put(TOTALS_CHANGELOG, "compact");
            expectPolicy.put(CUSTOMERS_CHANGELOG, "compact");
            expectPolicy.put(WINDOW_CHANGELOG, "compact,delete");
            for (String t : expectPolicy.keySet()) if (!names.contains(t)) problems.add("missing " + t);
            Set<String> extra = new HashSet<>(internal);
            extra.removeAll(expectPolicy.keySet());
            if (!extra.isEmpty()) problems.add("unexpected internal topics " + extra);
            List<String> present = expectPolicy.keySet().stream().filter(names::contains).collect(Collectors.toList());
            if (!present.isEmpty()) {
                Map<String, TopicDescription> d = admin.describeTopics(present).allTopicNames().get(30, TimeUnit.SECONDS);
                List<ConfigResource> res = present.stream().map(t -> new ConfigResource(ConfigResource.Type.TOPIC, t))
                        .collect(Collectors.toList());
                Map<ConfigResource, Config> cfg = admin.describeConfigs(res).all().get(30, TimeUnit.SECONDS);
                for (String t : present) {
                    int parts = d.get(t).partitions().size();
                    if (parts != PARTITIONS) problems.add(t + " has " + parts + " partitions, expected " + PARTITIONS);
                    Config c = cfg.get(new ConfigResource(ConfigResource.Type.TOPIC, t));
                    String policy = c.get("cleanup.policy") == null ? null : c.get("cleanup.policy").value();
                    if (!expectPolicy.get(t).equals(policy)) {
                        problems.add(t + " cleanup.policy=" + policy + ", expected " + expectPolicy.get(t));
                    }
                    if (t.equals(WINDOW_CHANGELOG)) {
                        // window store retention (size + grace) + windowstore.changelog.additional.retention.ms (1 day)
                        String ret = c.get("retention.ms") == null ? null : c.get("retention.ms").value();
                        String want = Long.toString(OrdersApp.WINDOW_MS + 3_600_000L + 86_400_000L);
                        if (!want.equals(ret)) problems.add(t + " retention.ms=" + ret + ", Streams sets " + want);
                    }
                    if (t.equals(REPARTITION)) {
                        String ret = c.get("retention.ms") == null ? null : c.get("retention.ms").value();
                        if (!"-1".equals(ret)) problems.add(t + " retention.ms=" + ret + ", Streams sets -1");
                    }
                }
            }
            if (problems.isEmpty()) {
                pass("internal_topics", "found " + internal + " with " + PARTITIONS
                        + " partitions; key-value changelogs cleanup.policy=compact, window changelog compact,delete with "
                        + "retention.ms=size+grace+1 day, repartition delete with retention.ms=-1");
            } else {
                fail("internal_topics", String.join("; ", problems) + " (topics: " + internal + ")");
            }
        } catch (Exception e) {
            fail("internal_topics", "AdminClient: " + e);
        }
    }

    void checkOffsets() {
        try {
            List<TopicPartition> tps = new ArrayList<>();
            for (int i = 0; i < PARTITIONS; i++) tps.add(new TopicPartition(OrdersApp.ORDERS, i));
            Map<TopicPartition, OffsetAndMetadata> committed = admin.listConsumerGroupOffsets(
                    Map.of(APP_ID, new ListConsumerGroupOffsetsSpec()),
                    new ListConsumerGroupOffsetsOptions().requireStable(true))
                    .partitionsToOffsetAndMetadata(APP_ID).get(30, TimeUnit.SECONDS);
            Map<TopicPartition, OffsetSpec> q = new HashMap<>();
            tps.forEach(tp -> q.put(tp, OffsetSpec.latest()));
            Map<TopicPartition, Long> end = new TreeMap<>(Comparator.comparing(TopicPartition::toString));
            admin.listOffsets(q).all().get(30, TimeUnit.SECONDS).forEach((tp, r) -> end.put(tp, r.offset()));
            List<String> problems = new ArrayList<>();
            long total = 0;
            for (TopicPartition tp : tps) {
                OffsetAndMetadata om = committed.get(tp);
                long c = om == null ? -1 : om.offset();
                total += end.get(tp);
                if (c != end.get(tp)) problems.add(tp + " committed " + c + ", end offset " + end.get(tp));
            }
            boolean rep = committed.keySet().stream().anyMatch(tp -> tp.topic().equals(REPARTITION));
            if (!rep) problems.add("no committed offsets for " + REPARTITION);
            if (total != NUM_ORDERS) problems.add("orders end offsets sum to " + total + ", produced " + NUM_ORDERS);
            if (problems.isEmpty()) {
                pass("transactional_offsets", "group " + APP_ID + " (read with require_stable): committed = end offset on every "
                        + OrdersApp.ORDERS + " partition " + end.values() + "; repartition offsets committed too");
            } else {
                fail("transactional_offsets", String.join("; ", problems) + "; committed: " + committed);
            }
        } catch (Exception e) {
            fail("transactional_offsets", "AdminClient: " + e);
        }
    }

    void checkPurge() {
        try {
            Map<TopicPartition, OffsetSpec> q = new HashMap<>();
            for (int i = 0; i < PARTITIONS; i++) q.put(new TopicPartition(REPARTITION, i), OffsetSpec.earliest());
            Map<TopicPartition, Long> start = new TreeMap<>(Comparator.comparing(TopicPartition::toString));
            admin.listOffsets(q).all().get(30, TimeUnit.SECONDS).forEach((tp, r) -> start.put(tp, r.offset()));
            long purged = start.values().stream().mapToLong(Long::longValue).sum();
            if (purged > 0) {
                pass("repartition_purge", "log start offsets of " + REPARTITION + ": " + start.values());
            } else {
                fail("repartition_purge", "log start offsets of " + REPARTITION + " still " + start.values()
                        + " (Streams deletes consumed repartition records every repartition.purge.interval.ms=1000)");
            }
        } catch (Exception e) {
            fail("repartition_purge", "AdminClient: " + e);
        }
    }

    void cleanup() {
        stopCollector.set(true);
        for (App a : apps) if (a.proc.isAlive()) a.proc.destroyForcibly();
        if (admin != null) {
            try { admin.close(Duration.ofSeconds(5)); } catch (Exception ignored) { }
        }
        if (broker != null && broker.isAlive()) {
            broker.destroy();
            try {
                if (!broker.waitFor(15, TimeUnit.SECONDS)) broker.destroyForcibly();
            } catch (InterruptedException ignored) {
                broker.destroyForcibly();
            }
        }
    }

    static String json(String s) {
        StringBuilder b = new StringBuilder("\"");
        for (char c : s.toCharArray()) {
            switch (c) {
                case '"' -> b.append("\\\"");
                case '\\' -> b.append("\\\\");
                case '\n' -> b.append("\\n");
                case '\r' -> b.append("\\r");
                case '\t' -> b.append("\\t");
                default -> {
                    if (c < 0x20) b.append(String.format("\\u%04x", (int) c));
                    else b.append(c);
                }
            }
        }
        return b.append('"').toString();
    }

    void writeResults(Path path) throws IOException {
        StringBuilder b = new StringBuilder();
        b.append("{\n  \"suite\": \"streams\",\n  \"title\": \"Kafka Streams\",\n  \"version\": ")
                .append(json(OrdersAppVersion.get()))
                .append(",\n  \"generated\": ").append(json(Instant.now().truncatedTo(ChronoUnit.SECONDS).toString()))
                .append(",\n  \"checks\": {");
        int i = 0;
        for (Check c : checks.values()) {
            b.append(i++ == 0 ? "\n" : ",\n");
            b.append("    ").append(json(c.name)).append(": {\"status\": ").append(json(c.status))
                    .append(", \"test\": ").append(json(c.test))
                    .append(", \"note\": ").append(json(c.status.equals("pass") ? "" : c.note))
                    .append(", \"label\": ").append(json(c.label)).append("}");
        }
        b.append("\n  }\n}\n");
        Files.createDirectories(path.toAbsolutePath().getParent());
        Files.writeString(path, b.toString());
    }

    public static void main(String[] args) throws Exception {
        Path results = Paths.get(args.length > 0 ? args[0] : "streams.json");
        String bin = env("GREGOR_BIN", "");
        if (bin.isEmpty() || !new File(bin).canExecute()) {
            System.err.println("GREGOR_BIN must name the gregor binary (got '" + bin + "')");
            System.exit(2);
        }
        Path work = Paths.get(env("STREAMS_WORK", "target/work"))
                .resolve(Instant.now().toString().replace(':', '-'));
        Files.createDirectories(work);
        Driver d = new Driver(work.toAbsolutePath(), bin);
        Runtime.getRuntime().addShutdownHook(new Thread(d::cleanup));
        d.say("work dir " + d.work + "; Kafka Streams " + OrdersAppVersion.get() + "; " + NUM_ORDERS + " orders");
        try {
            d.run();
        } catch (Throwable t) {
            d.say("scenario aborted: " + t);
            t.printStackTrace(System.out);
            for (Check c : d.checks.values()) {
                if (c.note.startsWith("not reached")) c.note = "not reached: " + t;
            }
        } finally {
            d.cleanup();
        }
        int passed = 0, failed = 0, xfailed = 0;
        System.out.println();
        for (Check c : d.checks.values()) {
            boolean ok = c.status.equals("pass");
            String tag;
            if (ok) {
                passed++;
                tag = c.knownBug == null ? "PASS  " : "XPASS ";
            } else if (c.knownBug != null) {
                xfailed++;
                tag = "XFAIL ";
                c.note = "known broker bug (" + c.knownBug + "): " + c.note;
            } else {
                failed++;
                tag = "FAIL  ";
            }
            System.out.println(tag + c.test + " [" + c.name + "]: " + c.note);
        }
        d.writeResults(results);
        System.out.printf("%nKafka Streams suite: %d passed, %d failed, %d expected failures (known broker bugs) "
                + "(%.0f s); results in %s; logs in %s%n",
                passed, failed, xfailed, (System.nanoTime() - START) / 1e9, results, d.work);
        System.exit(failed == 0 ? 0 : 1);
    }
}
