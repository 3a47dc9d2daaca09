package gregor.flink;

import gregor.support.KnownBrokerBug;

import java.io.IOException;
import java.lang.reflect.Method;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.nio.file.StandardCopyOption;
import java.time.Instant;
import java.time.temporal.ChronoUnit;
import java.util.LinkedHashMap;
import java.util.Map;

import org.junit.platform.engine.TestExecutionResult;
import org.junit.platform.engine.support.descriptor.ClassSource;
import org.junit.platform.engine.support.descriptor.MethodSource;
import org.junit.platform.launcher.TestExecutionListener;
import org.junit.platform.launcher.TestIdentifier;
import org.junit.platform.launcher.TestPlan;

/**
 * Writes compat/results/flink.json (a tool/framework suite for scripts/matrix.py) from the {@link Check}
 * annotations: {"suite", "title", "version", "generated", "checks": {name: {status, test, note, label}}}.
 * Registered through META-INF/services, so Surefire's JUnit Platform launcher picks it up; the file is
 * rewritten after every test, so it exists even when the run dies half-way.
 *
 * passed = pass; failed = fail; aborted with "known broker bug: ..." = fail; other aborts and
 * disabled tests = skip.
 */
public class ResultsListener implements TestExecutionListener {
    private record Outcome(String status, String test, String note, String label) {
    }

    private static final Map<String, Outcome> CHECKS = new LinkedHashMap<>();

    @Override
    public void testPlanExecutionStarted(TestPlan plan) {
        // every declared check appears, even if its class never ran
        for (TestIdentifier root : plan.getRoots()) {
            for (TestIdentifier id : plan.getDescendants(root)) {
                id.getSource().filter(s -> s instanceof MethodSource).ifPresent(s -> {
                    Method m = method((MethodSource) s);
                    Check c = m == null ? null : m.getAnnotation(Check.class);
                    if (c != null) {
                        put(c, new Outcome("skip", testName((MethodSource) s), "not run", c.label()));
                    }
                });
            }
        }
    }

    @Override
    public void executionSkipped(TestIdentifier id, String reason) {
        record(id, "skip", reason == null ? "" : reason);
    }

    @Override
    public void executionFinished(TestIdentifier id, TestExecutionResult result) {
        String msg = result.getThrowable().map(ResultsListener::describe).orElse("");
        switch (result.getStatus()) {
            case SUCCESSFUL -> record(id, "pass", "");
            case FAILED -> record(id, "fail", msg);
            case ABORTED -> record(id, msg.startsWith(KnownBrokerBug.PREFIX) ? "fail" : "skip", msg);
        }
        if (result.getStatus() == TestExecutionResult.Status.FAILED
                && id.getSource().filter(s -> s instanceof ClassSource).isPresent()) {
            Class<?> cls = ((ClassSource) id.getSource().get()).getJavaClass();
            for (Method m : cls.getDeclaredMethods()) {
                Check c = m.getAnnotation(Check.class);
                if (c != null) {
                    put(c, new Outcome("fail", cls.getSimpleName() + "." + m.getName(),
                            "class setup/teardown failed: " + msg, c.label()));
                }
            }
        }
        write();
    }

    @Override
    public void testPlanExecutionFinished(TestPlan plan) {
        write();
    }

    private void record(TestIdentifier id, String status, String note) {
        if (id.getSource().isEmpty() || !(id.getSource().get() instanceof MethodSource ms)) {
            return;
        }
        Method m = method(ms);
        Check c = m == null ? null : m.getAnnotation(Check.class);
        if (c != null) {
            put(c, new Outcome(status, testName(ms), note, c.label()));
        }
    }

    private static String testName(MethodSource ms) {
        return ms.getJavaClass().getSimpleName() + "." + ms.getMethodName();
    }

    private static synchronized void put(Check c, Outcome o) {
        CHECKS.put(c.name(), o);
    }

    private static Method method(MethodSource ms) {
        try {
            return ms.getJavaMethod();
        } catch (Exception e) {
            return null;
        }
    }

    private static String describe(Throwable t) {
        String s = t instanceof org.opentest4j.TestAbortedException
                ? String.valueOf(t.getMessage())
                : t.getClass().getSimpleName() + ": " + t.getMessage();
        s = s.replaceAll("\\s+", " ").trim();
        return s.length() > 500 ? s.substring(0, 500) + "..." : s;
    }

    static synchronized void write() {
        try {
            Path dir = Paths.get(System.getProperty("gregor.results.dir", "../results"));
            Files.createDirectories(dir);
            String version = System.getProperty("gregor.flink.version", "?") + "/"
                    + System.getProperty("gregor.flink.kafka.version", "?");
            StringBuilder sb = new StringBuilder();
            sb.append("{\n  \"suite\": \"flink\",\n  \"title\": \"Apache Flink (Kafka connector)\",\n  \"version\": ")
                    .append(q(version)).append(",\n  \"generated\": ")
                    .append(q(Instant.now().truncatedTo(ChronoUnit.SECONDS).toString()))
                    .append(",\n  \"checks\": {");
            boolean first = true;
            for (Map.Entry<String, Outcome> e : CHECKS.entrySet()) {
                Outcome o = e.getValue();
                sb.append(first ? "\n" : ",\n").append("    ").append(q(e.getKey()))
                        .append(": {\"status\": ").append(q(o.status))
                        .append(", \"test\": ").append(q(o.test))
                        .append(", \"note\": ").append(q(o.note))
                        .append(", \"label\": ").append(q(o.label)).append("}");
                first = false;
            }
            sb.append("\n  }\n}\n");
            Path tmp = dir.resolve("flink.json.tmp");
            Files.writeString(tmp, sb.toString(), StandardCharsets.UTF_8);
            Files.move(tmp, dir.resolve("flink.json"), StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        } catch (IOException e) {
            System.err.println("compat-flink: could not write results: " + e);
        }
    }

    private static String q(String s) {
        StringBuilder b = new StringBuilder("\"");
        for (char ch : s.toCharArray()) {
            switch (ch) {
                case '"' -> b.append("\\\"");
                case '\\' -> b.append("\\\\");
                case '\n' -> b.append("\\n");
                case '\r' -> b.append("\\r");
                case '\t' -> b.append("\\t");
                default -> {
                    if (ch < 0x20) {
                        b.append(String.format("\\u%04x", (int) ch));
                    } else {
                        b.append(ch);
                    }
                }
            }
        }
        return b.append('"').toString();
    }
}
