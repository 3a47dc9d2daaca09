package gregor.compat;

import static org.junit.jupiter.api.Assertions.assertEquals;

import org.junit.jupiter.api.Test;

/** The suite runs the client version the Maven profile asked for (install.sh runs only this). */
class ClientVersionTest {
    @Test
    void clientVersionMatchesProfile() {
        assertEquals(System.getProperty("gregor.kafka.version"), NotApplicable.clientVersion());
    }
}
