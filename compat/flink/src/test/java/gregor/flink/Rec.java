package gregor.flink;

import java.util.Arrays;

/**
 * One Kafka record as it travels through the Flink job (a Flink POJO: public fields, no-arg constructor).
 * seq, tag and bin come from the input record's headers; count is the running count per key.
 */
public class Rec {
    public String key;
    public String value;
    public long seq;
    public String tag;
    public byte[] bin;
    public long ts;
    public int partition;
    public long offset;
    public long count;

    public Rec() {
    }

    @Override
    public String toString() {
        return "Rec{" + key + "=" + value + " seq=" + seq + " tag=" + tag + " bin=" + Arrays.toString(bin)
                + " ts=" + ts + " p" + partition + "@" + offset + " count=" + count + "}";
    }
}
