package gregor.compat;

import gregor.support.KnownBrokerBug;

import java.io.IOException;
import java.lang.reflect.Method;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.time.Instant;
import java.time.temporal.ChronoUnit;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.TreeMap;

import org.junit.platform.engine.TestExecutionResult;
import org.junit.platform.engine.TestSource;
import org.junit.platform.engine.support.descriptor.ClassSource;
import org.junit.platform.engine.support.descriptor.MethodSource;
import org.junit.platform.launcher.TestExecutionListener;
import org.junit.platform.launcher.TestIdentifier;
import org.junit.platform.launcher.TestPlan;

/**
 * Writes compat/results/&lt;key&gt;.json for scripts/matrix.py from the {@link Feature} annotations:
 * {"client", "version", "generated", "features": {name: {status, test, note}}}. Registered through
 * META-INF/services, so Surefire's JUnit Platform launcher picks it up. The file is rewritten at the
 * end of every test plan with everything seen so far, so it exists even if some tests failed.
 *
 * Status per test: passed = pass; failed = fail; aborted with "n/a: ..." = n/a; aborted with
 * "known broker bug: ..." = fail; other aborts and @Disabled = skip. A feature is fail if any of its
 * tests failed, else pass if any passed, else n/a, else skip.
 */
public class FeatureResultsListener implements TestExecutionListener {
    private record Outcome(String status, String test, String note) {
    }

    private static final Map<String, List<Outcome>> OUTCOMES = new TreeMap<>();
    private TestPlan plan;

    @Override
    public void testPlanExecutionStarted(TestPlan testPlan) {
        this.plan = testPlan;
    }

    @Override
    public void executionSkipped(TestIdentifier id, String reason) {
        String status = reason != null && reason.startsWith(NotApplicable.PREFIX) ? "n/a" : "skip";
        String note = reason == null ? "" : reason.replaceFirst("^n/a: ", "");
        if (id.isTest()) {
            record(id, status, note);
        } else if (plan != null) {
            for (TestIdentifier child : plan.getDescendants(id)) {
                if (child.isTest()) {
                    record(child, status, note);
                }
            }
        }
    }

    @Override
    public void executionFinished(TestIdentifier id, TestExecutionResult result) {
        String message = result.getThrowable().map(FeatureResultsListener::describe).orElse("");
        if (id.isTest()) {
            switch (result.getStatus()) {
                case SUCCESSFUL -> record(id, "pass", "");
                case FAILED -> record(id, "fail", message);
                case ABORTED -> {
                    if (message.startsWith(NotApplicable.PREFIX)) {
                        record(id, "n/a", message.substring(NotApplicable.PREFIX.length()));
                    } else if (message.startsWith(KnownBrokerBug.PREFIX)) {
                        record(id, "fail", message);
                    } else {
                        record(id, "skip", message);
                    }
                }
            }
        } else if (result.getStatus() == TestExecutionResult.Status.FAILED
                && id.getSource().filter(s -> s instanceof ClassSource).isPresent()) {
            // e.g. the broker did not start: every feature test of the class failed with it
            Class<?> cls = ((ClassSource) id.getSource().get()).getJavaClass();
            for (Method m : cls.getDeclaredMethods()) {
                Feature f = m.getAnnotation(Feature.class);
                if (f != null) {
                    for (String name : f.value()) {
                        add(name, new Outcome("fail", cls.getSimpleName() + "." + m.getName(),
                                "class setup/teardown failed: " + message));
                    }
                }
            }
        }
    }

    private static String describe(Throwable t) {
        String s = t.getMessage() == null ? t.getClass().getName() : t.getClass().getSimpleName() + ": " + t.getMessage();
        if (t instanceof org.opentest4j.TestAbortedException) {
            s = t.getMessage() == null ? "" : t.getMessage();
        }
        s = s.replaceAll("\\s+", " ").trim();
        return s.length() > 400 ? s.substring(0, 400) + "..." : s;
    }

    private void record(TestIdentifier id, String status, String note) {
        Optional<TestSource> src = id.getSource();
        if (src.isEmpty() || !(src.get() instanceof MethodSource ms)) {
            return;
        }
        Method method = findMethod(ms);
        if (method == null) {
            return;
        }
        Feature f = method.getAnnotation(Feature.class);
        if (f == null) {
            return;
        }
        String test = ms.getJavaClass().getSimpleName() + "." + ms.getMethodName();
        if (!id.getDisplayName().startsWith(ms.getMethodName())) {
            test += " " + id.getDisplayName();
        }
        for (String name : f.value()) {
            add(name, new Outcome(status, test, note));
        }
    }

    private static synchronized void add(String feature, Outcome o) {
        OUTCOMES.computeIfAbsent(feature, k -> new ArrayList<>()).add(o);
    }

    private static Method findMethod(MethodSource ms) {
        try {
            return ms.getJavaMethod();
        } catch (Exception e) {
            for (Method m : ms.getJavaClass().getDeclaredMethods()) {
                if (m.getName().equals(ms.getMethodName())) {
                    return m;
                }
            }
            return null;
        }
    }

    @Override
    public void testPlanExecutionFinished(TestPlan testPlan) {
        try {
            write();
        } catch (IOException e) {
            System.err.println("compat-java: could not write results: " + e);
        }
    }

    static synchronized void write() throws IOException {
        String key = System.getProperty("gregor.results.key", "java");
        Path dir = Paths.get(System.getProperty("gregor.results.dir", "../results"));
        Files.createDirectories(dir);
        StringBuilder sb = new StringBuilder();
        sb.append("{\n  \"client\": ").append(q(key))
                .append(",\n  \"version\": ").append(q(NotApplicable.clientVersion()))
                .append(",\n  \"generated\": ").append(q(Instant.now().truncatedTo(ChronoUnit.SECONDS).toString()))
                .append(",\n  \"features\": {");
        boolean first = true;
        for (Map.Entry<String, List<Outcome>> e : OUTCOMES.entrySet()) {
            Map<String, String> cell = combine(e.getValue());
            sb.append(first ? "\n" : ",\n").append("    ").append(q(e.getKey())).append(": {");
            boolean f2 = true;
            for (Map.Entry<String, String> c : cell.entrySet()) {
                sb.append(f2 ? "" : ", ").append(q(c.getKey())).append(": ").append(q(c.getValue()));
                f2 = false;
            }
            sb.append("}");
            first = false;
        }
        sb.append("\n  }\n}\n");
        Path out = dir.resolve(key + ".json");
        Path tmp = dir.resolve(key + ".json.tmp");
        Files.writeString(tmp, sb.toString(), StandardCharsets.UTF_8);
        Files.move(tmp, out, java.nio.file.StandardCopyOption.REPLACE_EXISTING,
                java.nio.file.StandardCopyOption.ATOMIC_MOVE);
    }

    private static Map<String, String> combine(List<Outcome> outs) {
        for (String status : List.of("fail", "pass", "n/a", "skip")) {
            List<Outcome> these = outs.stream().filter(o -> o.status.equals(status)).toList();
            if (!these.isEmpty()) {
                Map<String, String> cell = new LinkedHashMap<>();
                cell.put("status", status);
                cell.put("test", String.join(", ", these.stream().map(Outcome::test).distinct().toList()));
                String note = String.join("; ", these.stream().map(Outcome::note).filter(n -> !n.isEmpty()).distinct().toList());
                if (!status.equals("pass") && !note.isEmpty()) {
                    cell.put("note", note);
                }
                return cell;
            }
        }
        throw new IllegalStateException("no outcome");
    }

    private static String q(String s) {
        StringBuilder b = new StringBuilder("\"");
        for (char c : s.toCharArray()) {
            switch (c) {
                case '"' -> b.append("\\\"");
                case '\\' -> b.append("\\\\");
                case '\n' -> b.append("\\n");
                case '\r' -> b.append("\\r");
                case '\t' -> b.append("\\t");
                default -> {
                    if (c < 0x20) {
                        b.append(String.format("\\u%04x", (int) c));
                    } else {
                        b.append(c);
                    }
                }
            }
        }
        return b.append('"').toString();
    }
}
