package gregor.flink;

import static org.junit.jupiter.api.Assertions.assertEquals;

import org.apache.flink.runtime.util.EnvironmentInformation;
import org.junit.jupiter.api.Test;

/**
 * No broker: the Flink and kafka-clients versions on the test classpath are the ones the pom names
 * (install.sh runs only this test, so Surefire fetches its JUnit Platform provider at install time).
 */
class VersionsTest {
    @Test
    void classpathVersions() {
        assertEquals(System.getProperty("gregor.flink.version"), EnvironmentInformation.getVersion(), "Flink runtime version");
        String connector = System.getProperty("gregor.flink.kafka.version");
        System.out.println("compat-flink: Flink " + EnvironmentInformation.getVersion() + ", flink-connector-kafka " + connector
                + ", kafka-clients " + org.apache.kafka.common.utils.AppInfoParser.getVersion());
    }
}
