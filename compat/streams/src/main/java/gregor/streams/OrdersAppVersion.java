package gregor.streams;

/** The kafka-streams version on the class path (from its jar's kafka/kafka-streams-version.properties). */
final class OrdersAppVersion {
    private OrdersAppVersion() {}

    static String get() {
        try (var in = org.apache.kafka.streams.KafkaStreams.class.getResourceAsStream("/kafka/kafka-streams-version.properties")) {
            if (in == null) return "unknown";
            var p = new java.util.Properties();
            p.load(in);
            return p.getProperty("version", "unknown");
        } catch (Exception e) {
            return "unknown";
        }
    }
}
