package gregor.compat;

import org.opentest4j.TestAbortedException;

/**
 * Aborts a test the client under test cannot do; {@link FeatureResultsListener} records it as
 * "n/a" with the reason (Surefire reports it as skipped).
 */
public final class NotApplicable {
    static final String PREFIX = "n/a: ";

    private NotApplicable() {
    }

    public static void when(boolean condition, String reason) {
        if (condition) {
            throw new TestAbortedException(PREFIX + reason);
        }
    }

    /** The kafka-clients version the suite runs with, e.g. "4.4.0" or "3.9.2". */
    public static String clientVersion() {
        // what the client itself reports (AppInfoParser reads the same resource)
        try (var in = NotApplicable.class.getResourceAsStream("/kafka/kafka-version.properties")) {
            if (in != null) {
                java.util.Properties p = new java.util.Properties();
                p.load(in);
                String v = p.getProperty("version");
                if (v != null) {
                    return v.trim();
                }
            }
        } catch (java.io.IOException ignored) {
            // fall through
        }
        return System.getProperty("gregor.kafka.version", "unknown");
    }

    /** True for the 3.x client line. */
    public static boolean client3x() {
        return clientVersion().startsWith("3.");
    }
}
