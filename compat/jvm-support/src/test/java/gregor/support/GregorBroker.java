package gregor.support;

import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;
import org.junit.jupiter.api.extension.AfterAllCallback;
import org.junit.jupiter.api.extension.BeforeAllCallback;
import org.junit.jupiter.api.extension.ExtensionContext;
import org.junit.jupiter.api.extension.TestExecutionExceptionHandler;

/**
 * A real {@code gregor} process for one test class: started before the class's first test on a
 * free 127.0.0.1 port with a fresh data dir, killed after its last one.
 *
 * <pre>
 *   {@literal @}RegisterExtension
 *   static final GregorBroker broker = GregorBroker.withSettings("auto.create.topics.enable=false");
 * </pre>
 *
 * The binary is the system property {@code gregor.bin} (set by the pom from {@code $GREGOR_BIN} /
 * run.sh), each setting becomes {@code --set name=value}. The broker's stderr goes to
 * {@code <work>/broker.stderr.log}; a failing test gets its tail appended to the failure message.
 * No orphans: the child is started under {@code setpriv --pdeathsig KILL} (killed if this JVM
 * dies) and a shutdown hook kills whatever is still running.
 */
public final class GregorBroker implements BeforeAllCallback, AfterAllCallback, TestExecutionExceptionHandler {
    private static final Set<Process> LIVE = ConcurrentHashMap.newKeySet();
    private static final AtomicInteger SEQ = new AtomicInteger();

    static {
        Runtime.getRuntime().addShutdownHook(new Thread(() -> LIVE.forEach(Process::destroyForcibly)));
    }

    private final List<String> settings;
    private Process proc;
    private int port;
    private Path workDir;
    private Path stderrLog;

    private GregorBroker(List<String> settings) {
        this.settings = settings;
    }

    /** A broker with these extra settings, each "kafka.name=value". */
    public static GregorBroker withSettings(String... settings) {
        return new GregorBroker(Arrays.asList(settings));
    }

    public static GregorBroker defaults() {
        return new GregorBroker(List.of());
    }

    public String bootstrap() {
        return "127.0.0.1:" + port;
    }

    public Path stderrLog() {
        return stderrLog;
    }

    @Override
    public void beforeAll(ExtensionContext ctx) throws Exception {
        String name = ctx.getRequiredTestClass().getSimpleName();
        start(name);
    }

    @Override
    public void afterAll(ExtensionContext ctx) {
        stop();
    }

    /** Appends the broker's stderr tail to a failing test's message (like the pytest suites do). */
    @Override
    public void handleTestExecutionException(ExtensionContext ctx, Throwable t) throws Throwable {
        if (t instanceof AssertionError || t instanceof Exception) {
            t.addSuppressed(new BrokerLog("gregor stderr tail (" + stderrLog + "):\n" + stderrTail(40)));
        }
        throw t;
    }

    /** Not an error: carries the broker log in a failure report. */
    static final class BrokerLog extends Exception {
        BrokerLog(String msg) {
            super(msg, null, false, false);
        }
    }

    /** Stops the broker (SIGTERM, or SIGKILL when {@code kill}) and starts it again on the same port and data dir. */
    public synchronized void restart(boolean kill) throws IOException, InterruptedException {
        if (proc != null) {
            if (kill) {
                proc.destroyForcibly();
                proc.waitFor(10, TimeUnit.SECONDS);
                LIVE.remove(proc);
                proc = null;
            } else {
                stop();
            }
        }
        launch();
    }

    public synchronized void start(String name) throws IOException, InterruptedException {
        Path bin = Paths.get(System.getProperty("gregor.bin",
                System.getenv().getOrDefault("GREGOR_BIN", "../../target/debug/gregor")));
        if (!Files.isExecutable(bin)) {
            throw new IllegalStateException("gregor binary not found at " + bin
                    + ": run `cargo build --bin gregor` first or set GREGOR_BIN");
        }
        Path base = Paths.get(System.getProperty("gregor.work.dir", System.getProperty("java.io.tmpdir")));
        Files.createDirectories(base);
        workDir = Files.createTempDirectory(base, name + "-" + SEQ.incrementAndGet() + "-");
        Path data = workDir.resolve("data");
        Files.createDirectories(data);
        stderrLog = workDir.resolve("broker.stderr.log");
        port = freePort();
        Files.writeString(stderrLog, "", StandardCharsets.UTF_8);
        launch();
    }

    private void launch() throws IOException, InterruptedException {
        Path bin = Paths.get(System.getProperty("gregor.bin",
                System.getenv().getOrDefault("GREGOR_BIN", "../../target/debug/gregor")));
        Path data = workDir.resolve("data");
        List<String> cmd = new ArrayList<>();
        if (Files.isExecutable(Paths.get("/usr/bin/setpriv"))) {
            cmd.addAll(List.of("/usr/bin/setpriv", "--pdeathsig", "KILL"));
        }
        cmd.addAll(List.of(bin.toAbsolutePath().toString(),
                "--listeners", "PLAINTEXT://127.0.0.1:" + port,
                "--log-dirs", data.toString(),
                "--node-id", "1"));
        for (String s : settings) {
            cmd.add("--set");
            cmd.add(s);
        }
        Files.writeString(stderrLog, "===== " + System.getProperty("gregor.suite", "compat") + ": " + String.join(" ", cmd) + "\n", StandardCharsets.UTF_8,
                java.nio.file.StandardOpenOption.APPEND);
        ProcessBuilder pb = new ProcessBuilder(cmd)
                .directory(workDir.toFile())
                .redirectInput(ProcessBuilder.Redirect.from(new java.io.File("/dev/null")))
                .redirectErrorStream(true)
                .redirectOutput(ProcessBuilder.Redirect.appendTo(stderrLog.toFile()));
        // GREGOR_BIN is the harness's knob; the broker reads every GREGOR_* variable as a setting.
        pb.environment().remove("GREGOR_BIN");
        pb.environment().putIfAbsent("RUST_BACKTRACE", "1");
        proc = pb.start();
        LIVE.add(proc);
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
        while (System.nanoTime() < deadline) {
            if (!proc.isAlive()) {
                throw new IllegalStateException("gregor exited with " + proc.exitValue()
                        + " before accepting connections on " + bootstrap() + "\n" + stderrTail(40));
            }
            try (Socket s = new Socket()) {
                s.connect(new InetSocketAddress("127.0.0.1", port), 500);
                return;
            } catch (IOException notYet) {
                Thread.sleep(50);
            }
        }
        stop();
        throw new IllegalStateException("gregor did not accept connections on " + bootstrap() + " within 20s\n"
                + stderrTail(40));
    }

    public synchronized void stop() {
        if (proc == null) {
            return;
        }
        proc.destroy(); // SIGTERM: a clean shutdown
        try {
            if (!proc.waitFor(15, TimeUnit.SECONDS)) {
                proc.destroyForcibly();
                proc.waitFor(10, TimeUnit.SECONDS);
            }
        } catch (InterruptedException e) {
            proc.destroyForcibly();
            Thread.currentThread().interrupt();
        }
        LIVE.remove(proc);
        proc = null;
    }

    public String stderrTail(int lines) {
        try {
            List<String> all = Files.readAllLines(stderrLog, StandardCharsets.UTF_8);
            return String.join("\n", all.subList(Math.max(0, all.size() - lines), all.size()));
        } catch (Exception e) {
            return "(no stderr captured: " + e + ")";
        }
    }

    private static int freePort() throws IOException {
        try (ServerSocket s = new ServerSocket()) {
            s.setReuseAddress(true);
            s.bind(new InetSocketAddress("127.0.0.1", 0));
            return s.getLocalPort();
        }
    }

    // ------------------------------------------------------------------ client configs

    public Admin admin() {
        Properties p = new Properties();
        p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap());
        p.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, 15000);
        p.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, 30000);
        return Admin.create(p);
    }

    /** String/String producer properties; extra entries override, e.g. "acks", "all". */
    public Properties producerProps(Object... kv) {
        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap());
        p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        p.put(ProducerConfig.LINGER_MS_CONFIG, 5);
        p.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, 30000);
        p.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, 15000);
        p.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, 15000);
        put(p, kv);
        return p;
    }

    /** String/String consumer properties (no group unless given), auto.offset.reset=earliest. */
    public Properties consumerProps(Object... kv) {
        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap());
        p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false);
        p.put(ConsumerConfig.REQUEST_TIMEOUT_MS_CONFIG, 15000);
        p.put(ConsumerConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, 30000);
        put(p, kv);
        return p;
    }

    private static void put(Properties p, Object... kv) {
        if (kv.length % 2 != 0) {
            throw new IllegalArgumentException("key/value pairs expected");
        }
        for (int i = 0; i < kv.length; i += 2) {
            p.put(String.valueOf(kv[i]), kv[i + 1]);
        }
    }
}
