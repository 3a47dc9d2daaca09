package gregor.flink;

import java.lang.annotation.ElementType;
import java.lang.annotation.Retention;
import java.lang.annotation.RetentionPolicy;
import java.lang.annotation.Target;

/** The row of compat/results/flink.json a test method stands for (see {@link ResultsListener}). */
@Retention(RetentionPolicy.RUNTIME)
@Target(ElementType.METHOD)
public @interface Check {
    /** The check's key, e.g. "exactly_once_sink". */
    String name();

    /** What a reader of the matrix sees in the row. */
    String label();
}
